"""Generator losses of GENRE-CMR (method.md section 7): fidelity (image L1, k-space, SSIM), EAR and SDA.

Image losses take magnitudes ``(B, H, W)`` and the data range ``L`` = target volume max per sample, shape
``(B,)`` (a Python float or 0-d tensor is broadcast). Every loss returns a 0-d tensor averaged over the batch.
"""
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from challenge.scoring import SSIM_K1, SSIM_K2, SSIM_WINDOW   # the organisers' SSIM settings
from model.coils import sens_expand

SDA_VARIANCE_EPS = 1e-6

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _check_images(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(
            f"training/losses.py: expected pred and target of equal shape (B, H, W), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def _range_per_sample(data_range: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """data_range scalar or (B,) -> (B, 1, 1) on like's device/dtype."""
    value = torch.as_tensor(data_range, dtype=like.dtype, device=like.device)
    return value.reshape(-1, 1, 1).expand(like.shape[0], 1, 1)


def ssim_map(pred: torch.Tensor, target: torch.Tensor, data_range: torch.Tensor | float,
             win_size: int = SSIM_WINDOW, k1: float = SSIM_K1, k2: float = SSIM_K2) -> torch.Tensor:
    """fastMRI SSIM map: pred, target (B, H, W) -> (B, H - win + 1, W - win + 1) (uniform window, valid conv,
    sample covariance). Its mean equals skimage's ``structural_similarity`` mean with the same settings."""
    _check_images(pred, target)
    if min(pred.shape[-2:]) < win_size:
        raise ValueError(f"training/losses.py: image {tuple(pred.shape[-2:])} smaller than SSIM window {win_size}")
    x, y = pred.unsqueeze(1), target.unsqueeze(1)
    window = torch.full((1, 1, win_size, win_size), 1.0 / win_size**2, dtype=x.dtype, device=x.device)
    num_pixels = win_size**2
    cov_norm = num_pixels / (num_pixels - 1)
    L = _range_per_sample(data_range, pred).unsqueeze(1)
    c1, c2 = (k1 * L) ** 2, (k2 * L) ** 2
    ux, uy = F.conv2d(x, window), F.conv2d(y, window)
    uxx, uyy, uxy = F.conv2d(x * x, window), F.conv2d(y * y, window), F.conv2d(x * y, window)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux**2 + uy**2 + c1) * (vx + vy + c2)
    return (numerator / denominator).squeeze(1)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, data_range: torch.Tensor | float) -> torch.Tensor:
    """1 - mean SSIM over the valid map and the batch."""
    return 1.0 - ssim_map(pred, target, data_range).mean()


def image_l1(pred: torch.Tensor, target: torch.Tensor, data_range: torch.Tensor | float) -> torch.Tensor:
    """mean |pred - target| / L."""
    _check_images(pred, target)
    return ((pred - target).abs() / _range_per_sample(data_range, pred)).mean()


def predicted_centre_kspace(complex_image: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """Generator output x (B, F, H, W) complex and maps (B, F, C, H, W) -> centre-frame multi-coil k-space
    F(S_c x_c), shape (B, C, H, W)."""
    centre = complex_image.shape[1] // 2
    return sens_expand(complex_image[:, centre], sens[:, centre])


def kspace_loss(pred_kspace: torch.Tensor, full_kspace: torch.Tensor) -> torch.Tensor:
    """Normalised L1 ||k_pred - k_full||_1 / ||k_full||_1 per sample (complex modulus), averaged over the batch.

    pred_kspace, full_kspace: (B, ...) complex on the same intensity scale (the generator's normalised one).
    """
    if pred_kspace.shape != full_kspace.shape or not full_kspace.is_complex():
        raise ValueError(
            f"training/losses.py: kspace_loss needs complex tensors of equal shape, got "
            f"{tuple(pred_kspace.shape)} {pred_kspace.dtype} and {tuple(full_kspace.shape)} {full_kspace.dtype}"
        )
    error = (pred_kspace - full_kspace).abs().flatten(1).sum(dim=1)
    reference = full_kspace.abs().flatten(1).sum(dim=1).clamp_min(torch.finfo(error.dtype).tiny)
    return (error / reference).mean()


@torch.no_grad()
def edge_mask(target: torch.Tensor, data_range: torch.Tensor | float, box: int = 5,
              tau: float = 0.1) -> torch.Tensor:
    """Binary edge mask (B, H, W) float {0, 1} of the target: Sobel magnitude of target / L (replicate
    padding), box x box mean filter, threshold at tau * per-image max. Constant (no gradient)."""
    if target.ndim != 3:
        raise ValueError(f"training/losses.py: edge_mask expects (B, H, W), got {tuple(target.shape)}")
    x = (target / _range_per_sample(data_range, target)).unsqueeze(1)
    sobel_x = _SOBEL_X.to(dtype=x.dtype, device=x.device).reshape(1, 1, 3, 3)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, sobel_x)
    gy = F.conv2d(padded, sobel_x.transpose(-1, -2))
    magnitude = torch.sqrt(gx**2 + gy**2 + 1e-12)
    # Replicate padding also for the box so that image borders are not darkened.
    pad = box // 2
    smoothed = F.avg_pool2d(F.pad(magnitude, (pad, box - 1 - pad, pad, box - 1 - pad), mode="replicate"),
                            box, stride=1)
    peak = smoothed.flatten(1).amax(dim=1).reshape(-1, 1, 1, 1)
    return (smoothed > tau * peak).to(target.dtype).squeeze(1)


