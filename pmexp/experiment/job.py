"""Train one job (a model, a dropout option, a precision ...) and leave its records in the job dir.

    python -m pmexp.train                                         # tinybert on MRPC, CPU or GPU
    python -m pmexp.train model=minilm trainer.epochs=1           # pretrained MiniLM, offline
    python -m pmexp.train model=bert_large dropout=packed precision=bf16 seq_len=512 data=synthetic
    python -m pmexp.train -m seed=0,1,2,3,4 dropout=standard,packed
    python -m pmexp.train -m experiment=fidelity hydra.sweep.dir=multirun/fidelity   # re-run resumes
    python -m pmexp.train -m seed=0,1 hydra/launcher=joblib hydra.launcher.n_jobs=2  # jobs in parallel
    python -m pmexp.train -m trainer.fault=null,oom               # test a sweep's fault handling
    python -m pmexp.train --cfg job                               # print the composed config
    torchrun --nproc_per_node=2 -m pmexp.train trainer.strategy=ddp   # one job over 2 GPUs (or CPU processes)

`train(cfg)` does the work and returns the job record; `main` is the thin Hydra entry point. Every
job writes `metrics.json` (status ok / oom / failed / killed) and `steps.jsonl` into its job dir
(see pmexp.experiment.records). An out-of-memory or failed job is recorded and the multirun goes on; SIGTERM or
SIGINT records `killed` and exits (a job in a joblib/submitit launcher's process returns instead, so
its sweep goes on). A job dir whose record says ok for the same config is skipped.

With `trainer.strategy=ddp|zero1` (under torchrun, see pmexp.experiment.distributed) every process trains its
shard of the data with the model wrapped in DistributedDataParallel (zero1 also shards AdamW's state);
zero2|zero3 shard the model with FSDP2 instead. Rank 0 picks the one job dir, evaluates (zero2/3: every
rank does), and alone writes the records and the W&B run.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pmexp.experiment.config import ConfigError, validate
from pmexp.experiment.records import SUMMARY_KEYS, StepLog, config_hash, env_info, read_record, write_record

__all__ = ["JobKilled", "evaluate", "train"]

if TYPE_CHECKING:
    from pmexp.experiment.distributed import DistInfo

log = logging.getLogger(__name__)
PROBE_SUMMARY_KEYS = ("saved_mask_bytes", "saved_activation_bytes", "saved_total_bytes")
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"  # runs jobs in the sweep's process


class Diverged(Exception):
    """The loss or the gradient norm stopped being finite (recorded as `diverged`, with the step)."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(f"{what} at step {step}")
        self.step = step


def _check_finite(step: int, loss: float, grad_norm: float, scaler: bool) -> None:
    """Raise `Diverged` for a non-finite loss, or gradient norm (unless a GradScaler skips those steps).

    Costs no sync: both are Python floats already read for the step's row."""
    if not math.isfinite(loss):
        raise Diverged(step, f"the loss is {loss}")
    if not scaler and not math.isfinite(grad_norm):
        raise Diverged(step, f"the gradient norm is {grad_norm}")


