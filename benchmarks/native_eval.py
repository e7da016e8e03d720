"""Quality where users live: held-out anatomy at the size the scanner writes it, every input kind, real k-space.

    python -m benchmarks.native_eval [--weights A.pt [B.pt ...]] [--out docs/native-eval.md]
                                     [--figures docs/figures] [--subjects N] [--cases TEXT ...]
                                     [--adapt STEPS --adapt-seconds S --adapt-lr LR] [--hard-dc]
                                     [--device cuda] [--acquisition NAME=VALUE ...]
                                     [--peers varnet sigpy-cs] [--peer-weights runs/peers]

Groups (nothing here was trained on; the held-out split is training.build_data's):
- ``held-out cine``: the seen centres' held-out subjects; ``unseen centre``: Center005 (Siemens 3T Vida). The
  real cine anatomy at its native size (whole image, 2x oversampled readout), a scanner-like acquisition
  (``simulation.realistic`` defaults, 10 coils, fixed seeds), then per input kind: k-t masks (ktUniform,
  ktGaussian, ktRadial x AF 8/16/24), time-constant Uniform masks (AF 8/16), static files (one frame, no time
  axis: Uniform 8 and ktGaussian 8) and mapping-like series (T1-like with ktGaussian 8, T2-like with Uniform 8).
  ``--acquisition NAME=VALUE`` changes ``simulation.realistic.Acquisition`` fields for them (e.g. ``tissue_phase=1``):
  the same anatomy, another acquisition (and other mask draws); write such a run to a page of its own.
- ``real k-space``: the fully sampled CMRxRecon 2024 SAX frame (one coil, ../shared/data/real) and the Siemens
  TWIX resolution phantom (two coils, readout oversampling kept; read with twixtools), each a static file
  undersampled with the official algorithms (Uniform 4/8/16/24, k-t masks at AF 8/16/24 on one frame), the SAX
  frame also with the organisers' own Uniform 8 mask file; the reference is the fully sampled RSS.

Metric: the 2024 scorer's (``challenge.scoring.score_file``: z-score per image, PSNR and SSIM) on each case's
centre frame, whole image. Methods: zero-filled, CG-SENSE, each weights file through
``GenreReconstructor.reconstruct_frames`` (predict.py's own path) with ``--ensemble`` passes (and ``--hard-dc``),
and each ``--peers`` name (development peers, peers/: their ``reconstruct_frames``, predict.py's path too; a learned
peer with ``PEER_WEIGHTS/NAME/NAME.pt``).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch

from benchmarks.bench_predict import figure_link, replace_section
from challenge.masks import make_mask
from challenge.scoring import score_file
from model.adaptation import AdaptConfig
from model.checkpoint import file_sha256
from model.classical import CGSense
from model.coils import rss
from model.fftc import ifft2c
from model.inference import GenreReconstructor
from model.provenance import format_machine, machine_summary
from model.reconstruction import VolumeMeta
from simulation.anatomy import RealDataMissing, list_cine_series, load_cine_series, real_data_root
from simulation.contrast import t1_series, t2_series
from simulation.realistic import Acquisition, acquire, draw_acquisition
from training.build_data import HELDOUT_SUBJECTS, UNSEEN_CENTRE

BEGIN, END = "<!-- native_eval:begin -->", "<!-- native_eval:end -->"
NUM_ACS = 16                      # the 2024 count, as make eval's trees
# a row, not a method: the simulated truth without noise, scored against the noisy reference (how far any
# reconstruction can go when the reference carries the acquisition's noise, as the organisers' references do)
NOISE_FREE = "noise-free truth"
REAL_SAX = Path("cmrx24_demo_sax_1coil")
TWIX = Path("tfmri_gre_phantom_twix") / "gre.dat"
# (kind, pattern, AF, series): series "cine" (12 frames), "static" (one frame), "T1"/"T2" (mapping-like)
SIM_CASES = tuple([("kt", p, r, "cine") for p in ("ktUniform", "ktGaussian", "ktRadial") for r in (8, 16, 24)]
                  + [("uniform", "Uniform", r, "cine") for r in (8, 16)]
                  + [("static", "Uniform", 8, "static"), ("static", "ktGaussian", 8, "static"),
                     ("mapping", "ktGaussian", 8, "T1"), ("mapping", "Uniform", 8, "T2")])
REAL_CASES = tuple([("static", "Uniform (organisers' mask file)", 8, "file")]
                   + [("static", "Uniform", r, "") for r in (4, 8, 16, 24)]
                   + [("static", p, r, "") for p in ("ktUniform", "ktGaussian", "ktRadial") for r in (8, 16, 24)])


@dataclass
class Row:
    group: str
    kind: str
    pattern: str
    acceleration: int
    case: str
    method: str
    psnr: float
    ssim: float


@dataclass
class Case:
    """One slice to reconstruct: fully sampled k-space (nt, nc, ny, nx), its mask and the frame scored."""
    group: str
    kind: str
    pattern: str
    acceleration: int
    name: str
    kspace: np.ndarray
    mask: np.ndarray
    frame: int
    cyclic: bool
    noise_free: np.ndarray | None = None   # simulated cases: the scored frame's RSS without the acquisition noise

    @property
    def reference(self) -> np.ndarray:
        return rss(ifft2c(torch.from_numpy(self.kspace[self.frame])), dim=0).numpy()


SIMULATED = ("held-out cine", "unseen centre")


def heldout_series(subjects: int | None) -> list[tuple[str, str, np.ndarray]]:
    """(group, subject, native-size cine (12, ny, nx)) of the held-out subjects and the unseen centre."""
    chosen = []
    for record in list_cine_series():
        if record.folder in HELDOUT_SUBJECTS:
            chosen.append(("held-out cine", record))
        elif record.center == UNSEEN_CENTRE:
            chosen.append(("unseen centre", record))
    if subjects is not None:
        chosen = [c for c in chosen if c[0] == "held-out cine"][:subjects] + \
                 [c for c in chosen if c[0] == "unseen centre"][:subjects]
    return [(group, f"{r.folder}/{r.view}{r.slice}", load_cine_series(r)) for group, r in chosen]


def simulated_cases(series: list[tuple[str, str, np.ndarray]], seed: int = 0,
                    acquisition: Acquisition = Acquisition()) -> list[Case]:
    """The SIM_CASES acquisitions of each series. A series' draws depend only on its group and its rank in that group
    (interleaved as the --subjects 1 runs numbered them), so a larger --subjects adds cases and changes none."""
    cases = []
    ranks: dict[str, int] = {}
    for group, name, cine in series:
        rank = ranks[group] = ranks.get(group, -1) + 1
        index = rank * len(SIMULATED) + SIMULATED.index(group)
        for case_index, (kind, pattern, factor, source) in enumerate(SIM_CASES):
            rng = np.random.default_rng([seed, index, case_index])
            frame = cine[len(cine) // 2]
            images = {"cine": cine, "static": frame[None], "T1": t1_series(frame, rng),
                      "T2": t2_series(frame, rng)}[source]
            draw = draw_acquisition(images, acquisition, rng, n_coils=10)
            kspace = acquire(images, draw, rng).numpy()
            nt, _, ny, nx = kspace.shape
            mask = make_mask(pattern, nt, ny, nx, factor, NUM_ACS, rng)
            # the same acquisition without its noise (drawn after the mask, so the cases stay as they were)
            clean = acquire(images[nt // 2:nt // 2 + 1], dataclasses.replace(draw, sigma=0.0,
                                                                              phase=draw.phase[nt // 2:nt // 2 + 1]), rng)
            cases.append(Case(group, kind, pattern, factor, name, kspace, mask, nt // 2, source == "cine",
                              rss(ifft2c(clean[0]), dim=0).numpy()))
    return cases


def twix_kspace(path: Path) -> np.ndarray | None:
    """The Siemens TWIX phantom's fully sampled k-space (nc, ny, nx) complex64, readout oversampling kept as
    CMRxRecon keeps it; None when twixtools (development dependency) is not installed."""
    try:
        import twixtools
    except ImportError:
        return None
    scan = twixtools.map_twix(twixtools.read_twix(str(path), verbose=False))[-1]["image"]
    scan.flags["remove_os"] = False
    lines = np.asarray(scan[:]).squeeze()                                  # (lin, cha, col)
    return np.ascontiguousarray(lines.transpose(1, 0, 2)).astype(np.complex64)


def sax_kspace(folder: Path) -> np.ndarray:
    """The real CMRxRecon 2024 SAX frame's fully sampled k-space (ny, nx) complex64 (one coil, readout last)."""
    return scipy.io.loadmat(folder / "cine_sax.mat")["kspace_full"].T.astype(np.complex64)


