"""Typed training configuration (stored in every training checkpoint and in the shipped weights' record)."""
from dataclasses import asdict, dataclass, field

from simulation.geometry import Geometry
from simulation.realistic import Acquisition


@dataclass
class TrainConfig:
    """Defaults follow method.md §9 (paper values) unless noted.

    The curriculum is a list of (first epoch, accelerations sampled uniformly from then on): AF 8, then 8/16,
    then 8/16/24 (method.md §12 #17).
    """

    model: str = "small"                       # a model.config preset name
    epochs: int = 20
    steps_per_epoch: int = 500
    lr: float = 2e-3                           # paper; method.md §12 #18 notes a 10x-typo risk
    weight_decay: float = 0.1
    grad_clip: float = 0.1
    lr_step_epochs: int = 11
    lr_gamma: float = 0.1
    d_lr: float = 2e-4
    d_betas: tuple[float, float] = (0.5, 0.999)
    # cascades appended behind gates (model.config gated_from) train at their own rates: Adam moves a parameter
    # about lr a step, so at a fine-tuning lr of 5e-5 a gate opened from 0 would stay near shut for 1000s of steps
    # and the new cascades would barely leave the copies they start as; 3e-4 grew 5 cascades to 10 (stage 4)
    gated_lr: float = 3e-4
    gate_lr: float = 5e-3                      # the gates themselves, without weight decay
    curriculum: tuple[tuple[int, tuple[int, ...]], ...] = ((0, (8,)), (5, (8, 16)), (10, (8, 16, 24)))
    patterns: tuple[str, ...] = ("ktUniform", "ktGaussian", "ktRadial")
    num_acs: int = 16
    adjacent_frames: int = 5
    use_ear: bool = True
    use_sda: bool = True
    use_adv: bool = True
    adv_weight: float = 1.0                    # on L_adv before CoV: its BCE is O(1), the fidelity terms O(0.01)
    adv_cap: float = 0.0                       # > 0: the adversarial term's CoV weight at most this (0: uncapped)
    residual: bool = True
    unroll_steps: int = 5                      # Metz et al. unrolled D lookahead (0 = plain GAN)
    gan_mode: str = "vanilla"
    cov_mean_mode: str = "full"
    val_samples: int = 24
    val_fraction: float = 0.2                  # 0: every subject trains; the last epoch is exported
    centre_weights: tuple[tuple[str, float], ...] = ()   # (centre, weight): draw its domains this often (1 each)
    reflect_augment: bool = False              # each training window's anatomy reflected along ny / nx at random
    masks: str = "drawn"                       # files: masks "drawn" on the fly, the "release"'s own, or "both"
    # files: training windows drawn from each slice read (frame, mask and AF drawn anew for each). 4: with one
    # window per read, 2 workers cannot feed one GPU step of the shipped model (docs/benchmarks.md, bench_loader)
    windows_per_read: int = 4
    # where windows come from: "files" (a CMRxRecon-format training tree, --data) or "simulated" (training.simulated:
    # native-scale anatomy, a fresh scanner-like acquisition per window, every input kind)
    source: str = "files"
    crop_width: int = 0                        # simulated: readout columns per window (hybrid crop); 0 = all
    kind_weights: tuple[tuple[str, float], ...] = (("kt", 0.45), ("uniform", 0.25), ("static", 0.15),
                                                   ("mapping", 0.15))
    # simulated: the training draws' mix when it differs from kind_weights, which the validation windows keep, so
    # a stage that shifts its draws is still judged on the windows of the stages before it; () = kind_weights
    train_kind_weights: tuple[tuple[str, float], ...] = ()
    # simulated: how often the training draws' k-t windows take each trajectory; () = equally (validation: equally)
    train_kt_weights: tuple[tuple[str, float], ...] = ()
    acs_choices: tuple[int, ...] = (16, 20, 24)   # simulated: ACS lines per window (2024, 2025, 2023)
    phantoms: int = 4                          # simulated: phantom cine series beside the real anatomy
    acquisition: Acquisition = field(default_factory=Acquisition)
    # simulated: the training draws' acquisition when it differs from ``acquisition``, which the validation windows
    # keep (so a stage that changes the simulation is still judged on the windows of the stages before it)
    train_acquisition: Acquisition | None = None
    # simulated: each training window's anatomy rotated and zoomed at random (simulation.geometry); validation: never
    geometry: Geometry = field(default_factory=Geometry)
    # > 0: validate and export an exponential moving average of the generator's weights (training.ema)
    ema_decay: float = 0.0
    seed: int = 0                              # subject split, validation windows, phantoms and (by default) draws
    # training windows' draws when not None: a further stage on the same split sees new windows, not seed's again
    draw_seed: int | None = None
    amp: bool = False                          # fp16 autocast on CUDA for the networks
    log_every: int = 10

    def accelerations(self, epoch: int) -> tuple[int, ...]:
        """The curriculum's acceleration set at this epoch."""
        current = self.curriculum[0][1]
        for start, factors in self.curriculum:
            if epoch >= start:
                current = factors
        return tuple(current)

    def window_seed(self) -> int:
        """The seed of the training windows' draws."""
        return self.seed if self.draw_seed is None else self.draw_seed

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        values["curriculum"] = tuple((int(s), tuple(int(r) for r in f)) for s, f in values["curriculum"])
        values["patterns"] = tuple(values["patterns"])
        values["d_betas"] = tuple(values["d_betas"])
        values["centre_weights"] = tuple((str(c), float(w)) for c, w in values.get("centre_weights", ()))
        for name in ("kind_weights", "train_kind_weights", "train_kt_weights"):
            if name in values:
                values[name] = tuple((str(k), float(w)) for k, w in values[name])
        if "acs_choices" in values:
            values["acs_choices"] = tuple(int(a) for a in values["acs_choices"])
        for name in ("acquisition", "train_acquisition"):
            if isinstance(values.get(name), dict):
                values[name] = Acquisition.from_dict(values[name])
        if isinstance(values.get("geometry"), dict):
            values["geometry"] = Geometry(**values["geometry"])
        return cls(**values)


