"""Every year-specific CMRxRecon rule (2023, 2024, 2025), one concept per module; a new challenge year should only
need changes here. Spec: ../shared/docs/cmrxrecon-format.md.

- paths.py: which input files to reconstruct (keys, masks: Job, parse_job, classify), the output path each
  year's scorer reads (output_path_2023 / _2024 / _2025), output and ground-truth trees parsed for grouping
- acquisition.py: ACS lines per year, radial masks, cyclic series -> model.reconstruction.VolumeMeta
- output_array.py: the img4ranking array (MATLAB order and singleton rules, the run4Ranking crop, expected shapes)
- scoring_conventions.py: normalisation, groups and success-rate adjustment of each year's scorer
MATLAB's rounding and centring, which the masks, the ACS region and the crop share, are model.matlab.

The names below are the rules' public interface: ``from challenge import rules; rules.parse_job(...)``.
"""
from challenge.rules.acquisition import ACS_LINES, acs_lines, is_cyclic, is_cyclic_base, is_radial, volume_meta
from challenge.rules.output_array import (CINE_LIKE, MAPPING_LIKE, OUTPUT_KEY, SINGLE_FRAME, expected_output_shape,
                                          frame_class, run4ranking, to_output_array)
from challenge.rules.paths import (BASES_2023, DEFAULT_SPLIT, MODALITIES, PATTERNS, SPLITS, TASKS_2023, YEARS, Job,
                                   PathRuleError, ScoredFile, classify, modality_of_base, output_path_2023,
                                   output_path_2024, output_path_2025, parse_job, parse_output_path)
from challenge.rules.scoring_conventions import (MEAN_OF_VALID, MEAN_TIMES_2_MINUS_W, SUM_OVER_TOTAL, ScoringRules,
                                                 scoring_rules)

__all__ = [
    "ACS_LINES", "acs_lines", "is_cyclic", "is_cyclic_base", "is_radial", "volume_meta",
    "CINE_LIKE", "MAPPING_LIKE", "OUTPUT_KEY", "SINGLE_FRAME", "expected_output_shape", "frame_class",
    "run4ranking", "to_output_array",
    "BASES_2023", "DEFAULT_SPLIT", "MODALITIES", "PATTERNS", "SPLITS", "TASKS_2023", "YEARS", "Job",
    "PathRuleError", "ScoredFile", "classify", "modality_of_base", "output_path_2023", "output_path_2024",
    "output_path_2025", "parse_job", "parse_output_path",
    "MEAN_OF_VALID", "MEAN_TIMES_2_MINUS_W", "SUM_OVER_TOTAL", "ScoringRules", "scoring_rules",
]
