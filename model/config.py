"""Generator hyper-parameters as a typed dataclass, and the named presets.

'paper' is the GENRE-CMR default of docs/method.md (16 cascades, PromptMR+ widths with a 4-tensor buffer,
zero-initialised residual connections: about 95.9 M trainable parameters). 'small' is CPU-practical,
'tiny' is for tests and CPU training smoke runs. The shipped weights are 'small-10-view-sharing'.
"""
from dataclasses import asdict, dataclass, fields, replace

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class UnetConfig:
    """Widths of one PromptUnet (3 levels). Index 0 is the full-resolution side."""
    n_feat0: int
    feature_dim: Triple
    prompt_dim: Triple
    prompt_len: Triple
    prompt_size: Triple
    n_enc_cab: Triple = (2, 3, 3)
    n_dec_cab: Triple = (2, 2, 3)
    n_skip_cab: Triple = (1, 1, 1)
    n_bottleneck_cab: int = 3


@dataclass(frozen=True)
class GeneratorConfig:
    cascades: int
    denoiser: UnetConfig          # one per cascade (same widths, own weights)
    sens: UnetConfig              # the sensitivity-map network
    adjacent_frames: int = 5      # F: frames per window, target in the centre
    n_buffer: int = 4             # [ffx, latent, x0, ffx - x0] beside x (method.md §5A)
    residual: bool = True         # GENRE residual 1x1 convs across cascades (method.md §4)
    eta_init: float = 1.0         # initial learned gradient-descent step of the data-consistency term
    # Compute savers for the paper size (not in method.md; docs/method-choices.md). CMRxRecon readouts (W) are
    # 2x oversampled and Cartesian undersampling is along H only, so each readout column aliases only onto
    # itself: the denoisers may see the central fraction of columns while data consistency keeps the whole
    # field of view. Coil maps are smooth and the ACS is low-resolution, so the sensitivity net may run on a
    # area-downsampled ACS image whose maps are bilinearly upsampled before the unit-RSS normalisation.
    denoiser_readout_fraction: float = 1.0
    sens_downsample: int = 1
    # Start every frame from its measured lines plus, where it has none, the slice's time-averaged k-space
    # (view sharing): at AF 24 a 5-frame ktUniform window holds 5 of the 24 lattice offsets, a 24-frame cine all.
    # Data consistency still uses the frame's own measurements only (docs/method-choices.md).
    view_sharing: bool = False
    # Cascades from this index on scale their move by a learned scalar gate, x + g (x_next - x) (ReZero-like;
    # not in method.md; None: no gates): cascades appended to a trained generator start at g = 0, so the deeper
    # network starts as the shallower one's exact output instead of below it (training.growth;
    # docs/training-history.md, stages 26 and 29). The trained cascades before it keep their own step sizes.
    gated_from: int | None = None

    def __post_init__(self):
        if self.adjacent_frames < 1 or self.adjacent_frames % 2 == 0:
            raise ValueError(f"adjacent_frames must be odd and positive, got {self.adjacent_frames}")
        if self.n_buffer not in (0, 4):
            raise ValueError(f"n_buffer must be 0 (x only) or 4 ([ffx, latent, x0, ffx - x0]), got {self.n_buffer}")
        if self.cascades < 1:
            raise ValueError(f"cascades must be >= 1, got {self.cascades}")
        if not 0 < self.denoiser_readout_fraction <= 1:
            raise ValueError(f"denoiser_readout_fraction must be in (0, 1], got {self.denoiser_readout_fraction}")
        if self.gated_from is not None and not 0 <= self.gated_from < self.cascades:
            raise ValueError(f"gated_from must be a cascade index (0 to {self.cascades - 1}) or None, "
                             f"got {self.gated_from}")
        if int(self.sens_downsample) != self.sens_downsample or self.sens_downsample < 1:
            raise ValueError(f"sens_downsample must be a positive integer, got {self.sens_downsample}")


_PAPER_DENOISER = UnetConfig(n_feat0=48, feature_dim=(72, 96, 120), prompt_dim=(24, 48, 72),
                             prompt_len=(5, 5, 5), prompt_size=(64, 32, 16))
_PAPER_SENS = UnetConfig(n_feat0=24, feature_dim=(36, 48, 60), prompt_dim=(12, 24, 36),
                         prompt_len=(5, 5, 5), prompt_size=(64, 32, 16))

