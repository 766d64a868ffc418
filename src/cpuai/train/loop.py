"""The training loop shared by every recipe: batches, precision, schedule, logging, checkpoints, resume.

A recipe supplies the model, batches and metrics (see ``Recipe``); the loop owns everything else.
Data order is a function of (seed, epoch) and the augmentation generator is checkpointed, so a job
resumed from a checkpoint takes the same batches an uninterrupted one would. With several workers
each rank takes an equal share of every global batch (the same semantics as one worker) and
DistributedDataParallel averages the gradients.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cpuai.package import ModelPackage
from cpuai.train.jobdir import JobDir
from cpuai.train.spec import TrainSpec

log = logging.getLogger("cpuai.train")


class Recipe(Protocol):
    """What a recipe gives the loop: a model, batches, a loss, metrics and an exporter."""

    primary: str  # validation metric to maximise (early stopping, best checkpoint)
    model: Any  # torch.nn.Module
    train_size: int
    image_input: bool  # 4-D NCHW input: channels_last applies

    def train_batch(self, idx: Any, generator: Any) -> tuple[tuple[Any, ...], Any]: ...

    def loss(self, output: Any, target: Any) -> Any: ...

    def evaluate(self, model: Any, split: str) -> dict[str, float] | None: ...

    def export(self, model: Any, dest: Path, metrics: dict[str, float]) -> ModelPackage: ...


@dataclass
class StopRequest:
    """Set by SIGTERM/SIGINT; the loop checks it after every step, checkpoints and stops."""

    signum: int = 0
    previous: dict[int, Any] = field(default_factory=dict)

    def install(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum


class Interrupted(Exception):
    """The job stopped on a signal after writing a checkpoint."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by signal {signum}")


