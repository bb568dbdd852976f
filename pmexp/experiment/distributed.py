"""Several processes for one job (`trainer.strategy=ddp|zero1|zero2|zero3`), started by torchrun.

    torchrun --nproc_per_node=2 -m pmexp.train trainer.strategy=ddp              # 2 GPUs (or 2 CPU processes)
    torchrun --nproc_per_node=8 -m pmexp.train trainer.strategy=zero1 model=bert_large
    torchrun --nproc_per_node=2 -m pmexp.train trainer.strategy=zero3 model=bert_large memory=checkpointing

ddp replicates everything; zero1 shards AdamW's state (ZeroRedundancyOptimizer, over DDP); zero2 and
zero3 shard parameters, gradients and optimizer state with PyTorch's FSDP2 (`fully_shard`, one unit
per transformer block plus the root): zero2 keeps a block's gathered parameters from its forward to
its backward (`reshard_after_forward=False`, ZeRO-2-like: more memory, one all-gather per block per
step), zero3 frees them after the forward and gathers them again for the backward
(`reshard_after_forward=True`). Under zero2/zero3 every rank also evaluates (a forward needs every
rank's shard); rank 0 alone still writes the records.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in each process; `setup`
reads them, joins the process group (NCCL on CUDA, gloo on CPU) and binds each process to the GPU
`cuda:LOCAL_RANK`. The helpers below are no-ops for `trainer.strategy=single` (one process, no
process group), so the trainer calls them the same way in both cases.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "LAUNCHER_ENV",
    "SHARDED",
    "STRATEGIES",
    "DistInfo",
    "DistributedError",
    "broadcast_object",
    "data_parallel",
    "gather_peak_memory",
    "grad_sync",
    "max_over_ranks",
    "setup",
    "shard_model",
    "sum_over_ranks",
    "teardown",
]

STRATEGIES = ("single", "ddp", "zero1", "zero2", "zero3")
#: Strategies whose parameters FSDP2 shards, and whether each frees gathered parameters after the forward.
SHARDED = {"zero2": False, "zero3": True}
LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_HOW = ("run it with torchrun --nproc_per_node=N -m pmexp.train trainer.strategy={strategy} ..., or in a "
        "submitit launcher with hydra.launcher.tasks_per_node=N")


def _export_submitit_env() -> None:
    """Inside a submitit task (Hydra's submitit_slurm / submitit_local launchers with
    ``tasks_per_node`` > 1), set the variables torchrun would have set, from submitit's own
    job environment (Slurm's on a cluster): each task of the job is one rank."""
    if "SUBMITIT_EXECUTOR" not in os.environ or all(k in os.environ for k in LAUNCHER_ENV):
        return
    from submitit.helpers import TorchDistributedEnvironment  # the optional `sweep` extra: only inside submitit

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # setup() picks cuda:LOCAL_RANK


class DistributedError(RuntimeError):
    """A multi-process job cannot start as asked; the message says what to run or change."""


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank among `world_size`, its device, and the backend (None: single)."""

    strategy: str = "single"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def multi_process(self) -> bool:
        """Whether a process group joins several processes (False for trainer.strategy=single)."""
        return self.backend is not None

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0


def _check_backend(backend: str, device: torch.device) -> None:
    if backend == "nccl" and device.type != "cuda":
        raise DistributedError(f"the NCCL backend needs CUDA devices, but this process runs on {device}: "
                               f"use gloo on a CPU (trainer.device=cpu picks it), or a machine with GPUs")
    if backend not in ("nccl", "gloo"):
        raise DistributedError(f"backend {backend!r} is not supported: pmexp uses nccl (CUDA) or gloo (CPU)")


def setup(strategy: str, device: torch.device, backend: str | None = None) -> DistInfo:
    """Join torchrun's process group for `strategy` ddp/zero1; for `single`, just describe this process.

    Args:
        strategy: one of `STRATEGIES`.
        device: the device `trainer.device` resolved to; on CUDA each process takes `cuda:LOCAL_RANK` instead.
        backend: None picks nccl on CUDA and gloo on CPU.

    Returns:
        The process's `DistInfo` (rank, world size, device, backend).

    Raises:
        DistributedError: torchrun's environment is missing, there are more processes on this node than
            CUDA devices, or NCCL was asked for on a CPU.
    """
    if strategy not in STRATEGIES:
        raise DistributedError(f"trainer.strategy={strategy!r} is unknown: pick one of {STRATEGIES}")
    if strategy == "single":
        return DistInfo(device=device)
    _export_submitit_env()
    missing = [k for k in LAUNCHER_ENV if k not in os.environ]
    if missing:
        raise DistributedError(f"trainer.strategy={strategy} needs the environment torchrun sets "
                               f"(missing {', '.join(missing)}): {_HOW.format(strategy=strategy)}")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise DistributedError(f"process LOCAL_RANK={local_rank} has no GPU: this node has {count} CUDA "
                                   f"device(s); pass torchrun --nproc_per_node={count} or fewer")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)  # before init: NCCL binds each process to its own GPU
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    _check_backend(backend, device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                device_id=device if device.type == "cuda" else None)
    return DistInfo(strategy, rank, world_size, local_rank, device, backend)


def teardown(info: DistInfo, finished: bool = True) -> None:
    """Leave the process group (a no-op for a single process).

    First the job's garbage goes while the group and the interpreter are whole: the model and its
    FSDP2/DDP state sit in reference cycles (a collection after a zero2 job frees ~4,000 objects), and
    left to the interpreter's exit they are torn down after the group and its gloo threads. Then, if
    this rank's job `finished` ok (so every rank's did), a barrier, so that no rank shuts its
    connections while another still uses them. Why both: zero2 runs on 2 CPU processes now and then
    (2 of ~110 here, once in CI) ended with one rank's "terminate called without an active
    exception" (SIGABRT) after the record was written. After a failure there is no barrier: a rank
    stuck in a collective would hang it.
    """
    if not (info.multi_process and dist.is_initialized()):
        return
    gc.collect()  # ~0.6 s once per job on a CPU: a full collection walks every live object
    if finished:
        dist.barrier(device_ids=[info.device.index] if info.device.type == "cuda" else None)
    dist.destroy_process_group()


def broadcast_object(info: DistInfo, obj: Any) -> Any:
    """Rank 0's `obj` on every rank (a picklable value: the job dir, a skip decision)."""
    if not info.multi_process:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=info.device if info.device.type == "cuda" else None)
    return box[0]


