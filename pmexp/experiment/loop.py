"""The training loop: build the job, one optimizer step that returns its row, evaluation, the run.

    python -m pmexp.train trainer.max_steps=2 logger=none           # the loop, through pmexp.experiment.job
    torchrun --nproc_per_node=2 -m pmexp.train trainer.strategy=ddp  # the same loop on every rank

Read it top to bottom: `build_job` (seed, model, dropout surgery, data, optimizer, DDP/FSDP,
compile), `train_step` (a step's micro-batches forward and backward, clipping, the update, its row),
`evaluate`, and `run`, which strings them together and hands every row to the `Recorder`. With
`trainer.strategy=ddp|zero1` every process trains its shard of the data with the model wrapped in
DistributedDataParallel (zero1 also shards AdamW's state); zero2|zero3 shard the model with FSDP2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch.distributed.optim import ZeroRedundancyOptimizer
from transformers import get_linear_schedule_with_warmup

from pmexp.experiment import data, metrics, models
from pmexp.experiment.compiling import CompileWatch, compile_fresh, job_inductor_options
from pmexp.experiment.distributed import (
    SHARDED,
    DistInfo,
    data_parallel,
    grad_sync,
    max_over_ranks,
    shard_model,
    sum_over_ranks,
)
from pmexp.experiment.faults import check_finite, inject_fault
from pmexp.experiment.optim import weight_decay_groups
from pmexp.experiment.recorder import Recorder
from pmexp.experiment.reference import Reference, start_reference
from pmexp.experiment.tasks import Task, task_of
from pmexp.masks import packed_saved_masks, saved_tensor_bytes

__all__ = ["Job", "build_job", "evaluate", "optimizer_steps", "run", "seed_everything", "train_step"]

log = logging.getLogger(__name__)
PROBE_SUMMARY_KEYS = ("saved_mask_bytes", "saved_activation_bytes", "saved_total_bytes")
Batch = dict[str, torch.Tensor]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device's generator


def _cap_memory(cap_gb: float | None, device: torch.device) -> None:
    """`trainer.memory_cap_gb`: this process may allocate at most that much of the GPU (CUDA only)."""
    if cap_gb is None:
        return
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gb * 2**30 / total), device)
    else:
        log.warning("trainer.memory_cap_gb applies to CUDA only; ignored on %s", device)


def autocast_for(cfg: DictConfig, device: torch.device) -> Callable[[], Any]:
    """`with autocast():` runs the forward in `precision.autocast_dtype` (fp32: a no-op)."""
    dtype = getattr(torch, cfg.precision.autocast_dtype) if cfg.precision.autocast_dtype else None
    return partial(torch.autocast, device_type=device.type, dtype=dtype, enabled=dtype is not None)


@dataclasses.dataclass
class Job:
    """Everything a run trains with, built once by `build_job`."""

    cfg: DictConfig
    info: DistInfo
    task: Task
    model: torch.nn.Module  # the bare model: surgery applied, sharded in place under zero2/zero3
    fwd: Any  # what the forward calls: the model, its DDP wrapper, or their compiled form
    ddp: Any  # the DDP wrapper (ddp/zero1), else None
    watch: CompileWatch | None
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    autocast: Callable[[], Any]
    masks: Callable[[], Any]  # packed_hooks: saved bool masks kept as bits; else a null context
    train_loader: Any
    eval_loader: Any
    reference: Reference | None
    total_steps: int
    epochs: int
    steps_per_epoch: int
    timer: metrics.StepTimer
    last_batch: Batch | None = None

    @property
    def device(self) -> torch.device:
        return self.info.device


def _build_model(cfg: DictConfig, info: DistInfo, recorder: Recorder) -> tuple[torch.nn.Module, Reference | None]:
    """Model, lockstep reference, dropout variant and memory technique, on the device (reported as it goes)."""
    data.check_data(cfg)  # every row of the task's files, before the model's minutes of building
    model, model_info = models.build_model(cfg)
    recorder.note(model_info=model_info)
    # the model's own dropout: copied before the surgery
    reference = start_reference(cfg, model, info.device, autocast_for(cfg, info.device))
    # The surgery works on the bare model, before any DDP wrapper.
    recorder.note(dropout_report=models.apply_dropout(model, cfg.dropout))
    recorder.note(memory_report=models.apply_memory(model, cfg))
    model.to(info.device)
    if info.multi_process:  # same init on every rank (above), then each rank draws its own dropout masks
        seed_everything(cfg.seed + info.rank)
    return model, reference


def _build_optimizer(cfg: DictConfig, info: DistInfo, model: torch.nn.Module,
                     total_steps: int) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer, Any]:
    """AdamW with weight decay on matrices only (not biases, not LayerNorm), and the linear warm-up schedule."""
    t, fused = cfg.trainer, info.device.type == "cuda"
    params = [p for p in model.parameters() if p.requires_grad]
    groups = weight_decay_groups(params, t.weight_decay)
    if info.strategy == "zero1":  # each rank keeps AdamW's state for its share of the parameters only
        optimizer = ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, lr=t.lr, fused=fused)
    else:
        optimizer = torch.optim.AdamW(groups, lr=t.lr, fused=fused)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(t.warmup * total_steps), total_steps)
    return params, optimizer, scheduler


def build_job(cfg: DictConfig, info: DistInfo, recorder: Recorder) -> Job:
    """Seed, model, data, optimizer, DDP or FSDP2, compile: everything `run` trains with."""
    t, device = cfg.trainer, info.device
    seed_everything(cfg.seed)
    _cap_memory(t.memory_cap_gb, device)
    model, reference = _build_model(cfg, info, recorder)
    train_loader, eval_loader = data.build_dataloaders(cfg, model.config, info.rank, info.world_size)
    steps_per_epoch = math.ceil(len(train_loader) / t.grad_accum)
    total_steps = t.max_steps or steps_per_epoch * t.epochs
    shard_model(info, model)  # zero2/zero3: FSDP2 shards the parameters in place, before the optimizer holds them
    params, optimizer, scheduler = _build_optimizer(cfg, info, model, total_steps)
    ddp = data_parallel(info, model)  # ddp/zero1: broadcasts rank 0's parameters; backward averages gradients
    fwd, watch = ddp or model, None
    if t.compile:
        options = job_inductor_options(cfg)  # seeded: the realize threshold its hash needs; the user's on top
        fwd, watch = compile_fresh(fwd, t.compile_backend, t.compile_mode, options), CompileWatch()
    return Job(
        cfg=cfg, info=info, task=task_of(cfg), model=model, fwd=fwd, ddp=ddp, watch=watch, params=params,
        optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler(device.type, enabled=cfg.precision.grad_scaler),
        autocast=autocast_for(cfg, device), masks=packed_saved_masks if cfg.dropout.hooks else contextlib.nullcontext,
        train_loader=train_loader, eval_loader=eval_loader, reference=reference, total_steps=total_steps,
        epochs=math.ceil(total_steps / steps_per_epoch), steps_per_epoch=steps_per_epoch,
        timer=metrics.StepTimer(t.timing_warmup),
    )


def probe(job: Job, module: torch.nn.Module, batch: Batch, recorder: Recorder) -> None:
    """One forward under saved-tensor accounting: how many bytes autograd saves as masks, and the rest."""
    batch = {k: v.to(job.device) for k, v in batch.items()}

    def forward() -> torch.Tensor:
        with job.autocast():
            return module(**batch).loss

    result = saved_tensor_bytes(forward, params=module.parameters(), pack_masks=job.cfg.dropout.hooks)
    recorder.note(probe={"compiled": module is job.fwd and job.cfg.trainer.compile, **result})
    recorder.summary.update({k: result[k] for k in PROBE_SUMMARY_KEYS})


def optimizer_steps(loader: Any, grad_accum: int) -> Iterator[Iterator[tuple[Batch, bool]]]:
    """Per optimizer step, its micro-batches as (batch, last) pairs: `grad_accum` of them, fewer at the epoch's end.

    Lazy: a micro-batch is fetched from the loader only when the step reaches it (inside its timing).
    """
    batches, count = iter(loader), len(loader)
    for start in range(0, count, grad_accum):
        size = min(grad_accum, count - start)
        yield ((batch, i + 1 == size) for i, batch in enumerate(islice(batches, size)))


def _accumulate(job: Job, micro_batches: Iterator[tuple[Batch, bool]], step: int) -> tuple[float, int, int, Any]:
    """Forward and backward of a step's micro-batches; returns (start time, samples, tokens, summed loss)."""
    t = job.cfg.trainer
    t0, samples, tokens, loss_sum = 0.0, 0, 0, 0.0
    for i, (batch, last) in enumerate(micro_batches):
        if i == 0:
            t0 = time.perf_counter()  # times the step from host-to-device copy to optimizer update
        batch = {k: v.to(job.device, non_blocking=True) for k, v in batch.items()}
        samples += batch["labels"].shape[0]
        tokens += job.task.count_tokens(batch, job.model.config)
        if job.reference is not None:  # first, then the RNG state is restored for the trained model
            job.reference.micro_step(batch, job.model)
        # DDP: accumulating micro-batches skip the gradient all-reduce; the last one does it.
        with job.masks(), grad_sync(job.ddp or job.model, not last):
            with job.autocast():
                loss = job.fwd(**batch).loss / t.grad_accum
            if t.fault == "nan" and step >= 2:
                loss = loss * float("nan")
            job.scaler.scale(loss).backward()  # backward outside autocast, as torch recommends
        loss_sum += loss.detach().float()
        job.last_batch = batch
    return t0, samples, tokens, loss_sum