def bf16_supported() -> bool:
    """True when the CPU has native BF16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str) -> str:
    """'auto' becomes bf16 where the CPU accelerates it, else fp32."""
    if requested == "auto":
        return "bf16" if bf16_supported() else "fp32"
    return requested


def lr_factor(step: int, *, warmup: int, total: int) -> float:
    """Linear warm-up to the base rate, then cosine decay to 1 % of it."""
    if warmup and step < warmup:
        return 0.1 + 0.9 * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


def classic_line(step: int, loss: float, examples_per_sec: float, sec_per_batch: float) -> str:
    """The classic training log line."""
    return (
        f"step {step}, loss = {loss:.2f} ({examples_per_sec:.1f} examples/sec, {sec_per_batch:.3f} sec/batch)"
    )


def train(
    spec: TrainSpec,
    recipe: Recipe,
    job: JobDir,
    *,
    stop: StopRequest,
    rank: int = 0,
    world: int = 1,
    resume: bool = False,
) -> ModelPackage | None:
    """Run (or resume) the loop; rank 0 writes checkpoints, metrics and, at the end, the package.

    Raises ``Interrupted`` after checkpointing when ``stop`` was set by a signal.
    """
    import torch
    import torch.distributed as dist

    lead = rank == 0
    precision = resolve_precision(spec.precision)
    model = recipe.model
    if spec.channels_last and recipe.image_input:
        model = model.to(memory_format=torch.channels_last)
    eager = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model)
    assert spec.lr and spec.batch_size and spec.epochs, "call spec.resolved() first"
    epochs = spec.epochs
    optimizer = torch.optim.AdamW(eager.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    n = recipe.train_size
    global_batch = min(spec.batch_size, n)
    if global_batch < world:
        global_batch = world
    steps_per_epoch = max(1, n // global_batch)
    total = steps_per_epoch * epochs
    warmup = int(spec.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup=warmup, total=total)
    )
    aug = torch.Generator().manual_seed(spec.seed * 7919 + rank)
    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "best": -math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
    }
    if resume:
        ckpt = job.load_checkpoint()
        eager.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        aug_states = ckpt["aug_rng"]
        aug.set_state(aug_states[rank] if rank < len(aug_states) else aug_states[0])
        state.update(ckpt["loop"])
        if lead:
            log.info(
                "resumed from %s at epoch %d, step %d",
                job.checkpoint_file,
                state["epoch"] + 1,
                state["global_step"],
            )

    def checkpoint() -> None:
        aug_states = [aug.get_state()]
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, aug.get_state())
            aug_states = gathered
        if lead:
            job.save(
                job.checkpoint_file,
                {
                    "model": eager.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "aug_rng": aug_states,
                    "loop": dict(state),
                    "spec": spec.model_dump(mode="json", by_alias=True),
                    "extra": recipe.checkpoint_extra() if hasattr(recipe, "checkpoint_extra") else {},
                },
            )

    def stop_requested() -> bool:
        flag = torch.tensor([stop.signum], dtype=torch.int64)
        if world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    if lead:
        log.info(
            "training %s on %d examples: %d epoch(s) of %d steps, global batch %d, %s, "
            "%d worker(s) x %d thread(s)",
            spec.model,
            n,
            spec.epochs,
            steps_per_epoch,
            global_batch,
            precision,
            world,
            torch.get_num_threads(),
        )
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    stopped_early = False
    for epoch in range(state["epoch"], epochs):
        model.train()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed * 100003 + epoch))
        window_t, window_steps, window_loss, epoch_loss, epoch_steps = time.perf_counter(), 0, 0.0, 0.0, 0
        for b in range(state["step_in_epoch"], steps_per_epoch):
            idx = perm[b * global_batch : (b + 1) * global_batch][rank::world]
            inputs, target = recipe.train_batch(idx, aug)
            if spec.channels_last and recipe.image_input:
                inputs = tuple(x.contiguous(memory_format=torch.channels_last) for x in inputs)
            with autocast:
                output = model(*inputs)
            loss = recipe.loss(output.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            state["global_step"] += 1
            state["step_in_epoch"] = b + 1
            value = float(loss.detach())
            window_steps += 1
            window_loss += value
            epoch_loss += value
            epoch_steps += 1
            if lead and (state["global_step"] % spec.log_every == 0 or b == steps_per_epoch - 1):
                dt = time.perf_counter() - window_t
                eps, spb = window_steps * global_batch / dt, dt / window_steps
                log.info(classic_line(state["global_step"], window_loss / window_steps, eps, spb))
                job.append_metrics(
                    {
                        "kind": "step",
                        "step": state["global_step"],
                        "epoch": epoch + 1,
                        "loss": round(window_loss / window_steps, 5),
                        "examples_per_sec": round(eps, 2),
                        "sec_per_batch": round(spb, 5),
                        "lr": scheduler.get_last_lr()[0],
                    }
                )
                window_t, window_steps, window_loss = time.perf_counter(), 0, 0.0
            if spec.checkpoint_every and state["global_step"] % spec.checkpoint_every == 0:
                checkpoint()
            if stop_requested():
                checkpoint()
                if lead:
                    log.info(
                        "signal %d: checkpoint written to %s at step %d; stopping",
                        stop.signum,
                        job.checkpoint_file,
                        state["global_step"],
                    )
                raise Interrupted(stop.signum or signal.SIGTERM)
        val = recipe.evaluate(eager, "val") or {}
        score = val.get(recipe.primary, -epoch_loss)
        state.update(epoch=epoch + 1, step_in_epoch=0)
        if score > state["best"]:
            state.update(best=score, best_epoch=epoch + 1, bad_epochs=0)
            if lead:
                job.save(job.best_file, {"model": eager.state_dict(), "epoch": epoch + 1, "val": val})
        else:
            state["bad_epochs"] += 1
        if lead:
            record = {
                "kind": "epoch",
                "epoch": epoch + 1,
                "train_loss": round(epoch_loss / max(1, epoch_steps), 5),
            }
            record.update({f"val_{k}": round(v, 5) for k, v in val.items()})
            job.append_metrics(record)
            shown = ", ".join(f"val {k} = {v:.4f}" for k, v in val.items())
            log.info(
                "epoch %d/%d: train loss = %.4f, %s", epoch + 1, spec.epochs, record["train_loss"], shown
            )
        checkpoint()
        if spec.patience and state["bad_epochs"] >= spec.patience:
            if lead:
                log.info(
                    "early stop: no better val %s for %d epochs (best %.4f at epoch %d)",
                    recipe.primary,
                    spec.patience,
                    state["best"],
                    state["best_epoch"],
                )
            stopped_early = True
            break
    if world > 1:
        dist.barrier()
    if not lead:
        return None
    eager = eager.to(memory_format=torch.contiguous_format)
    if job.best_file.exists():
        eager.load_state_dict(torch.load(job.best_file, map_location="cpu", weights_only=False)["model"])
    eager.eval()
    metrics: dict[str, float] = {}
    for split in ("val", "test"):
        for k, v in (recipe.evaluate(eager, split) or {}).items():
            metrics[f"{split}_{k}"] = round(float(v), 6)
    metrics["epochs"] = float(state["epoch"])
    metrics["best_epoch"] = float(state["best_epoch"])
    if stopped_early:
        metrics["early_stopped"] = 1.0
    package = recipe.export(eager, job.package_dir, metrics)
    log.info(
        "package written to %s (%s)",
        package.path,
        ", ".join(f"{k} = {v:.4f}" for k, v in metrics.items() if "_" in k),
    )
    return package
