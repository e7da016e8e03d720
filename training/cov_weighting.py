"""Coefficient-of-variation loss weighting (Groenendijk et al., WACV 2021; method.md section 8).

Each term i keeps Welford statistics of its loss ratio l_i = L_i / L0_i (L0 = its first value, then its
running mean). Weights are alpha_i = c_i / sum_j c_j with c_i = std(l_i) / mean(l_i), taken from the statistics
before this step's update and used as constants. Terms count their own iterations, so a term that joins late
(SDA once its window has another domain) starts fresh: while a term has been seen at most once (t <= 1) it
gets the mean c of the established terms (all weights are 1/K at the very start). Missing terms (None) and
terms whose L0 is 0 are skipped this step and the other weights renormalised. A term may be capped: its weight is
at most its cap and the others share the rest in their CoV proportions (a discriminator that starts learning makes
the adversarial ratio noisy, and uncapped CoV then hands it a growing share: 0.03 -> 0.135 in stage 30).
"""
from collections.abc import Mapping, Sequence

import torch

GENERATOR_LOSS_NAMES = ("image", "kspace", "ssim", "ear", "sda", "adv")
MEAN_MODES = ("full", "decay")
_STD_EPS = 1e-8


class CoVWeighting:
    def __init__(self, names: Sequence[str] = GENERATOR_LOSS_NAMES, mean_mode: str = "full", decay: float = 1.0,
                 caps: Mapping[str, float] | None = None):
        """names: the K loss terms; mean_mode 'full' (running mean, reference default) or 'decay' (fixed
        mean parameter `decay`; the reference default 1.0 freezes L0 at each term's first value); caps: the
        largest weight a term may take, in (0, 1]."""
        caps = dict(caps or {})
        if mean_mode not in MEAN_MODES or len(set(names)) != len(names) or not names:
            raise ValueError(
                f"training/cov_weighting.py: need distinct loss names and mean_mode in {MEAN_MODES}, "
                f"got {list(names)}, {mean_mode!r}"
            )
        if not set(caps) <= set(names) or any(not 0 < cap <= 1 for cap in caps.values()):
            raise ValueError(f"training/cov_weighting.py: caps must name loss terms {list(names)} and lie in "
                             f"(0, 1], got {caps}")
        self.names = tuple(names)
        self.caps = torch.tensor([caps.get(name, 1.0) for name in self.names], dtype=torch.float32)
        self.mean_mode = mean_mode
        self.decay = float(decay)
        k = len(self.names)
        self.count = torch.zeros(k, dtype=torch.int64)        # iterations seen per term
        self.mean_L = torch.zeros(k, dtype=torch.float32)     # running mean of the raw loss (L0 after t = 0)
        self.mean_l = torch.zeros(k, dtype=torch.float32)     # running mean of the ratio
        self.S_l = torch.zeros(k, dtype=torch.float32)        # Welford sum of squared ratio deviations

    def __call__(self, losses: Mapping[str, torch.Tensor | None]) -> tuple[torch.Tensor, dict[str, float]]:
        """losses: one 0-d tensor (or None) per name. Returns (sum_i alpha_i L_i, {name: alpha_i}); alpha_i is
        0.0 for a skipped term. Updates the statistics of the terms used."""
        if set(losses) != set(self.names):
            raise ValueError(
                f"training/cov_weighting.py: expected loss terms {sorted(self.names)}, got {sorted(losses)}"
            )
        values = torch.zeros(len(self.names), dtype=torch.float32)
        active = torch.zeros(len(self.names), dtype=torch.bool)
        for i, name in enumerate(self.names):
            loss = losses[name]
            if loss is None:
                continue
            values[i] = float(loss.detach())
            reference = values[i] if self.count[i] == 0 else self.mean_L[i]
            active[i] = bool(reference != 0)
        if not active.any():
            raise ValueError("training/cov_weighting.py: every loss term is missing or has L0 = 0")

        alphas = self._alphas(active)
        self._update(values, active)

        total = sum(float(alphas[i]) * losses[name] for i, name in enumerate(self.names) if active[i])
        return total, {name: float(alphas[i]) for i, name in enumerate(self.names)}

    def _alphas(self, active: torch.Tensor) -> torch.Tensor:
        established = active & (self.count >= 2)
        std = torch.sqrt(self.S_l / self.count.clamp_min(1).float() + _STD_EPS)
        cov = torch.where(established, std / self.mean_l.where(established, torch.ones_like(self.mean_l)),
                          torch.zeros_like(std))
        fresh_value = cov[established].mean() if established.any() else torch.tensor(1.0)
        cov = torch.where(active & ~established, fresh_value, cov)
        return self._capped(cov / cov.sum())

    def _capped(self, alphas: torch.Tensor) -> torch.Tensor:
        """Clamp capped weights and rescale the free ones to keep the sum at 1 (repeated: a rescale may lift
        another capped term over its cap); left as they are when every positive weight would be capped."""
        fixed = torch.zeros_like(alphas, dtype=torch.bool)
        for _ in range(len(self.names)):
            over = ~fixed & (alphas > self.caps)
            if not over.any():
                break
            fixed = fixed | over
            free = ~fixed & (alphas > 0)
            if not free.any():
                break
            alphas = torch.where(fixed, self.caps, alphas)
            alphas = torch.where(free, alphas * (1 - alphas[fixed].sum()) / alphas[free].sum(), alphas)
        return alphas

    def _update(self, values: torch.Tensor, active: torch.Tensor) -> None:
        first = self.count == 0
        reference = torch.where(first, values, self.mean_L)
        ratio = values / torch.where(active, reference, torch.ones_like(reference))
        if self.mean_mode == "decay":
            m = torch.full_like(values, self.decay)
        else:
            m = 1.0 - 1.0 / (self.count.float() + 1.0)
        m = torch.where(first, torch.zeros_like(m), m)
        new_mean_l = m * self.mean_l + (1 - m) * ratio
        new_S_l = self.S_l + (ratio - self.mean_l) * (ratio - new_mean_l)
        new_mean_L = m * self.mean_L + (1 - m) * values
        self.mean_l = torch.where(active, new_mean_l, self.mean_l)
        self.S_l = torch.where(active, new_S_l, self.S_l)
        self.mean_L = torch.where(active, new_mean_L, self.mean_L)
        self.count = self.count + active.long()

    def state_dict(self) -> dict:
        return {
            "names": list(self.names), "mean_mode": self.mean_mode, "decay": self.decay,
            "count": self.count.clone(), "mean_L": self.mean_L.clone(),
            "mean_l": self.mean_l.clone(), "S_l": self.S_l.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        if list(state.get("names", [])) != list(self.names):
            raise ValueError(
                f"training/cov_weighting.py: checkpoint CoV terms {state.get('names')} do not match "
                f"{list(self.names)}"
            )
        self.mean_mode, self.decay = state["mean_mode"], float(state["decay"])
        self.count = state["count"].to(torch.int64).cpu().clone()
        self.mean_L = state["mean_L"].to(torch.float32).cpu().clone()
        self.mean_l = state["mean_l"].to(torch.float32).cpu().clone()
        self.S_l = state["S_l"].to(torch.float32).cpu().clone()