def real_cases(root: Path | None) -> list[Case]:
    """The fully sampled real acquisitions, undersampled every way of REAL_CASES: the 1-coil CMRxRecon SAX
    frame (with the organisers' own mask file too) and the 2-coil TWIX phantom; [] where they are absent."""
    cases = []
    twix = (root / TWIX) if root else None
    if twix is not None and twix.is_file():
        kspace = twix_kspace(twix)
        if kspace is None:
            print("note: twixtools not installed (requirements-dev.txt): TWIX phantom rows skipped", file=sys.stderr)
        else:
            nc, ny, nx = kspace.shape
            for kind, pattern, factor, source in REAL_CASES:
                if source != "file":
                    mask = make_mask(pattern, 1, ny, nx, factor, NUM_ACS, np.random.default_rng(factor))
                    cases.append(Case("real k-space, TWIX phantom (2 coils)", kind, pattern, factor, "gre.dat",
                                      kspace[None], mask, 0, False))
    folder = (root / REAL_SAX) if root else None
    if folder is None or not (folder / "cine_sax.mat").is_file():
        return cases
    kspace = sax_kspace(folder)                                                                    # (ny, nx)
    ny, nx = kspace.shape
    import h5py
    with h5py.File(folder / "cine_sax_mask_Uniform8.mat", "r") as handle:
        official = np.asarray(handle["mask"]).astype(bool)                                        # (ny, nx)
    for kind, pattern, factor, source in REAL_CASES:
        mask = official[None] if source == "file" else make_mask(pattern, 1, ny, nx, factor, NUM_ACS,
                                                                 np.random.default_rng(factor))
        cases.append(Case("real k-space, CMRxRecon SAX (1 coil)", kind, pattern, factor, "cmrx24_demo_sax_1coil",
                          kspace[None, None], mask, 0, False))
    return cases


