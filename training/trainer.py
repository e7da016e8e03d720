"""The GENRE-CMR training loop: generator + unrolled PatchGAN, fidelity/EAR/SDA/adversarial losses under CoV
weighting, curriculum over acceleration, resume, DDP under torchrun (method.md §6-9)."""
import dataclasses
import csv
import json
import logging
import os
import time
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from model.checkpoint import load_generator, save_generator
from model.config import GeneratorConfig, preset
from model.generator import GenreGenerator
from model.metrics import psnr
from model.provenance import cpu_model
from training.adversarial import discriminator_step, generator_adv_loss, unrolled_discriminator
from training.config import TrainConfig
from training.cov_weighting import CoVWeighting
from training.discriminator import DiscriminatorConfig, PatchDiscriminator
from training.ema import WeightAverage
from training.growth import deepened_state, widened_state
from training.dataset import Sample, WindowSampler, fixed_validation_samples, split_by_subject
from training.layouts import find_training_files
from training.loader import epoch_loader
from training.slice_index import build_index
from training.build_data import HELDOUT_SUBJECTS, UNSEEN_CENTRE, split_of
from training.report import epoch_curves
from training.simulated import SimulatedSampler, domain_names, phantom_pool, real_cine_pool
from training.losses import (SDAMemory, ear_loss, image_l1, kspace_loss, predicted_centre_kspace,
                             ssim_loss)

log = logging.getLogger("genre.train")
LOSS_NAMES = ("image", "kspace", "ssim", "ear", "sda", "adv")


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """torchrun sets RANK/WORLD_SIZE: join the process group (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size())


def generator_param_groups(generator: GenreGenerator, config: TrainConfig) -> list[dict]:
    """The generator's trainable parameters for its optimiser, in up to three groups: the gated cascades' weights
    (model.config gated_from; appended to a trained generator, training.growth) at ``config.gated_lr``, their gates
    at ``config.gate_lr`` without weight decay (which would pull an open gate shut), and the rest at the
    optimiser's defaults."""
    gated_cascades = [cascade for cascade in generator.cascades if cascade.gate is not None]
    gates = [cascade.gate for cascade in gated_cascades]
    gated = [p for cascade in gated_cascades for p in cascade.parameters() if p.requires_grad and p is not cascade.gate]
    in_gated = {id(p) for p in gates + gated}
    groups = [{"params": [p for p in generator.parameters() if p.requires_grad and id(p) not in in_gated]}]
    if gated:
        groups.append({"params": gated, "lr": config.gated_lr})
    if gates:
        groups.append({"params": gates, "lr": config.gate_lr, "weight_decay": 0.0})
    return groups