def _reduce(info: DistInfo, values: Sequence[float], op: Any) -> list[float]:
    if not info.multi_process:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def sum_over_ranks(info: DistInfo, values: Sequence[float]) -> list[float]:
    """Each value summed over the ranks (samples and tokens for the job's throughput)."""
    return _reduce(info, values, dist.ReduceOp.SUM if info.multi_process else None)


def max_over_ranks(info: DistInfo, values: Sequence[float]) -> list[float]:
    """Each value's maximum over the ranks (the slowest rank's wall time)."""
    return _reduce(info, values, dist.ReduceOp.MAX if info.multi_process else None)


def gather_peak_memory(info: DistInfo, peak_allocated_mb: float | None) -> dict[str, float | None]:
    """Max and mean over ranks of each rank's peak allocated MiB; None when any rank has none (CPU)."""
    if info.multi_process:
        peaks: list[Any] = [None] * info.world_size
        dist.all_gather_object(peaks, peak_allocated_mb)
    else:
        peaks = [peak_allocated_mb]
    if any(p is None for p in peaks):
        return {"peak_allocated_mb_max": None, "peak_allocated_mb_mean": None}
    return {"peak_allocated_mb_max": max(peaks), "peak_allocated_mb_mean": sum(peaks) / len(peaks)}


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's transformer blocks: modules of the classes transformers never splits across devices."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    return [m for m in model.modules() if type(m).__name__ in names and m is not model]


def shard_model(info: DistInfo, model: torch.nn.Module) -> torch.nn.Module:
    """zero2/zero3: shard the model's parameters over the ranks with FSDP2, in place; else a no-op.

    Call it after the model is on its device and before the optimizer collects its parameters (they
    become DTensors, each rank holding a 1/world_size slice). One FSDP unit per block (`_blocks`), so
    only one block's parameters are gathered at a time, then the root for what is left (embeddings,
    head).

    Returns:
        The same module (now an `FSDPModule` under zero2/zero3).
    """
    if info.strategy not in SHARDED:
        return model
    reshard = SHARDED[info.strategy]
    for block in _blocks(model):
        fully_shard(block, reshard_after_forward=reshard)
    return fully_shard(model, reshard_after_forward=reshard)


def data_parallel(info: DistInfo, model: torch.nn.Module) -> Any:
    """ddp/zero1: the model in DistributedDataParallel; zero2/zero3 (sharded already) and single: None."""
    if not info.multi_process or info.strategy in SHARDED:
        return None
    # broadcast_buffers=False: the buffers (position ids) never change, so no collective per forward.
    return DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                                   broadcast_buffers=False)


@contextlib.contextmanager
def grad_sync(module: torch.nn.Module, skip: bool) -> Iterator[None]:
    """A backward under it skips the gradient all-reduce (DDP) or reduce-scatter (FSDP2) when `skip`.

    For accumulating micro-batches: the last one of an optimizer step syncs; a single process, or
    `skip` False, changes nothing.
    """
    if not skip:
        yield
    elif hasattr(module, "no_sync"):  # DistributedDataParallel
        with module.no_sync():
            yield
    elif isinstance(module, FSDPModule):
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    else:
        yield