def zero_filled(case: Case) -> np.ndarray:
    masked = torch.from_numpy(case.kspace[case.frame] * case.mask[case.frame][None])
    return rss(ifft2c(masked), dim=0).numpy()


def meta_of(case: Case) -> VolumeMeta:
    return VolumeMeta(num_acs=NUM_ACS, radial=case.pattern == "ktRadial", cyclic=case.cyclic, name=case.name)


def cg_sense(case: Case) -> np.ndarray:
    """CG-SENSE of the scored frame alone (its maps from its own ACS lines, which every frame carries)."""
    frame = slice(case.frame, case.frame + 1)
    masked = (case.kspace[frame] * case.mask[frame][:, None])[:, None]
    return CGSense().reconstruct(masked, case.mask[frame], meta_of(case))[0, 0]


def scored(reference: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """The 2024 scorer on one (ny, nx) image (MATLAB order is (nx, ny))."""
    score = score_file(reference.T.astype(np.float32), image.T.astype(np.float32), 2024)
    return score.psnr, score.ssim


def evaluate(cases: list[Case], reconstructors: dict, keep: dict | None = None,
             baselines: bool = True) -> list[Row]:
    """Every method on every case; ``reconstructors``: label -> anything with GenreReconstructor's
    ``reconstruct_frames`` (GENRE, the peers). ``keep``: {case index: {}} filled with the images for the figures.
    ``baselines``: score zero-filled and CG-SENSE too (else they are computed for the figures' cases only)."""
    rows = []
    for index, case in enumerate(cases):
        reference = case.reference
        figure = keep is not None and index in keep
        images = {"zero-filled": zero_filled(case), "CG-SENSE": cg_sense(case)} if baselines or figure else {}
        if baselines and case.noise_free is not None:
            images[NOISE_FREE] = case.noise_free
        masked = case.kspace * case.mask[:, None]
        for label, reconstructor in reconstructors.items():
            images[label] = reconstructor.reconstruct_frames(masked, case.mask, meta_of(case), [case.frame])[0]
            if getattr(reconstructor, "adapt", None) is not None:      # the peers do not adapt
                print(f"  {label}: {reconstructor.last_adaptation}", flush=True)
        for method, image in images.items():
            if baselines or method in reconstructors:
                rows.append(Row(case.group, case.kind, case.pattern, case.acceleration, case.name, method,
                                *scored(reference, image)))
        if figure:
            keep[index] = {"reference": reference, **{k: v for k, v in images.items() if k != NOISE_FREE}}
        scored_here = len(images) if baselines else len(reconstructors)
        print(f"{index + 1}/{len(cases)} {case.group} {case.kind} {case.pattern}{case.acceleration}: " +
              ", ".join(f"{r.method} {r.psnr:.2f}" for r in rows[-scored_here:]), flush=True)
    return rows


def summary(rows: list[Row]) -> tuple[list[str], dict[tuple, dict[str, tuple[float, float, int]]]]:
    """(methods in order, {(group, kind, pattern, AF): {method: (mean PSNR, mean SSIM, cases)}})."""
    seen = list(dict.fromkeys(r.method for r in rows))
    baselines = [m for m in ("zero-filled", "CG-SENSE", NOISE_FREE) if m in seen]
    methods = baselines + [m for m in seen if m not in baselines]          # the weights in the order given
    cells: dict[tuple, dict[str, list[Row]]] = {}
    for r in rows:
        cells.setdefault((r.group, r.kind, r.pattern, r.acceleration), {}).setdefault(r.method, []).append(r)
    return methods, {key: {m: (float(np.mean([r.psnr for r in v])), float(np.mean([r.ssim for r in v])), len(v))
                           for m, v in per.items()} for key, per in cells.items()}


def rows_from_section(text: str) -> list[Row]:
    """The rows of a table that format_section wrote (the text between BEGIN and END), so that a committed page
    can be merged when the --json of its runs is gone. A cell of n cases comes back as n cases at the cell's
    rounded means: the table re-renders unchanged; summary means may move by the rounding (0.01 dB)."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"no {BEGIN} ... {END} section")
    def cells_of(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    lines = [l for l in text[text.index(BEGIN):text.index(END)].splitlines() if l.startswith("| ")]
    header = cells_of(lines[0])
    if header[:5] != ["group", "kind", "mask", "AF", "n"]:
        raise ValueError(f"unexpected table header {header[:5]}")
    rows = []
    for line in lines[1:]:
        cells = cells_of(line)
        if len(cells) != len(header) or not cells[3].isdigit():
            continue                                   # the summary table below the cells
        group, kind, pattern, factor, n = cells[:5]
        for method, cell in zip(header[5:], cells[5:]):
            if cell:
                psnr, ssim = (float(x) for x in cell.split(" / "))
                rows += [Row(group, kind, pattern, int(factor), f"{group} {kind} {pattern} {factor} #{i}", method,
                             psnr, ssim) for i in range(int(n))]
    return rows


def merged_rows(path: Path) -> list[Row]:
    """Rows of an earlier run: its --json, or a page (.md) this benchmark wrote."""
    if path.suffix == ".md":
        return rows_from_section(path.read_text())
    return [Row(**r) for r in json.loads(path.read_text())]


def format_section(rows: list[Row], command: str, machine: dict, weights: dict[str, str], ensemble: int,
                   figures: list[str]) -> str:
    methods, cells = summary(rows)
    lines = [BEGIN, "## Native size, every input kind, real k-space (benchmarks/native_eval.py)", "",
             f"`{command}` on {datetime.date.today().isoformat()}; {format_machine(machine)}.",
             f"GENRE rows of this run: `--ensemble {ensemble}`; " + "; ".join(f"{k} = `{v}`" if v else k
                                                                   for k, v in weights.items()) + ".",
             "2024 metric (z-score per image) on each case's centre frame, whole image; PSNR dB / SSIM, mean over "
             "the cases (n).", ""]
    lines.append("| group | kind | mask | AF | n | " + " | ".join(methods) + " |")
    lines.append("|---|---|---|---|---|" + "---|" * len(methods))
    for key, per in cells.items():
        n = next(iter(per.values()))[2]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {n} | "
                     + " | ".join(f"{per[m][0]:.2f} / {per[m][1]:.3f}" if m in per else "" for m in methods) + " |")
    lines += ["", "Means over cells (PSNR dB), the newest GENRE column's margins over the others; a cell is one row "
              "above:", "",
              format_summary(rows)]
    lines += [""] + [f"![{Path(f).stem}]({f})" for f in figures]
    lines.append(END)
    return "\n".join(lines) + "\n"


# (label, which cells): the summary's groups of cells; the one-frame ktUniform rows of the real groups are left
# out, being the Uniform masks again (a k-t lattice on a single frame is the Uniform one)
SUMMARY_GROUPS = (
    ("real SAX, 1 coil (distinct masks)", lambda g, k, p, r: g.startswith("real k-space, CMRxRecon") and p != "ktUniform"),
    ("real TWIX phantom, 2 coils (distinct masks)", lambda g, k, p, r: g.startswith("real k-space, TWIX") and p != "ktUniform"),
    ("held-out cine, every kind", lambda g, k, p, r: g == "held-out cine"),
    ("unseen centre, every kind", lambda g, k, p, r: g == "unseen centre"),
    ("simulated, k-t AF 8/16", lambda g, k, p, r: g in SIMULATED and k == "kt" and r in (8, 16)),
    # issue 15's AF 8/16 target is per trajectory
    *((f"simulated, {t} AF 8/16", lambda g, k, p, r, t=t: g in SIMULATED and k == "kt" and p == t and r in (8, 16))
      for t in ("ktUniform", "ktGaussian", "ktRadial")),
    ("simulated, k-t AF 24", lambda g, k, p, r: g in SIMULATED and k == "kt" and r == 24),
    ("simulated, Uniform AF 8/16", lambda g, k, p, r: g in SIMULATED and k == "uniform"),
    ("simulated, static", lambda g, k, p, r: g in SIMULATED and k == "static"),
    ("simulated, mapping-like", lambda g, k, p, r: g in SIMULATED and k == "mapping"),
)


def format_summary(rows: list[Row]) -> str:
    """Means over the cells of each SUMMARY_GROUPS group, per method, and the margins of the last GENRE column
    (the newest weights; the last method when no GENRE row is there) over the others (markdown table)."""
    methods, cells = summary(rows)
    last = next((m for m in reversed(methods) if m.startswith("GENRE")), methods[-1])
    others = [m for m in methods if m not in (last, NOISE_FREE)]
    lines = ["| cells | n | " + " | ".join(methods) + " | " + " | ".join(f"{last} − {m}" for m in others) + " |",
             "|---|---|" + "---|" * (len(methods) + len(others))]
    for label, belongs in SUMMARY_GROUPS:
        chosen = [per for key, per in cells.items() if belongs(*key)]
        if not chosen:
            continue
        means = {m: float(np.mean([per[m][0] for per in chosen])) for m in methods if all(m in per for per in chosen)}
        lines.append(f"| {label} | {len(chosen)} | " + " | ".join(f"{means[m]:.2f}" if m in means else "" for m in methods)
                     + " | " + " | ".join(f"{means[last] - means[m]:+.2f}" if m in means and last in means else ""
                                          for m in others) + " |")
    return "\n".join(lines)


def save_figure(path: Path, images: dict[str, np.ndarray], title: str) -> None:
    """Panels (ny down, readout across; each scaled to the reference's 99.5th percentile) over their error
    maps (x4), with the panel names in the title line."""
    from PIL import Image, ImageDraw

    reference = images["reference"]
    top = float(np.quantile(reference, 0.995)) or 1.0
    panels = np.concatenate([np.clip(image / top, 0, 1) for image in images.values()], 1)
    errors = np.concatenate([np.clip(4 * np.abs(image - reference) / top, 0, 1) for image in images.values()], 1)
    picture = Image.fromarray((255 * np.concatenate([panels, errors], 0)).astype(np.uint8)).convert("RGB")
    canvas = Image.new("RGB", (picture.width, picture.height + 14), "black")
    canvas.paste(picture, (0, 14))
    ImageDraw.Draw(canvas).text((2, 1), f"{title} | left to right: {' / '.join(images)} | below: |error| x4",
                                fill="yellow")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def peer_reconstructor(name: str, weights_root: Path | None):
    """(reconstructor, its weights file or None) of development peer ``name``."""
    import peers

    if name not in peers.PEERS:
        raise ValueError(f"unknown peer; choose among {', '.join(peers.PEERS)}")
    weights = None
    if peers.PEERS[name].learned:
        weights = (weights_root / name / f"{name}.pt") if weights_root else peers.default_weights(name)
    return peers.build_peer(name, weights=weights), weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.native_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, nargs="*", default=[],
                        help="GENRE weights files to compare (none: the peers and baselines alone)")
    parser.add_argument("--labels", nargs="+", help="a label per weights file (default: the file stems)")
    parser.add_argument("--ensemble", type=int, default=1)
    parser.add_argument("--subjects", type=int, help="at most this many subjects per simulated group")
    parser.add_argument("--out", type=Path, default=Path("docs/native-eval.md"))
    parser.add_argument("--figures", type=Path,
                        help="write the figures here (make eval: docs/figures); none without it, so that a side run "
                             "never replaces the shipped page's")
    parser.add_argument("--json", type=Path, help="every row as JSON")
    parser.add_argument("--no-baselines", action="store_true",
                        help="score the weights only (zero-filled and CG-SENSE rows come from --merge)")
    parser.add_argument("--adapt", type=int, default=0, metavar="STEPS",
                        help="test-time adaptation (model.adaptation) of each case first, at most STEPS steps")
    parser.add_argument("--adapt-seconds", type=float, default=600.0, help="and at most this wall time per case")
    parser.add_argument("--adapt-lr", type=float, default=AdaptConfig.lr,
                        help=f"the adaptation's Adam learning rate (default {AdaptConfig.lr:g})")
    parser.add_argument("--device", default="cpu", help="where the GENRE rows run (cuda: the GPU)")
    parser.add_argument("--hard-dc", action="store_true",
                        help="GENRE rows put the measured k-space back into each output (predict.py --hard-dc)")
    parser.add_argument("--acquisition", nargs="+", metavar="NAME=VALUE", default=[],
                        help="the simulated cases' Acquisition fields changed (default simulation.realistic's)")
    parser.add_argument("--cases", nargs="+", metavar="TEXT",
                        help="only the cases whose 'group kind pattern AF' contains one of these texts")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="rows of earlier runs shown in the same table, e.g. baselines: their --json, or a page "
                             "this benchmark wrote (.md; its cells at their rounded means)")
    parser.add_argument("--peers", nargs="*", default=[], metavar="NAME",
                        help="development peers (peers/: varnet, sigpy-cs), each one more column")
    parser.add_argument("--peer-weights", type=Path, help="DIR/NAME/NAME.pt per learned peer (default runs/peers)")
    args = parser.parse_args(argv)
    if not args.weights and not args.peers:
        print("error: nothing to score: give --weights, --peers or both", file=sys.stderr)
        return 2
    labels = args.labels or [f"GENRE {w.stem}" for w in args.weights]
    if len(labels) != len(args.weights):
        print("error: one label per weights file", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    adapt = AdaptConfig(steps=args.adapt, seconds=args.adapt_seconds, lr=args.adapt_lr) if args.adapt > 0 else None
    if adapt is not None:
        rate = "" if args.adapt_lr == AdaptConfig.lr else f" lr {args.adapt_lr:g}"
        labels = [f"{label} + TTA {args.adapt}{rate}" for label in labels]
    if args.hard_dc:
        labels = [f"{label} + hard DC" for label in labels]
    reconstructors = {label: GenreReconstructor(w, device=args.device, ensemble=args.ensemble, adapt=adapt,
                                                 hard_dc=args.hard_dc)
                      for label, w in zip(labels, args.weights)}
    peer_weights = {}
    for name in args.peers:
        try:
            reconstructors[name], peer_weights[name] = peer_reconstructor(name, args.peer_weights)
        except Exception as error:     # noqa: BLE001 - unknown name, package or weights: say which, stop
            print(f"error: --peers {name}: {error}", file=sys.stderr)
            return 2
    try:
        series = heldout_series(args.subjects)
    except RealDataMissing as error:
        print(f"note: no real cine anatomy ({error}); simulated groups skipped", file=sys.stderr)
        series = []
    try:
        acquisition = Acquisition().overridden(args.acquisition)
    except ValueError as error:
        print(f"error: --acquisition: {error}", file=sys.stderr)
        return 2
    cases = real_cases(real_data_root()) + simulated_cases(series, acquisition=acquisition)
    if args.cases:
        cases = [c for c in cases if any(text in f"{c.group} {c.kind} {c.pattern} {c.acceleration}"
                                         for text in args.cases)]
    if not cases:
        print("error: no real data under ../shared/data/real (or $GENRE_REAL_DATA): nothing to evaluate",
              file=sys.stderr)
        return 2
    real_sax = next((i for i, c in enumerate(cases) if c.name == "cmrx24_demo_sax_1coil"), None)
    shown = {real_sax: "real-kspace-sax-uniform8.png"} if real_sax is not None else {}
    pick = next((i for i, c in enumerate(cases) if c.group == "held-out cine" and c.pattern == "ktUniform"
                 and c.acceleration == 16), None)
    if pick is not None:
        shown[pick] = "heldout-cine-ktuniform16.png"
    keep = {index: {} for index in shown} if args.figures else {}
    fresh = evaluate(cases, reconstructors, keep, baselines=not args.no_baselines)
    computed = {r.method for r in fresh}
    # merged rows of a method this run computed again would count its cases twice
    rows = [r for path in args.merge for r in merged_rows(path) if r.method not in computed]
    rows += fresh
    figures = []
    for index, filename in shown.items():
        if keep.get(index):
            case = cases[index]
            save_figure(args.figures / filename, keep[index],
                        f"{case.group}: {case.pattern} AF {case.acceleration}, frame {case.frame}")
            figures.append(figure_link(args.figures / filename, args.out))
    command = shlex.join(["python", "-m", "benchmarks.native_eval", *(sys.argv[1:] if argv is None else argv)])
    weights = {label: f"{w} (sha256 {file_sha256(w)[:12]})" for label, w in zip(labels, args.weights)}
    for name, path in peer_weights.items():   # a learned peer's budget beside GENRE's (its training record)
        record = getattr(reconstructors[name], "record", {})
        weights[name] = (f"{path} (sha256 {file_sha256(path)[:12]}, {record.get('steps')} steps, "
                         f"{record.get('wall_time_minutes')} min)") if path else ""
    weights.update({f"rows merged from {path}": "" for path in args.merge})
    text = args.out.read_text() if args.out.exists() else "# Native-size evaluation\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(replace_section(text, format_section(rows, command, machine_summary(), weights,
                                                              args.ensemble, figures), BEGIN, END))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))   # merged rows included
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