class Trainer:
    def __init__(self, config: TrainConfig, data_root: Path | list[Path] | None, run_dir: Path,
                 device: str = "cpu", workers: int = 0, samplers: tuple | None = None):
        """data_root: one training tree or several (any official layout; ignored by the simulated source);
        workers: DataLoader worker processes drawing the windows (0: in this process); samplers: (domains,
        training sampler, validation sampler, data summary) to use instead of ``window_samplers``' own."""
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.workers = workers
        self.dist = init_distributed(self.device)
        torch.manual_seed(config.seed + self.dist.rank)

        self.domains, self.train_sampler, val_sampler, self.data_summary = (
            samplers or window_samplers(config, data_root, self.run_dir))
        self.val_samples = fixed_validation_samples(val_sampler, config.val_samples, config.curriculum[-1][1],
                                                    config.seed)

        model_config = dataclasses.replace(preset(config.model), residual=config.residual)
        self.model_config = model_config
        self.generator = GenreGenerator(model_config).to(self.device)
        self.discriminator = PatchDiscriminator(DiscriminatorConfig()).to(self.device)
        self.opt_g = torch.optim.AdamW(generator_param_groups(self.generator, config),
                                       lr=config.lr, weight_decay=config.weight_decay)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.d_lr, betas=config.d_betas)
        self.sched_g = torch.optim.lr_scheduler.StepLR(self.opt_g, config.lr_step_epochs, config.lr_gamma)
        self.sched_d = torch.optim.lr_scheduler.StepLR(self.opt_d, config.lr_step_epochs, config.lr_gamma)
        losses = list(self.active_losses())
        caps = {"adv": config.adv_cap} if config.adv_cap > 0 and "adv" in losses else {}
        self.cov = CoVWeighting(losses, mean_mode=config.cov_mean_mode, caps=caps)
        if config.use_sda and len(self.domains) < 2:
            raise ValueError(f"SDA aligns domains and the training data has one ({self.domains}): "
                             "train with --no-sda or add data of another centre or modality")
        self.sda = SDAMemory(num_domains=len(self.domains)) if config.use_sda else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp and self.device.type == "cuda")
        self.epoch = 0
        self.step = 0
        self.history: list[dict] = []
        self.init_record: dict | None = None
        self.started = time.time()

        self.g_module = self.generator
        self.ema = WeightAverage(self.g_module, config.ema_decay) if config.ema_decay > 0 else None
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.generator = DDP(self.generator, device_ids=ids, find_unused_parameters=True)
            self.discriminator = DDP(self.discriminator, device_ids=ids)

    def active_losses(self):
        skip = {"ear": not self.config.use_ear, "sda": not self.config.use_sda, "adv": not self.config.use_adv}
        return (name for name in LOSS_NAMES if not skip.get(name, False))

    # ---------------------------------------------------------------------------------------------- steps
    def to_device(self, sample: Sample) -> Sample:
        # pinned host memory (DataLoader pin_memory on CUDA) lets the copy overlap the previous step
        return sample.to(self.device, non_blocking=self.device.type == "cuda")

    def epoch_windows(self, factors: tuple[int, ...]):
        """This rank's training windows of the current epoch, drawn by ``self.workers`` processes."""
        return epoch_loader(self.train_sampler, factors, self.config.steps_per_epoch, self.config.window_seed(),
                            self.dist.rank, self.epoch, self.workers, pin_memory=self.device.type == "cuda")

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.float16,
                              enabled=self.config.amp and self.device.type == "cuda")

    def generator_losses(self, sample: Sample, output, fake_logits_fn) -> dict[str, torch.Tensor | None]:
        pred, target, data_range = output.image.float(), sample.target, sample.data_range
        pred_kspace = predicted_centre_kspace(output.complex_image, output.sens)
        losses: dict[str, torch.Tensor | None] = {
            "image": image_l1(pred, target, data_range),
            "kspace": kspace_loss(pred_kspace, sample.full_kspace),
            "ssim": ssim_loss(pred, target, data_range),
        }
        if self.config.use_ear:
            losses["ear"] = ear_loss(pred, target, data_range)
        if self.config.use_sda:
            losses["sda"] = self.sda.loss(output.features, sample.domain)
        if self.config.use_adv:
            losses["adv"] = self.config.adv_weight * generator_adv_loss(
                fake_logits_fn(pred / data_range.reshape(-1, 1, 1)), self.config.gan_mode)
        return losses

    def train_step(self, sample: Sample) -> dict[str, float]:
        sample = self.to_device(sample)
        self.generator.train()
        with self.autocast():
            output = self.generator(sample.masked_kspace, sample.mask, sample.num_acs or self.config.num_acs,
                                    sample.radial, sample.shared_kspace)
        real = (sample.target / sample.data_range.reshape(-1, 1, 1))[:, None]
        fake = (output.image.float() / sample.data_range.reshape(-1, 1, 1))[:, None]

        record: dict[str, float] = {}
        lookahead = self.d_module
        if self.config.use_adv:
            # D step on the current pair, then (Metz) a first-order lookahead copy for the generator's loss.
            record["d_loss"] = discriminator_step(self.discriminator, self.opt_d, real, fake,
                                                  self.config.gan_mode).item()
            if self.config.unroll_steps > 0:
                lookahead = unrolled_discriminator(self.d_module, self.opt_d, real, fake.detach(),
                                                   steps=self.config.unroll_steps)
            for p in lookahead.parameters():
                p.requires_grad_(False)

        losses = self.generator_losses(sample, output, lambda image: lookahead(image[:, None]))
        total, weights = self.cov(losses)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.opt_g)
        torch.nn.utils.clip_grad_norm_(self.g_module.parameters(), self.config.grad_clip)
        self.scaler.step(self.opt_g)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.g_module)
        if self.config.use_adv:
            for p in self.d_module.parameters():
                p.requires_grad_(True)
        if self.config.use_sda:
            self.sda.update([f.detach() for f in output.features], sample.domain)

        record.update({f"loss_{k}": (v.item() if v is not None else float("nan")) for k, v in losses.items()})
        record.update({f"w_{k}": float(v) for k, v in weights.items()})
        record["total"] = total.item()
        return record

    @property
    def d_module(self):
        return getattr(self.discriminator, "module", self.discriminator)

    @property
    def shipped_module(self) -> GenreGenerator:
        """The generator that validation scores and export writes: the weight average when the run keeps one."""
        return self.ema.module if self.ema is not None else self.g_module

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        generator = self.shipped_module.eval()
        ssims, psnrs = [], []
        for sample in self.val_samples:
            sample = self.to_device(sample)
            with self.autocast():
                output = generator(sample.masked_kspace, sample.mask, sample.num_acs or self.config.num_acs,
                                       sample.radial, sample.shared_kspace)
            ssim, value = window_scores(output.image, sample)
            ssims.append(ssim)
            psnrs.append(value)
        return {"val_ssim": float(np.mean(ssims)), "val_psnr": float(np.mean(psnrs))}

    # ----------------------------------------------------------------------------------------- the loop
    def fit(self, max_minutes: float | None = None, max_steps: int | None = None) -> dict:
        """Train to the configured epochs, or until ``max_minutes`` of wall time (counting earlier sessions of a
        resumed run) or ``max_steps`` optimiser steps in all; an interrupted epoch is validated and
        checkpointed like a finished one."""
        cfg = self.config
        log_path = self.run_dir / "train_log.csv"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main and self.epoch == 0 and not self.history:
            self.history.append({"epoch": 0, "step": 0, **self.validate()})
            log.info("initial validation: %s", self.history[-1])
        deadline = None if max_minutes is None else self.started + 60 * max_minutes
        writer_file = open(log_path, "a", newline="") if self.dist.is_main else None
        writer = None
        try:
            while self.epoch < cfg.epochs:
                factors = cfg.accelerations(self.epoch)
                bar = tqdm(self.epoch_windows(factors), desc=f"epoch {self.epoch + 1}/{cfg.epochs} R{factors}",
                           disable=not self.dist.is_main, leave=False)
                stop = False
                for sample in bar:
                    record = self.train_step(sample)
                    self.step += 1
                    if writer_file is not None:
                        row = {"epoch": self.epoch, "step": self.step, "pattern": sample.pattern,
                               "acceleration": sample.acceleration, **record}
                        if writer is None:
                            writer = csv.DictWriter(writer_file, fieldnames=list(row), extrasaction="ignore")
                            if writer_file.tell() == 0:
                                writer.writeheader()
                        writer.writerow(row)
                    if self.step % cfg.log_every == 0:
                        bar.set_postfix(total=f"{record['total']:.4f}", ssim=f"{record['loss_ssim']:.4f}")
                    stop = ((deadline is not None and time.time() > deadline)
                            or (max_steps is not None and self.step >= max_steps))
                    if stop:
                        break
                bar.close()
                self.sched_g.step()
                if cfg.use_adv:
                    self.sched_d.step()
                self.epoch += 1
                if self.dist.is_main:
                    metrics = {"epoch": self.epoch, "step": self.step, **self.validate(),
                               "lr": self.opt_g.param_groups[0]["lr"], "minutes": (time.time() - self.started) / 60}
                    self.history.append(metrics)
                    log.info("epoch %d: %s", self.epoch, metrics)
                    (self.run_dir / "metrics.json").write_text(json.dumps(self.history, indent=2))
                    self.save_checkpoint(self.run_dir / "last.pt")
                    if metrics["val_ssim"] >= max(h["val_ssim"] for h in self.history if h["epoch"] > 0):
                        self.save_best(metrics)
                if stop:
                    log.info("step or time budget reached after %d steps", self.step)
                    break
        finally:
            if writer_file is not None:
                writer_file.close()
        return {"history": self.history, "steps": self.step}

    # ------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {
            "train_config": self.config.to_dict(), "epoch": self.epoch, "step": self.step,
            "generator": self.g_module.state_dict(), "discriminator": self.d_module.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else {},
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
            "cov": self.cov.state_dict(), "sda": self.sda.state_dict() if self.sda else {}, "history": json.dumps(self.history),
            "init_from": json.dumps(self.init_record),
            "torch_rng": torch.get_rng_state(),  # windows: seeded per (seed, rank, epoch, worker), training.loader
            "elapsed": time.time() - self.started,
        }

    def save_checkpoint(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.g_module.load_state_dict(state["generator"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state.get("ema") or state["generator"])
        self.d_module.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        self.cov.load_state_dict(state["cov"])
        if self.sda is not None:
            self.sda.load_state_dict(state["sda"])
        self.history = json.loads(state["history"])
        self.init_record = json.loads(state.get("init_from", "null"))
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.started = time.time() - float(state["elapsed"])

    def init_generator(self, weights: Path) -> None:
        """Start from an earlier stage's generator (a shipped weights file, sha256-checked, whose model
        configuration must match this run's but for view_sharing, which changes the first estimate and no
        parameter, and for more cascades, which start as copies of its last one, gated shut where this run's
        configuration gates them (training.growth; only appended cascades may gain gates), and for wider
        denoisers, whose new channels start with no say in the output (training.growth); the
        discriminator, optimisers and CoV/SDA state start fresh."""
        generator, record = load_generator(weights)
        source = generator.config
        target = self.model_config

        def gated(config: GeneratorConfig, cascades: int) -> set[int]:
            return set(range(cascades)[config.gated_from:]) if config.gated_from is not None else set()

        # the trained cascades keep exactly the gates they had: gates come only with appended cascades
        if (dataclasses.replace(source, view_sharing=target.view_sharing, cascades=target.cascades,
                                gated_from=target.gated_from, denoiser=target.denoiser) != target
                or source.cascades > target.cascades
                or gated(source, source.cascades) != gated(target, source.cascades)):
            raise ValueError(f"{weights}: its model configuration differs from this run's ({self.config.model})")
        state = generator.state_dict()
        if source.denoiser != target.denoiser:
            # the new channels' initialisation depends on the seed alone, not on what the samplers drew before:
            # siblings of one seed (training.siblings) start from one widened generator, so their mean is one basin's
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.seed)
                fresh = GenreGenerator(target).state_dict()
            try:
                state = widened_state(state, fresh, source.denoiser, target.denoiser)
            except ValueError as error:
                raise ValueError(f"{weights}: its model configuration differs from this run's "
                                 f"({self.config.model}): {error}") from None
        self.g_module.load_state_dict(deepened_state(state, source.cascades, target.cascades, target.gated_from))
        if self.ema is not None:
            self.ema.reset(self.g_module)
        self.init_record = {"weights": str(weights), "sha256": record["sha256"], "steps": record.get("steps"),
                            "train_config": record.get("train_config"), "init_from": record.get("init_from")}
        if "averaged_from" in record:   # a training.average output: name the generators it averaged
            self.init_record["averaged_from"] = record["averaged_from"]

    def save_best(self, metrics: dict) -> None:
        """The generator of the epoch with the best validation SSIM so far (model selection on the
        validation subjects, never on held-out data)."""
        tmp = self.run_dir / "best.tmp"
        torch.save({"generator": self.shipped_module.state_dict(), "epoch": self.epoch, "val_ssim": metrics["val_ssim"],
                    "val_psnr": metrics["val_psnr"]}, tmp)
        os.replace(tmp, self.run_dir / "best.pt")

    def export_generator(self, path: Path, extra_record: dict | None = None, best: bool = True) -> str:
        """Write the shipped-weights file with its training record (config, data, steps, time, metrics).

        best: ship the epoch with the best validation SSIM (run_dir/best.pt) rather than the last one."""
        state, selected = self.shipped_module.state_dict(), {"epoch": self.epoch, "by": "last epoch"}
        best_path = self.run_dir / "best.pt"
        if best and best_path.exists():
            saved = torch.load(best_path, map_location="cpu", weights_only=True)
            state, selected = saved["generator"], {"epoch": int(saved["epoch"]), "by": "best validation SSIM",
                                                   "val_ssim": float(saved["val_ssim"]),
                                                   "val_psnr": float(saved["val_psnr"])}
        record = {
            "train_config": self.config.to_dict(), "data": self.data_summary, "steps": self.step,
            "epochs": self.epoch, "selected": selected,
            "wall_time_minutes": round((time.time() - self.started) / 60, 2),
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "hardware": hardware_description(self.device), "world_size": self.dist.world_size,
            "seed": self.config.seed, "validation": self.history, "loss_curves": epoch_curves(self.run_dir),
            "init_from": self.init_record,
            **(extra_record or {}),
        }
        return save_generator(path, self.model_config, state, record)


def window_samplers(config: TrainConfig, data_root: Path | list[Path] | None, run_dir: Path) -> tuple:
    """(domains, training sampler, validation sampler, data summary) of ``config.source``: windows simulated
    on the fly, or read from the training trees under ``data_root``."""
    if config.source == "simulated":
        return simulated_samplers(config)
    roots = [Path(data_root)] if isinstance(data_root, (str, Path)) else [Path(r) for r in data_root]
    return file_samplers(config, roots, Path(run_dir))


def file_samplers(config: TrainConfig, roots: list[Path], run_dir: Path
                  ) -> tuple[list[str], WindowSampler, WindowSampler, dict]:
    """(domains, training sampler, validation sampler, data summary) over CMRxRecon training trees; the index
    of their shapes is cached in RUN_DIR/data_index.json."""
    files, reader = build_index(find_training_files(roots), run_dir / "data_index.json")
    train_files, val_files = split_by_subject(files, config.val_fraction, config.seed)
    domains = sorted({f.domain_name for f in files})
    train = WindowSampler(train_files, domains, config.patterns, config.num_acs, config.adjacent_frames, reader,
                          dict(config.centre_weights), config.reflect_augment, masks=config.masks,
                          windows_per_read=config.windows_per_read)
    val = WindowSampler(val_files or train_files, domains, config.patterns, config.num_acs,
                        config.adjacent_frames, reader, masks=config.masks)
    summary = {"root": str(roots[0]) if len(roots) == 1 else [str(r) for r in roots], "files": len(files),
               "train_files": len(train_files), "val_files": len(val_files), "domains": domains,
               "years": sorted({f.year for f in files}), "masks": config.masks,
               "val_subjects": sorted({f.subject for f in val_files})}
    return domains, train, val, summary


def window_scores(image: torch.Tensor, sample: Sample) -> tuple[float, float]:
    """(SSIM, PSNR) of a reconstructed centre frame (1, H, W) against the window's reference, as validation scores it
    (the volume's maximum as data range)."""
    image = image.float()
    return 1 - float(ssim_loss(image, sample.target, sample.data_range)), psnr(image, sample.target, sample.data_range)


def simulated_samplers(config: TrainConfig) -> tuple[list[str], SimulatedSampler, SimulatedSampler, dict]:
    """(domains, training sampler, validation sampler, data summary) simulating from the real cine anatomy of
    the training subjects (never the held-out subjects or centre of training.build_data) and phantoms."""
    rng = np.random.default_rng(config.seed)
    real = real_cine_pool(lambda record: split_of(record) == "train")
    subjects = sorted({s.subject.split("/")[0] for s in real})
    val_subjects = set()
    for centre in sorted({s.center for s in real}):
        names = sorted({s.subject.split("/")[0] for s in real if s.center == centre})
        n_val = int(round(config.val_fraction * len(names))) if len(names) > 1 else 0
        val_subjects.update(rng.choice(names, size=n_val, replace=False).tolist() if n_val else [])
    phantoms = phantom_pool(config.phantoms, rng)
    train_series = [s for s in real if s.subject.split("/")[0] not in val_subjects] + phantoms
    val_series = [s for s in real if s.subject.split("/")[0] in val_subjects] or train_series
    domains = domain_names(train_series + val_series)
    options = dict(acs_choices=config.acs_choices, crop_width=config.crop_width, window=config.adjacent_frames)
    train = SimulatedSampler(train_series, domains, config.train_acquisition or config.acquisition,
                             reflect_augment=config.reflect_augment,
                             centre_weights=dict(config.centre_weights), kt_weights=dict(config.train_kt_weights),
                             geometry=config.geometry,
                             kind_weights=dict(config.train_kind_weights or config.kind_weights), **options)
    val = SimulatedSampler(val_series, domains, config.acquisition, reflect_augment=False,
                           kind_weights=dict(config.kind_weights),
                           **options)
    summary = {"source": "simulated", "real_series": len(real), "subjects": subjects, "phantoms": len(phantoms),
               "train_series": len(train_series), "val_subjects": sorted(val_subjects), "domains": domains,
               "heldout_subjects": sorted(HELDOUT_SUBJECTS), "unseen_centre": UNSEEN_CENTRE}
    return domains, train, val, summary


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} torch threads"
