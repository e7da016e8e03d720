"""How each year's scorer aggregates: the per-image normalisation, the groups it reports, how PSNR, SSIM and
NMSE are pooled over a group with the success rate w, and where the official scorer takes the submission as the
reference. challenge.scoring applies these; spec: ../shared/docs/cmrxrecon-format.md (section 5)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from challenge.rules.paths import ScoredFile

MEAN_OF_VALID = "mean"                          # plain mean over the valid files
SUM_OVER_TOTAL = "sum_over_total"               # sum over valid files / all expected files (= w x mean)
MEAN_TIMES_2_MINUS_W = "mean_times_2_minus_w"   # mean over valid files x (2 - w); w = valid / total


def _normalise_max(image: np.ndarray) -> np.ndarray:
    return image / image.max()


def _normalise_zscore(image: np.ndarray) -> np.ndarray:
    return (image - image.mean()) / (image.std() + 1e-8)


def _normalise_percentile(image: np.ndarray) -> np.ndarray:
    magnitude = np.abs(image)
    peak = np.percentile(magnitude, 99.5)
    # the organisers leave an image whose 99.5th percentile is 0 unnormalised
    return magnitude / peak if peak > 0 else magnitude


def _group_2023(scored: ScoredFile) -> str:
    return f"{scored.base}/AccFactor{scored.acceleration:02d}"


def _group_2024(scored: ScoredFile) -> str:
    # Task 1 is reported per acceleration, Task 2 per trajectory pooled over R.
    if scored.pattern == "Uniform":
        return f"{scored.modality}/Uniform{scored.acceleration}"
    return f"{scored.modality}/{scored.pattern or scored.task}"


def _group_2025(scored: ScoredFile) -> str:
    # R1 is reported per centre and vendor; the disease groups of the other tasks are not in the paths.
    if scored.task == "TaskR1":
        return f"{scored.center}/{scored.vendor}"
    return scored.task


@dataclass(frozen=True)
class ScoringRules:
    year: int
    normalise: Callable[[np.ndarray], np.ndarray]    # per 2-D image, GT and submission separately
    group_of: Callable[[ScoredFile], str]
    adjustment: str                                  # PSNR and SSIM aggregation over a group
    nmse_adjustment: str
    reference_swap_ndims: frozenset[int]             # GT ranks for which the scorer's argument swap bites

    def submission_is_reference(self, gt_ndim: int) -> bool:
        """True where the official scorer takes the submission as reference (data_range from the normalised
        submission, NMSE denominator = |submission|^2): calmetric(gt, recon) against parameters (pred, gt)
        on 4-D arrays in 2024/2025; 3-D arrays take the other branch, which swaps back."""
        return gt_ndim in self.reference_swap_ndims


def scoring_rules(year: int) -> ScoringRules:
    if year == 2023:
        # 2023 averages the valid files of each group; there is no success-rate adjustment.
        return ScoringRules(2023, _normalise_max, _group_2023, MEAN_OF_VALID, MEAN_OF_VALID, frozenset())
    if year == 2024:
        return ScoringRules(2024, _normalise_zscore, _group_2024, SUM_OVER_TOTAL, SUM_OVER_TOTAL,
                            frozenset({4}))
    if year == 2025:
        # test-2025/Evaluation.py has a 5-D branch that also takes the submission as reference
        return ScoringRules(2025, _normalise_percentile, _group_2025, SUM_OVER_TOTAL, MEAN_TIMES_2_MINUS_W,
                            frozenset({4, 5}))
    raise ValueError(f"unsupported challenge year {year}")