def train_step(job: Job, micro_batches: Iterator[tuple[Batch, bool]], step: int) -> dict[str, Any]:
    """Optimizer step number `step` (from 1) over its micro-batches; returns its steps.jsonl row."""
    t = job.cfg.trainer
    graphs_before = job.watch.graphs() if job.watch is not None else 0
    t0, samples, tokens, loss_sum = _accumulate(job, micro_batches, step)
    job.scaler.unscale_(job.optimizer)  # true gradients for the norms and the clipping
    grad_norm, layer_norms = metrics.grad_norms(job.model.named_parameters())  # CPU-GPU sync point
    if t.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(job.params, t.max_grad_norm)
    lr = job.scheduler.get_last_lr()[0]
    job.scaler.step(job.optimizer)
    job.scaler.update()
    job.scheduler.step()
    job.optimizer.zero_grad(set_to_none=True)
    metrics.sync(job.device)  # CPU-GPU sync point: the step's wall time is its device time
    seconds = time.perf_counter() - t0
    compiled = job.watch is not None and job.watch.graphs() > graphs_before  # left out of seq/s
    job.timer.add(seconds, samples, tokens, compiled)
    row = {"step": step, "loss": float(loss_sum), "lr": lr, "grad_norm": grad_norm,
           "step_time_ms": seconds * 1000, **layer_norms}
    if job.reference is not None:  # its micro-steps are inside step_time_ms: time runs without one
        row.update(job.reference.step(job.model, lr, row["loss"]))
    return row


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Any, device: torch.device, autocast: Callable, cfg: DictConfig) -> dict:
    """Mean loss over the eval set, and accuracy/F1 for a labelled task (None for a causal LM)."""
    labelled = task_of(cfg).labelled
    model.eval()
    loss_sum, count, preds, refs = 0.0, 0, [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            out = model(**batch)
        n = batch["labels"].shape[0]
        loss_sum += out.loss.float().item() * n
        count += n
        if labelled:
            preds += out.logits.argmax(-1).tolist()
            refs += batch["labels"].tolist()
    model.train()
    result: dict[str, Any] = {"eval_loss": loss_sum / max(count, 1), "eval_accuracy": None, "eval_f1": None}
    if preds:
        scores = metrics.classification_metrics(preds, refs, num_labels=cfg.model.num_labels)
        result.update(eval_accuracy=scores["accuracy"], eval_f1=scores["f1"])
    return result


def _after_step(job: Job, row: dict[str, Any], recorder: Recorder) -> None:
    """Checks on a logged step: finite numbers; after the first, the compile count and an injected fault."""
    check_finite(row["step"], row["loss"], row["grad_norm"], job.cfg.precision.grad_scaler)
    if row["step"] == 1:  # after the step's row is logged: the record shows what a mid-run fault keeps
        if job.watch is not None:
            recorder.summary.update(job.watch.check())
        inject_fault(job.cfg.trainer.fault)


def _job_throughput(info: DistInfo, timer: metrics.StepTimer) -> dict[str, float]:
    """Every rank's samples and tokens over the slowest rank's time (empty when no step was timed)."""
    samples, tokens, seconds = timer.totals()
    samples, tokens = sum_over_ranks(info, [samples, tokens])
    (seconds,) = max_over_ranks(info, [seconds])
    return {"throughput_seq_s": samples / seconds, "throughput_tok_s": tokens / seconds} if seconds > 0 else {}


def run(cfg: DictConfig, info: DistInfo, recorder: Recorder) -> None:
    """Build the job and train it; the recorder keeps what was reached, so a failure keeps it too."""
    t, job = cfg.trainer, build_job(cfg, info, recorder)
    # Compiled: probe the compiled graph after training (what Inductor's partitioner keeps; no extra
    # compile), with the peak read first. DDP: probe the bare model (a forward without backward
    # through the DDP wrapper would leave its reducer waiting). zero2/3: no probe (FSDP2's gathered
    # parameters are saved for backward and would count as activations).
    probe_compiled = t.probe and t.compile and not info.multi_process
    if t.probe and not probe_compiled and info.strategy not in SHARDED:
        probe(job, job.model, next(iter(job.train_loader)), recorder)
    metrics.reset_peak_memory(job.device)
    recorder.begin(job.total_steps, job.epochs, job.steps_per_epoch, job.device)
    step = 0
    for epoch in range(job.epochs):
        if info.multi_process:
            job.train_loader.sampler.set_epoch(epoch)  # a new shuffle of the shards each epoch
        for micro_batches in optimizer_steps(job.train_loader, t.grad_accum):
            step += 1
            row = train_step(job, micro_batches, step)
            if job.reference is not None:
                recorder.summary.update(job.reference.summary())
            recorder.step(row)
            _after_step(job, row, recorder)
            recorder.step_done(row, job.timer)
            if step >= job.total_steps:
                break
        # Rank 0 alone on the bare model (no collective), the whole eval set; zero2/3: every rank (sharded forward).
        if t.eval and (info.is_rank0 or info.strategy in SHARDED):
            model = job.model if job.ddp is not None else job.fwd
            recorder.evaluation(epoch + 1, evaluate(model, job.eval_loader, job.device, job.autocast, cfg), step)
        if step >= job.total_steps:
            break
    recorder.end_training()
    recorder.summary.update(metrics.peak_memory(job.device))  # before the probe below adds its own forward
    if probe_compiled:  # the last training batch: the shape the graph was compiled for
        probe(job, job.fwd, job.last_batch, recorder)
    if info.multi_process:
        recorder.summary.update(_job_throughput(info, job.timer))