PRESETS = {
    # the paper's schedule on the paper-size generator (GPU)
    "paper": TrainConfig(model="paper", epochs=20, steps_per_epoch=5000),
    # what the shipped weights train with now (CPU): windows simulated on the fly from the anatomy at its
    # acquired pixel size, readout crops of 96 columns, scanner-like acquisitions with 1-16 coils (a third
    # with one or two: single-coil and few-channel inputs), every input kind; from trained weights
    # (--init-from). The stages before it: docs/training-history.md
    "cpu": TrainConfig(model="small-10-view-sharing", epochs=10, steps_per_epoch=100, lr=2e-4,
                       weight_decay=0.01, grad_clip=1.0, unroll_steps=1, val_samples=16,
                       lr_step_epochs=7, curriculum=((0, (8, 16, 24)),), adv_weight=0.1,
                       centre_weights=(("Phantom", 0.25),), reflect_augment=True,
                       source="simulated", crop_width=96,
                       acquisition=Acquisition(coil_counts=(1, 1, 2, 4, 8, 10, 10, 12, 16))),
    # equal short budgets for the ablations (full / --no-ear / --no-sda / --no-residual) on CPU
    "ablation": TrainConfig(model="small", epochs=6, steps_per_epoch=150, lr=5e-4, weight_decay=0.01,
                            grad_clip=1.0, unroll_steps=1, val_samples=24, lr_step_epochs=5,
                            curriculum=((0, (8,)), (2, (8, 16)), (4, (8, 16, 24)))),
    # a few minutes on CPU: shows the validation metric moving
    "smoke": TrainConfig(model="tiny", epochs=3, steps_per_epoch=40, lr=1e-3, weight_decay=0.01,
                         grad_clip=1.0, curriculum=((0, (8,)), (1, (8, 16)), (2, (8, 16, 24))),
                         lr_step_epochs=100, unroll_steps=1, val_samples=8, log_every=5),
}