def ear_loss(pred: torch.Tensor, target: torch.Tensor, data_range: torch.Tensor | float, box: int = 5,
             tau: float = 0.1) -> torch.Tensor:
    """Edge-aware region loss: 1 - SSIM(M * pred, M * target), with the SSIM map averaged only over windows
    whose centre lies in the 1-pixel dilation of the edge mask M (method.md 7.2 caveat), so that empty
    background windows do not dilute it. A sample without edges contributes 0."""
    _check_images(pred, target)
    mask = edge_mask(target, data_range, box=box, tau=tau)
    similarity = ssim_map(mask * pred, mask * target, data_range)
    dilated = F.max_pool2d(mask.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    crop = SSIM_WINDOW // 2
    region = dilated[:, crop:dilated.shape[1] - crop, crop:dilated.shape[2] - crop]
    count = region.flatten(1).sum(dim=1)
    mean_ssim = (similarity * region).flatten(1).sum(dim=1) / count.clamp_min(1.0)
    per_sample = torch.where(count > 0, 1.0 - mean_ssim, torch.zeros_like(mean_ssim))
    return per_sample.mean()


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """features (B, C, h, w) -> channel-wise spatial mean (B, C) and biased variance + 1e-6 (B, C)."""
    if features.ndim != 4:
        raise ValueError(f"training/losses.py: gaussian_stats expects (B, C, h, w), got {tuple(features.shape)}")
    flat = features.flatten(2)
    return flat.mean(dim=2), flat.var(dim=2, unbiased=False) + SDA_VARIANCE_EPS


def symmetric_kl(mu_p: torch.Tensor, var_p: torch.Tensor, mu_q: torch.Tensor, var_q: torch.Tensor) -> torch.Tensor:
    """KL(P||Q) + KL(Q||P) of diagonal Gaussians (..., C), divided by C -> (...)."""
    squared_gap = (mu_p - mu_q) ** 2
    per_channel = 0.5 * (var_p / var_q + var_q / var_p - 2.0 + squared_gap * (1.0 / var_p + 1.0 / var_q))
    return per_channel.mean(dim=-1)


class SDAMemory:
    """Sliding-window memory for the SDA loss (method.md 7.3): one detached slot per domain holding the latest
    (mean, var) of every cascade's features. A new sample is compared with the filled slots of the *other*
    domains. Each DDP rank keeps its own memory (no collective calls), filled by the samples it sees."""

    def __init__(self, num_domains: int = 5, log_compress: bool = False):
        if num_domains < 2:
            raise ValueError(f"training/losses.py: SDAMemory needs at least 2 domains, got {num_domains}")
        self.num_domains = num_domains
        self.log_compress = log_compress
        # slots[d] = None or (means per cascade [(C,)], vars per cascade [(C,)])
        self.slots: list[tuple[list[torch.Tensor], list[torch.Tensor]] | None] = [None] * num_domains

    def _domains(self, domain: int | Sequence[int], batch: int) -> list[int]:
        domains = [int(domain)] * batch if isinstance(domain, int) else [int(d) for d in domain]
        if len(domains) != batch or any(not 0 <= d < self.num_domains for d in domains):
            raise ValueError(
                f"training/losses.py: domain labels {domain} do not fit a batch of {batch} "
                f"with {self.num_domains} domains"
            )
        return domains

    def loss(self, features_per_cascade: Sequence[torch.Tensor],
             domain: int | Sequence[int]) -> torch.Tensor | None:
        """features_per_cascade: one (B, C, h, w) per cascade; domain: int or one per sample.
        Returns sum over cascades of the mean SKL to the other filled domain slots, averaged over the samples
        that have at least one; None when none has."""
        batch = features_per_cascade[0].shape[0]
        domains = self._domains(domain, batch)
        # float32 statistics: the 1e-6 variance floor would vanish in half precision
        stats = [gaussian_stats(f.float()) for f in features_per_cascade]
        per_sample = []
        for b, d in enumerate(domains):
            others = [s for j, s in enumerate(self.slots) if j != d and s is not None]
            if not others:
                continue
            total = 0.0
            for t, (mean, var) in enumerate(stats):
                slot_mean = torch.stack([s[0][t] for s in others]).to(mean.device)
                slot_var = torch.stack([s[1][t] for s in others]).to(var.device)
                skl = symmetric_kl(mean[b], var[b], slot_mean, slot_var)
                if self.log_compress:
                    skl = torch.log1p(skl)
                total = total + skl.mean()
            per_sample.append(total)
        if not per_sample:
            return None
        return torch.stack(per_sample).mean()

    @torch.no_grad()
    def update(self, features_per_cascade: Sequence[torch.Tensor], domain: int | Sequence[int]) -> None:
        """Store each sample's detached statistics in its domain slot (later samples of a batch win)."""
        batch = features_per_cascade[0].shape[0]
        stats = [gaussian_stats(f.detach().float()) for f in features_per_cascade]
        for b, d in enumerate(self._domains(domain, batch)):
            self.slots[d] = ([m[b].clone() for m, _ in stats], [v[b].clone() for _, v in stats])

    def state_dict(self) -> dict:
        return {
            "num_domains": self.num_domains,
            "slots": [None if s is None else {"mean": list(s[0]), "var": list(s[1])} for s in self.slots],
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("num_domains") != self.num_domains or len(state.get("slots", [])) != self.num_domains:
            raise ValueError(
                f"training/losses.py: SDAMemory state for {state.get('num_domains')} domains does not match "
                f"{self.num_domains}"
            )
        self.slots = [None if s is None else ([m.clone() for m in s["mean"]], [v.clone() for v in s["var"]])
                      for s in state["slots"]]
