"""Where a training step's time goes, per dropout variant: host or device, and which kernels.

    python -m pmexp.bench.profile_step --cell bert_large_512 --variants standard packed seeded
    python -m pmexp.bench.profile_step --cell tinybert_512 --mode compiled --variants standard packed
    python -m pmexp.bench.profile_step --cell minilm_bf16 --variants standard packed unfused:packed

The step is :func:`pmexp.bench.step.make_step`'s (same cells, modes and variant names, ``tempo:`` and
``unfused:`` included). For each variant: the step's wall time unprofiled (median of ``--steps``
synced steps), the time the host takes to issue it (until ``step()`` returns, before the sync), and
its device time (the kernels' self CUDA time over the profiled steps, divided by their number). Wall
well above device time, with host time close to wall, means the GPU waits for the host: a host-bound
step, where the host's cost per call decides (a sync inside the step also makes host time ~ wall).
Then how many kernels a step launches (each one host work in a host-bound step) and the kernels
(and ops) with the most device time.
Summing the table's rows instead of reading its footer counts an op and its kernels both.
For finding why one variant is slower than another; reported throughput is ``pmexp.bench step``'s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from pmexp.bench.step import CELLS, MODES, make_step


def _host_and_wall_ms(step, steps: int) -> tuple[float, float]:
    """Medians of the time ``step()`` takes to return (the host issuing it: it returns before the
    device is done unless something in it waits) and of the time until the device is done."""
    host, wall = [], []
    for _ in range(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        host.append((time.perf_counter() - start) * 1e3)
        torch.cuda.synchronize()
        wall.append((time.perf_counter() - start) * 1e3)
    return statistics.median(host), statistics.median(wall)


def kernel_totals(events) -> tuple[float, int]:
    """Device time of the kernels (us) and how many ran, as the table's footer counts them: not the
    GPU spans of ``record_function`` ranges (``Optimizer.step#AdamW.step`` is one), which overlap the
    kernels and whose length is the range's, not work (the first H200 run counted one as 2 ms a step).
    The count says how many launches the host issues: in a host-bound step, each costs ~5 us or more."""
    cuda = torch.autograd.DeviceType.CUDA
    kernels = [e for e in events if e.device_type == cuda and not e.is_user_annotation]
    return sum(e.self_device_time_total for e in kernels), sum(e.count for e in kernels)


# CUDA runtime calls that stall the host or the device: a synchronisation waits for the device, and the
# caching allocator's cudaMalloc / cudaFree (when it must grow or give memory back) synchronise too.
_STALLS = ("cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize", "cudaMalloc", "cudaFree")


def _stalls(events, steps: int) -> str:
    """The stalling runtime calls a step (the profiled loop's closing synchronize counts once in all)."""
    counts = {e.key: e.count / steps for e in events if e.key in _STALLS and e.count}
    return ", ".join(f"{name} {n:g}" for name, n in counts.items()) or "none"


def profile_variant(cell: str, variant: str, mode: str, steps: int = 5, rows: int = 15) -> None:
    """Print ``variant``'s wall and device time a step in ``cell`` / ``mode``, and its top kernels."""
    step = make_step(cell, variant, mode)  # built and warmed up (compiled, or captured, already)
    host, wall = _host_and_wall_ms(step, steps)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    device, launches = kernel_totals(events)
    print(f"\n## {cell} {mode} {variant}: wall {wall:.2f} ms/step unprofiled (host issues it in {host:.2f}), "
          f"device {device / steps / 1e3:.2f} ms/step of kernels, {launches / steps:.0f} kernels a step; {steps} steps")
    print(f"stalling runtime calls a step: {_stalls(events, steps)}")
    print(events.table(sort_by="self_cuda_time_total", row_limit=rows, max_name_column_width=70))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="bert_large_512", choices=sorted(CELLS))
    parser.add_argument("--mode", default="eager", choices=MODES)
    parser.add_argument("--variants", nargs="+", default=["standard", "packed", "seeded"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("profiles a CUDA step: no CUDA device here")
    for variant in args.variants:
        torch._dynamo.reset()  # each variant compiled afresh (profiled one at a time, none reused)
        profile_variant(args.cell, variant, args.mode, args.steps, args.rows)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
