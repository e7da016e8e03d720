"""What an input's k-space is, per challenge year: the ACS size, whether the mask is radial, whether the series
is cyclic in time; model.reconstruction.VolumeMeta carries them to the reconstructors."""
from __future__ import annotations

from typing import TYPE_CHECKING

from challenge.rules.paths import Job

if TYPE_CHECKING:
    from model.reconstruction import VolumeMeta

ACS_LINES = {2023: 24, 2024: 16, 2025: 20}
_CYCLIC_PREFIXES = ("cine", "aorta", "tagging")


def acs_lines(job: Job) -> int:
    """Fully sampled central ky lines (or square side for ktRadial): 24 (2023), 16 (2024), 20 (2025)."""
    return ACS_LINES[job.year]


def is_radial(job: Job) -> bool:
    """ktRadial masks are 2-D per frame; their ACS is a central square."""
    return job.pattern == "ktRadial"


def is_cyclic(job: Job) -> bool:
    """Cardiac-cycle series wrap around in time; other series (weightings, perfusion, LGE...) do not."""
    return is_cyclic_base(job.base)


def is_cyclic_base(base: str) -> bool:
    """is_cyclic for a file base name ('cine_sax', 'T1map', ...), as the training layouts name their files."""
    return base.startswith(_CYCLIC_PREFIXES)


def volume_meta(job: Job) -> VolumeMeta:
    from model.reconstruction import VolumeMeta  # imported here so path parsing never pulls in torch

    return VolumeMeta(num_acs=acs_lines(job), radial=is_radial(job), cyclic=is_cyclic(job), name=job.name)
