"""The official CMRxRecon training layouts, read as the releases unpack (../shared/docs/cmrxrecon-format.md §1).

- 2023: ``MultiCoil/{Cine,Mapping}/TrainingSet/FullSample/P###/{cine_sax,cine_lax,T1map,T2map}.mat``, release
  masks ``TrainingSet/AccFactor{04,08,10}/P###/{base}_mask.mat`` (key ``maskRR``, Uniform, 24 ACS lines);
- 2024: ``MultiCoil/{Modality}/TrainingSet/FullSample/P###/{base}.mat``, release masks
  ``TrainingSet/Mask_Task{1,2}/P###/{base}_mask_{Pattern}{R}.mat`` (16 ACS lines);
- 2025: ``MultiCoil/{Modality}/TrainingSet/FullSample/{Center}/{Vendor}/P###/{base}.mat``, release masks
  ``TrainingSet/Mask_TaskAll/{Center}/{Vendor}/P###/{base}_mask_{Pattern}{R}.mat`` (20 ACS lines).

2023 and 2024 share the flat layout; the folders beside a tree's ``FullSample`` folders tell them apart
(``AccFactorXX`` in 2023, ``Mask_Task1``/``Mask_Task2``/``ImgSnapshot`` in 2024), or its modalities. The SDA domain of a file is ``{centre}:{modality}``,
where the centre of a flat-layout file is its release (``CMRxRecon2023``, ``CMRxRecon2024``), which has no
centre or vendor folders.
"""
import re
from dataclasses import dataclass
from pathlib import Path

from challenge.rules import ACS_LINES, is_cyclic_base

EXPECTED = ("FullSample/P###/<file>.mat (2023, 2024) or FullSample/<Center>/<Vendor>/P###/<file>.mat (2025), "
            "under MultiCoil/<Modality>/TrainingSet/")
_MASK_NAME = re.compile(r"^(?P<base>.+)_mask_(?P<pattern>Uniform|ktUniform|ktGaussian|ktRadial)(?P<factor>\d+)\.mat$")
_ACC_FOLDER = re.compile(r"^AccFactor(?P<factor>\d+)$")


class LayoutError(ValueError):
    """A file under a training tree that is in no layout the trainer knows; the message names both."""


@dataclass(frozen=True)
class MaskFile:
    """One of the release's own sampling masks for a fully sampled file."""
    path: Path
    pattern: str
    factor: int
    num_acs: int


@dataclass(frozen=True)
class TrainingFile:
    path: Path
    modality: str
    center: str
    vendor: str
    patient: str
    base: str
    year: str = "2025"
    masks: tuple[MaskFile, ...] = ()

    @property
    def subject(self) -> str:
        return f"{self.center}/{self.vendor}/{self.patient}"

    @property
    def domain_name(self) -> str:
        return f"{self.center}:{self.modality}"

    @property
    def cyclic(self) -> bool:
        return is_cyclic_base(self.base)


def flat_year(root: Path) -> str:
    """2023 or 2024 for a flat-layout tree, from the folders beside its FullSample folders (AccFactorXX: 2023;
    Mask_Task1/Mask_Task2/ImgSnapshot: 2024) or its modalities (only 2024 has more than Cine and Mapping);
    '2023-2024' when nothing tells."""
    training_sets = [p.parent for p in root.rglob("FullSample") if p.is_dir() and p.parent.name == "TrainingSet"]
    names = {p.name for ts in training_sets for p in ts.iterdir() if p.is_dir()}
    if any(_ACC_FOLDER.match(n) for n in names):
        return "2023"
    if names & {"Mask_Task1", "Mask_Task2", "ImgSnapshot"} or {ts.parent.name for ts in training_sets} - {"Cine", "Mapping"}:
        return "2024"
    return "2023-2024"


def release_masks(training_set: Path, year: str, relative: tuple[str, ...], base: str) -> tuple[MaskFile, ...]:
    """The release's masks for ``base`` of the subject folder ``relative`` (P### or Center/Vendor/P###)."""
    found = []
    if year == "2023":
        for folder in sorted(training_set.glob("AccFactor*")):
            match = _ACC_FOLDER.match(folder.name)
            path = folder.joinpath(*relative, f"{base}_mask.mat")
            if match and path.is_file():
                found.append(MaskFile(path, "Uniform", int(match["factor"]), ACS_LINES[2023]))
        return tuple(found)
    folders = ("Mask_TaskAll",) if year == "2025" else ("Mask_Task1", "Mask_Task2")
    acs = ACS_LINES[2025] if year == "2025" else ACS_LINES[2024]     # "2023-2024" trees: the 2024 masks
    for name in folders:
        for path in sorted(training_set.joinpath(name, *relative).glob(f"{base}_mask_*.mat")):
            match = _MASK_NAME.match(path.name)
            if match and match["base"] == base:
                found.append(MaskFile(path, match["pattern"], int(match["factor"]), acs))
    return tuple(found)


def training_file(root: Path, path: Path, years: dict[Path, str]) -> TrainingFile | None:
    """The TrainingFile of a .mat file under ``root``; None when it is no fully sampled file; LayoutError when
    it sits under FullSample in an unknown layout."""
    parts = path.relative_to(root).parts
    if "FullSample" not in parts or path.name.startswith("._"):
        return None
    i = parts.index("FullSample")
    depth = len(parts) - i
    if i < 2 or parts[i - 1] != "TrainingSet" or depth not in (3, 5):
        raise LayoutError(f"{path}: not in a known training layout; expected {EXPECTED}")
    modality, training_set = parts[i - 2], path.parents[depth - 1]
    relative = parts[i + 1:-1]
    if depth == 5:
        center, vendor, patient = relative
        year = "2025"
    else:
        (patient,) = relative
        if root not in years:
            years[root] = flat_year(root)
        year = years[root]
        center, vendor = f"CMRxRecon{year}", ""
    return TrainingFile(path=path, modality=modality, center=center, vendor=vendor, patient=patient,
                        base=path.stem, year=year, masks=release_masks(training_set, year, relative, path.stem))


def find_training_files(roots: Path | list[Path] | tuple[Path, ...]) -> list[TrainingFile]:
    """Every fully sampled file of one or several training trees (any of the three layouts), sorted per root.

    Raises LayoutError naming the first file under a FullSample folder that is in no known layout."""
    roots = [Path(roots)] if isinstance(roots, (str, Path)) else [Path(r) for r in roots]
    files, years = [], {}
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: training tree not found")
        for path in sorted(root.rglob("*.mat")):
            found = training_file(root, path, years)
            if found is not None:
                files.append(found)
    return files