PRESETS: dict[str, GeneratorConfig] = {
    # the denoisers on the central half of the (2x oversampled) readout and the sensitivity net at half
    # resolution keep the paper widths and parameter count at <= 1.5 TFLOP per slice (docs/benchmarks.md)
    "paper": GeneratorConfig(cascades=16, denoiser=_PAPER_DENOISER, sens=_PAPER_SENS,
                             denoiser_readout_fraction=0.5, sens_downsample=2),
    # small: <= 0.05 TFLOP per output slice at 10 coils, 5 frames, 204 x 448 (tests/test_generator.py checks it)
    "small": GeneratorConfig(
        cascades=5,
        denoiser=UnetConfig(n_feat0=8, feature_dim=(16, 32, 48), prompt_dim=(8, 16, 24),
                            prompt_len=(5, 5, 5), prompt_size=(32, 16, 8),
                            n_enc_cab=(1, 2, 2), n_dec_cab=(1, 2, 2), n_skip_cab=(0, 1, 1), n_bottleneck_cab=2),
        sens=UnetConfig(n_feat0=4, feature_dim=(8, 12, 16), prompt_dim=(4, 8, 8),
                        prompt_len=(3, 3, 3), prompt_size=(32, 16, 8),
                        n_enc_cab=(1, 1, 1), n_dec_cab=(1, 1, 1), n_skip_cab=(0, 0, 1), n_bottleneck_cab=1),
    ),
    "tiny": GeneratorConfig(
        cascades=4,
        denoiser=UnetConfig(n_feat0=8, feature_dim=(12, 16, 24), prompt_dim=(4, 8, 8),
                            prompt_len=(3, 3, 3), prompt_size=(16, 8, 4),
                            n_enc_cab=(1, 1, 1), n_dec_cab=(1, 1, 1), n_skip_cab=(0, 0, 1), n_bottleneck_cab=1),
        sens=UnetConfig(n_feat0=4, feature_dim=(8, 8, 12), prompt_dim=(4, 4, 8),
                        prompt_len=(2, 2, 2), prompt_size=(16, 8, 4),
                        n_enc_cab=(1, 1, 1), n_dec_cab=(1, 1, 1), n_skip_cab=(0, 0, 0), n_bottleneck_cab=1),
    ),
}


# the same networks started from view-shared k-space (no new parameters: a 'small' checkpoint continues as a
# further stage of 'small-view-sharing')
PRESETS["small-view-sharing"] = replace(PRESETS["small"], view_sharing=True)
PRESETS["paper-view-sharing"] = replace(PRESETS["paper"], view_sharing=True)
# 'small' widths, more cascades: a 'small' checkpoint deepens into them (training.growth); the 10-cascade one
# ships (weights/genre_cmr.json), the 8-cascade one was its sibling run, the 14-cascade one stage 26's (grown from
# it, not shipped: docs/training-history.md)
PRESETS["small-8-view-sharing"] = replace(PRESETS["small-view-sharing"], cascades=8)
PRESETS["small-10-view-sharing"] = replace(PRESETS["small-view-sharing"], cascades=10)
PRESETS["small-14-view-sharing"] = replace(PRESETS["small-view-sharing"], cascades=14)
# the same, its last four cascades gated: the shipped 10-cascade checkpoint deepens into it with them shut (stage 29,
# not shipped: the gates stayed shut)
PRESETS["small-14-gated-view-sharing"] = replace(PRESETS["small-14-view-sharing"], gated_from=10)
# the shipped generator with denoisers 1.5 times as wide (sensitivity net unchanged): a 'small-10' checkpoint widens
# into it computing what it computed (training.growth), so a short GPU stage adds capacity from the shipped weights;
# at 11.7 M parameters its checkpoint (49 MiB, runs/stage41/B.pt) still travels through the device tool (docs/gpu.md)
PRESETS["medium-10-view-sharing"] = replace(
    PRESETS["small-10-view-sharing"],
    denoiser=replace(PRESETS["small"].denoiser, n_feat0=12, feature_dim=(24, 48, 72), prompt_dim=(12, 24, 36)))


class ConfigError(ValueError):
    """A generator configuration (preset name or checkpoint dict) is unknown or malformed."""


def preset(name: str) -> GeneratorConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown generator config {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def config_asdict(config: GeneratorConfig) -> dict:
    """Plain nested dict (ints, floats, bools, tuples): safe for torch.load(weights_only=True) and JSON."""
    return asdict(config)


def _unet_from_dict(values: dict, where: str) -> UnetConfig:
    known = {f.name for f in fields(UnetConfig)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        return UnetConfig(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()})
    except TypeError as error:
        raise ConfigError(f"{where}: {error}") from None


def config_from_dict(values: dict) -> GeneratorConfig:
    """Inverse of config_asdict (lists accepted for tuples). Missing top-level scalars take their defaults."""
    known = {f.name for f in fields(GeneratorConfig)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"generator config: unknown keys {sorted(unknown)}")
    missing = {"cascades", "denoiser", "sens"} - set(values)
    if missing:
        raise ConfigError(f"generator config: missing keys {sorted(missing)}")
    scalars = {k: v for k, v in values.items() if k not in ("denoiser", "sens")}
    try:
        return GeneratorConfig(denoiser=_unet_from_dict(values["denoiser"], "generator config 'denoiser'"),
                               sens=_unet_from_dict(values["sens"], "generator config 'sens'"), **scalars)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"generator config: {error}") from None