class JobKilled(BaseException):
    """SIGTERM or SIGINT arrived. A BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"killed by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def _signals_raise_killed() -> Iterator[None]:
    """Turn SIGTERM/SIGINT into `JobKilled` while a job runs (main thread only; others keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise JobKilled(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _hydra_runtime() -> Any:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _job_dir(cfg: DictConfig) -> Path:
    if cfg.job_dir is not None:
        return Path(cfg.job_dir)
    runtime = _hydra_runtime()
    if runtime is None:
        raise ConfigError("job_dir is null and no Hydra run is active: pass job_dir=<folder for the records>")
    return Path(runtime.runtime.output_dir)


def _device(name: str) -> torch.device:
    """The run's device, with an index on CUDA (per-device calls such as the memory cap need one)."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device's generator


def _config_summary(cfg: DictConfig) -> dict[str, Any]:
    """The summary keys known before any work; the rest start as null."""
    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    surgery = cfg.dropout.variant is not None
    summary.update(
        model=cfg.model.name, variant=cfg.dropout.name, precision=cfg.precision.name,
        seq_len=None if cfg.model.task == "image_classification" else cfg.seq_len,
        attention=cfg.attention, batch_size=cfg.trainer.batch_size, seed=cfg.seed,
        compile=cfg.trainer.compile, checkpointing=cfg.trainer.checkpointing, memory=cfg.memory.name,
        targets=list(cfg.dropout.targets) if surgery else None, steps=0, strategy=cfg.trainer.strategy,
    )
    if cfg.trainer.compile:
        from pmexp.dropout.traced import use_traced

        summary.update(compiled_dropout="traced" if use_traced() else "custom_op",
                       compile_backend=cfg.trainer.compile_backend)
    return summary


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Any, device: torch.device, autocast: Callable, cfg: DictConfig) -> dict:
    """Mean loss over the eval set, and accuracy/F1 for classifiers (None for a causal LM)."""
    from pmexp.experiment.metrics import classification_metrics

    model.eval()
    loss_sum, count, preds, refs = 0.0, 0, [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            out = model(**batch)
        n = batch["labels"].shape[0]
        loss_sum += out.loss.float().item() * n
        count += n
        if cfg.model.task != "causal_lm":
            preds += out.logits.argmax(-1).tolist()
            refs += batch["labels"].tolist()
    model.train()
    result: dict[str, Any] = {"eval_loss": loss_sum / max(count, 1), "eval_accuracy": None, "eval_f1": None}
    if preds:
        scores = classification_metrics(preds, refs, num_labels=cfg.model.num_labels)
        result.update(eval_accuracy=scores["accuracy"], eval_f1=scores["f1"])
    return result


def _probe(model: torch.nn.Module, batch: dict, autocast: Callable, hooks: bool) -> dict[str, Any]:
    """One forward under saved-tensor accounting: how many saved bytes are masks, and the rest."""
    from pmexp.masks import saved_tensor_bytes

    def forward() -> torch.Tensor:
        with autocast():
            return model(**batch).loss

    return saved_tensor_bytes(forward, params=model.parameters(), pack_masks=hooks)


def _inject_fault(fault: str | None) -> None:
    """Fail as `trainer.fault` says, so a sweep's fault handling can be tested on any machine.

    Why: a real CUDA OOM or a scheduler's SIGTERM cannot be summoned on demand (nor on a CPU); these
    take the same paths through `train` as the real ones: `oom` raises the exception torch raises,
    `sigterm` signals this process so the installed handler records `killed` and exits; `kill9`
    SIGKILLs it (nothing can record that: the record stays `running` until a resume finds it);
    `nan` (in `_loop`) makes the loss NaN from the second step on.

    Raises:
        torch.OutOfMemoryError: fault is "oom".
    """
    if fault == "oom":
        raise torch.OutOfMemoryError("injected by trainer.fault=oom")
    if fault in ("sigterm", "kill9"):
        sig = signal.SIGTERM if fault == "sigterm" else signal.SIGKILL
        log.warning("trainer.fault=%s: sending %s to this process (pid %d)", fault, sig.name, os.getpid())
        os.kill(os.getpid(), sig)


class _NoStepLog:
    """What a process other than rank 0 logs steps to: nothing."""

    def write(self, row: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _loop(cfg: DictConfig, info: DistInfo, record: dict, steps: StepLog | _NoStepLog, wb: Any) -> None:
    """Build everything and train; fills `record` as it goes, so a failure keeps what was reached."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from pmexp.experiment.data import build_dataloaders, check_data, count_tokens
    from pmexp.experiment.distributed import (
        SHARDED,
        data_parallel,
        grad_sync,
        max_over_ranks,
        shard_model,
        sum_over_ranks,
    )
    from pmexp.experiment.metrics import StepTimer, grad_norms, peak_memory, reset_peak_memory, sync
    from pmexp.experiment.models import apply_dropout, apply_memory, build_model
    from pmexp.experiment.reference import start_reference
    from pmexp.masks import packed_saved_masks

    t, summary, device = cfg.trainer, record["summary"], info.device
    _seed_everything(cfg.seed)
    if t.memory_cap_gb is not None:
        if device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, t.memory_cap_gb * 2**30 / total), device)
        else:
            log.warning("trainer.memory_cap_gb applies to CUDA only; ignored on %s", device)

    # Model, dropout variant, data. The surgery works on the bare model, before any DDP wrapper.
    check_data(cfg)  # every row of the task's files, before the model's minutes of building
    model, record["model_info"] = build_model(cfg)
    reference = start_reference(cfg, model, device)  # the model's own dropout: copied before the surgery
    record["dropout_report"] = apply_dropout(model, cfg.dropout)
    record["memory_report"] = apply_memory(model, cfg)
    model.to(device)
    if info.multi_process:  # same init on every rank (above), then each rank draws its own dropout masks
        _seed_everything(cfg.seed + info.rank)
    train_loader, eval_loader = build_dataloaders(cfg, model.config, info.rank, info.world_size)

    # Optimizer and schedule: weight decay on matrices only (not biases, not LayerNorm).
    steps_per_epoch = math.ceil(len(train_loader) / t.grad_accum)
    total_steps = t.max_steps or steps_per_epoch * t.epochs
    epochs = math.ceil(total_steps / steps_per_epoch)
    shard_model(info, model)  # zero2/zero3: FSDP2 shards the parameters in place, before the optimizer holds them
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": t.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    if info.strategy == "zero1":  # each rank keeps AdamW's state for its share of the parameters only
        from torch.distributed.optim import ZeroRedundancyOptimizer

        optimizer = ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, lr=t.lr,
                                            fused=device.type == "cuda")
    else:
        optimizer = torch.optim.AdamW(groups, lr=t.lr, fused=device.type == "cuda")
    scheduler = get_linear_schedule_with_warmup(optimizer, round(t.warmup * total_steps), total_steps)
    dtype = getattr(torch, cfg.precision.autocast_dtype) if cfg.precision.autocast_dtype else None
    autocast = partial(torch.autocast, device_type=device.type, dtype=dtype, enabled=dtype is not None)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision.grad_scaler)
    masks = packed_saved_masks if cfg.dropout.hooks else contextlib.nullcontext
    # ddp/zero1: broadcasts rank 0's parameters; gradients are averaged over ranks in backward.
    ddp = data_parallel(info, model)
    fwd, watch = ddp or model, None
    if t.compile:
        from pmexp.experiment.compiling import CompileWatch, compile_fresh

        fwd, watch = compile_fresh(fwd, t.compile_backend, t.compile_mode), CompileWatch()

    def probe(module: torch.nn.Module, batch: dict) -> None:  # what autograd saves for one training batch
        batch = {k: v.to(device) for k, v in batch.items()}
        record["probe"] = {"compiled": module is fwd and t.compile,
                           **_probe(module, batch, autocast, cfg.dropout.hooks)}
        summary.update({k: record["probe"][k] for k in PROBE_SUMMARY_KEYS})

    # Compiled: probe the compiled graph after training (what Inductor's partitioner keeps; no extra
    # compile), with the peak read first. DDP: probe the bare model (a forward without backward
    # through the DDP wrapper would leave its reducer waiting).
    probe_compiled = t.probe and t.compile and not info.multi_process
    # zero2/3: no probe (FSDP2's gathered parameters are saved for backward and would count as activations).
    if t.probe and not probe_compiled and info.strategy not in SHARDED:
        probe(model, next(iter(train_loader)))
    reset_peak_memory(device)
    timer = StepTimer(t.timing_warmup)
    log.info("training %d steps (%d epoch(s) of %d), batch %d x %d accumulated, on %s",
             total_steps, epochs, steps_per_epoch, t.batch_size, t.grad_accum, device)

    step, micro, samples, tokens, loss_sum, t0 = 0, 0, 0, 0, 0.0, 0.0
    progress = tqdm(total=total_steps, desc=f"{cfg.model.name}/{cfg.dropout.name}", disable=None)
    for epoch in range(epochs):
        if info.multi_process:
            train_loader.sampler.set_epoch(epoch)  # a new shuffle of the shards each epoch
        for i, batch in enumerate(train_loader):
            if micro == 0:
                t0 = time.perf_counter()  # times the step from host-to-device copy to optimizer update
                samples = tokens = 0
                loss_sum = 0.0
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            samples += batch["labels"].shape[0]
            tokens += count_tokens(batch, model.config)
            boundary = micro + 1 >= t.grad_accum or i + 1 >= len(train_loader)  # an optimizer step follows
            # DDP: accumulating micro-batches skip the gradient all-reduce; the last one does it.
            no_sync = partial(grad_sync, ddp or model, not boundary)
            if reference is not None:  # first, then the RNG state is restored for the trained model
                reference.micro_step(batch, model)
            with masks(), no_sync():
                with autocast():
                    loss = fwd(**batch).loss / t.grad_accum
                if t.fault == "nan" and step >= 1:
                    loss = loss * float("nan")
                scaler.scale(loss).backward()  # backward outside autocast, as torch recommends
            loss_sum += loss.detach().float()
            micro += 1
            if not boundary:
                continue

            scaler.unscale_(optimizer)  # true gradients for the norms and the clipping
            grad_norm, layer_norms = grad_norms(model.named_parameters())  # CPU-GPU sync point
            if t.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            sync(device)  # CPU-GPU sync point: the step's wall time is its device time
            seconds = time.perf_counter() - t0
            step, micro = step + 1, 0
            timer.add(seconds, samples, tokens)

            row = {"step": step, "loss": float(loss_sum), "lr": lr, "grad_norm": grad_norm,
                   "step_time_ms": seconds * 1000, **layer_norms}
            if reference is not None:  # its micro-steps are inside step_time_ms: time runs without one
                row.update(reference.step(model, lr, row["loss"]))
                summary.update(reference.summary())
            steps.write(row)
            wb.log(row, step)
            summary.update(steps=step, train_loss_final=row["loss"], grad_norm_final=grad_norm)
            _check_finite(step, row["loss"], grad_norm, cfg.precision.grad_scaler)
            if step == 1:  # after the step's row is logged: the record shows what a mid-run fault keeps
                if watch is not None:
                    summary.update(watch.check())
                _inject_fault(t.fault)
            progress.update(1)
            if step % t.log_every == 0 or step == total_steps:
                summary.update(timer.summary())
                progress.set_postfix(loss=f"{row['loss']:.4f}")
                log.info("step %d/%d loss %.4f lr %.2e grad_norm %.3f %.0f ms",
                         step, total_steps, row["loss"], lr, grad_norm, row["step_time_ms"])
            if step >= total_steps:
                break

        # Rank 0 alone on the bare model (no collective), the whole eval set; zero2/3: every rank (sharded forward).
        if t.eval and (info.is_rank0 or info.strategy in SHARDED):
            result = evaluate(model if ddp is not None else fwd, eval_loader, device, autocast, cfg)
            steps.write({"epoch": epoch + 1, **result})
            wb.log(result, step)
            summary.update(result)
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in result.items() if v is not None))
        if step >= total_steps:
            break
    progress.close()
    summary.update(peak_memory(device))  # before the probe below adds its own forward
    if probe_compiled:  # the last training batch: the shape the graph was compiled for
        probe(fwd, batch)
    if info.multi_process:  # the job's throughput: every rank's samples over the slowest rank's time
        samples_sum, tokens_sum, seconds = timer.totals()
        samples_sum, tokens_sum = sum_over_ranks(info, [samples_sum, tokens_sum])
        (seconds,) = max_over_ranks(info, [seconds])
        if seconds > 0:
            summary.update(throughput_seq_s=samples_sum / seconds, throughput_tok_s=tokens_sum / seconds)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job and write its record; return the record (status, summary, config ...).

    Args:
        cfg: the composed config (`@hydra.main` or `hydra.compose`); validated here first.

    Returns:
        The job record as written to `<job_dir>/metrics.json`; for a skipped job, the old record.

    Raises:
        ConfigError: the config is invalid (nothing is run or written).
        DistributedError: trainer.strategy=ddp/zero1 cannot start (not under torchrun, too few GPUs).
        SystemExit: SIGTERM/SIGINT arrived; the `killed` record was written first.
    """
    from pmexp.experiment.distributed import setup, teardown

    started = time.perf_counter()
    cfg = validate(cfg)
    info = setup(cfg.trainer.strategy, _device(cfg.trainer.device))
    try:
        return _train(cfg, info, started)
    finally:
        teardown(info)


def _train(cfg: DictConfig, info: DistInfo, started: float) -> dict[str, Any]:
    """`train` once the process group (if any) is up: only rank 0 reads and writes the job dir."""
    from pmexp.experiment.distributed import broadcast_object
    from pmexp.experiment.joblock import JobLock, note_skip, recover_dead_record

    job_dir = Path(broadcast_object(info, str(_job_dir(cfg))))  # every rank: rank 0's job dir
    lock = JobLock(job_dir) if info.is_rank0 else None
    if not broadcast_object(info, lock.acquire() if lock else None):
        if info.is_rank0:
            note_skip(job_dir, f"another process holds {lock.path} (that job is still running)")
        return {"status": "locked", "error": f"job dir {job_dir} is locked by another running job"}
    try:
        if info.is_rank0:
            recover_dead_record(job_dir)
        return _run(cfg, info, started, job_dir)
    finally:
        if lock is not None:
            lock.release()


def _run(cfg: DictConfig, info: DistInfo, started: float, job_dir: Path) -> dict[str, Any]:
    """`_train` with the job dir locked."""
    from pmexp.experiment.config import config_warnings
    from pmexp.experiment.distributed import broadcast_object, gather_peak_memory

    config = OmegaConf.to_container(cfg, resolve=True)
    chash = config_hash(config)
    previous = read_record(job_dir) if info.is_rank0 else None
    skip = bool(previous and previous.get("status") == "ok" and previous.get("config_hash") == chash
                and not cfg.force)
    skip, previous = broadcast_object(info, (skip, previous))
    if skip:
        log.info("skipping %s: its record says ok for config_hash %s (force=true re-runs it)", job_dir, chash)
        return previous

    from pmexp.experiment.metrics import peak_memory
    from pmexp.experiment.wandb_logger import WandbLogger

    runtime = _hydra_runtime()
    device = info.device
    record: dict[str, Any] = {
        "status": "running", "error": None, "traceback": None, "config": config, "config_hash": chash,
        "overrides": list(runtime.overrides.task) if runtime else [], "env": env_info(device),
        "summary": _config_summary(cfg), "dropout_report": None, "memory_report": None, "model_info": None,
        "probe": None,
    }
    record["summary"]["world_size"] = info.world_size
    record["warnings"] = config_warnings(cfg, device)
    for warning in record["warnings"]:
        log.warning(warning)
    if info.is_rank0:
        write_record(job_dir, record)
    multirun = runtime is not None and runtime.mode == RunMode.MULTIRUN
    name = (runtime.job.override_dirname if runtime else "") or f"{cfg.model.name}-{cfg.dropout.name}-seed{cfg.seed}"
    tags = [cfg.model.name, cfg.dropout.name, cfg.precision.name, cfg.attention]
    choices = runtime.runtime.choices if runtime else {}
    if choices.get("experiment"):
        tags.append(choices["experiment"])
    logger_cfg = cfg.logger if info.is_rank0 else OmegaConf.create({"name": "none", "mode": "disabled"})
    wb = WandbLogger(logger_cfg, config, job_dir, name, str(runtime.sweep.dir) if multirun else None, tags,
                     extra_config={"config_hash": chash, "env": record["env"]})
    steps = StepLog(job_dir) if info.is_rank0 else _NoStepLog()
    killed: JobKilled | None = None
    try:
        with _signals_raise_killed():
            try:
                _loop(cfg, info, record, steps, wb)  # records the peak memory itself, before its last probe
                record["summary"].update(gather_peak_memory(info, record["summary"]["peak_allocated_mb"]))
                record["status"] = "ok"
            except torch.OutOfMemoryError as e:
                record.update(status="oom", error=f"OutOfMemoryError: {e}")
                record["summary"].update(peak_memory(device))  # the memory reached before it gave out
                if not info.multi_process:  # no collective here: the other ranks may be elsewhere
                    record["summary"].update(gather_peak_memory(info, record["summary"]["peak_allocated_mb"]))
            except Diverged as e:
                record.update(status="diverged", error=f"Diverged: {e}", diverged_step=e.step)
            except JobKilled as e:
                record.update(status="killed", error=str(e))
                killed = e
            except Exception as e:  # recorded, not raised: the other jobs of a multirun go on
                record.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            record["summary"]["wall_time_s"] = time.perf_counter() - started
            if info.is_rank0:
                write_record(job_dir, record)
    finally:
        steps.close()
        wb.finish_job(record, job_dir)  # status (ok, oom, diverged ...), reports and the records artifact, then finish
    if device.type == "cuda":  # the failed job's tensors are unreachable now: give their memory back
        gc.collect()
        torch.cuda.empty_cache()
        if cfg.trainer.memory_cap_gb is not None:  # the cap is per process: lift it for the next job
            torch.cuda.set_per_process_memory_fraction(1.0, device)
    level = logging.INFO if record["status"] == "ok" else logging.ERROR
    log.log(level, "job %s: %s%s", record["status"], job_dir, f" ({record['error']})" if record["error"] else "")
    if killed is not None:
        raise SystemExit(128 + killed.signum)
    return record
