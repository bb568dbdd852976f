"""Where a host-bound training step's host time goes, per dropout variant: phases, CPU time, Python calls, GC.

    python -m pmexp.bench.host_step --cell minilm_mrpc --out runs/host-step       # ~2 min on an H200
    python -m pmexp.bench.host_step --cell minilm_mrpc --padded --gc freeze       # the trainer's 2D mask; no GC scans
    python -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled            # torch.compile, the trainer's options

In a host-bound step (eager MiniLM on an H200: ~11 ms of kernels, ~19 ms wall) the GPU waits for
Python, so a variant's speed is what the host does for it. Two kinds of evidence, as ``pmexp.bench
step`` measures throughput:

- **Timed, interleaved**: each variant's own model (same weights and batch), alternating step by step
  (A B C A B C ...; ``--interleave round``: in blocks, as ``pmexp.bench step``), in an order rotated
  each round (``again:standard``, a second standard model, is the A/A control whose ratio is the noise
  floor). Host-bound steps need the step-by-step order: the H200 host's speed drifts by tens of percent
  within seconds (runs/2026-11-30-eager-host), which blocks of steps turn into per-round ratios of 0.6-1.7.
  A step's phases are timed as issued: forward (until the loss returns), backward (until
  ``backward()`` returns), optimizer (AdamW and zero_grad), with no sync inside, so each is the host's
  time for that phase; then the sync, and the step's wall. ``cpu`` is the process's CPU time over
  the three phases (all threads: autograd runs CUDA backward on its own thread), ``main_cpu`` the main
  thread's (so ``cpu - main_cpu`` is the other threads': the backward's, the CUDA driver's). Per round the
  median of each; ratios to standard are per round (time ratios: above 1 is slower), median [min, max].
- **Counted, no noise**: Python function calls and builtin calls a step (``sys.setprofile``), the
  functions whose counts differ most from standard's, GC collections (per generation, and their
  time) during the timed rounds, and kernels and CPU-side ops a step (``torch.profiler``).

Build order: the variants' models are built (and compiled) in ``--variants``' order, and on a host-bound step the
order showed: compiled MiniLM packed 0.988 of standard built second, 0.998 built first, with its CPU time a step
1.012 and 1.000 of standard's (runs/2026-11-30-compiled-host, call 13). Read a ratio within ~1% of 1 against
the A/A row, or run both orders.

``--gc``: ``on`` (Python's default), ``off`` (collection disabled in the timed rounds) or ``freeze``
(``gc.freeze()`` after the models are built, so collections skip them). Writes ``host_step.json`` /
``host_step.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import ast
import collections
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pmexp.bench.profile_step import kernel_totals
from pmexp.bench.step import (
    CELLS,
    CONTROL,
    VARIANTS,
    build_cell_model,
    compile_apart,
    ratio_stats,
    reference_variant,
    rotated,
    schedule,
    split_variant,
)
from pmexp.experiment.envinfo import env_info

__all__ = ["PHASES", "phased_step", "build_steps", "python_calls", "run", "main"]

PHASES = ("forward", "backward", "optimizer", "cpu", "main_cpu", "wall")


def phased_step(model: torch.nn.Module, inputs: dict, dtype: torch.dtype, device: torch.device,
                compiled: dict | None = None) -> Callable[[], tuple]:
    """A training step that returns its phases' seconds, in :data:`PHASES` order. ``compiled``: the model
    runs under ``torch.compile`` with these Inductor options (the trainer's: ``inductor_options(variant)``)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=True)
    forward = model if compiled is None else compile_apart(model, compiled)
    autocast = dtype != torch.float32
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step() -> tuple:
        sync()
        main0, cpu0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            loss = forward(**inputs).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t3, cpu3, main3 = time.perf_counter(), time.process_time(), time.thread_time()
        sync()
        return t1 - t0, t2 - t1, t3 - t2, cpu3 - cpu0, main3 - main0, time.perf_counter() - t0

    return step


def python_calls(step: Callable[[], object], steps: int = 2) -> tuple[float, float, dict[str, float]]:
    """Python function calls and builtin calls a step, and the Python calls a step per function (``file:line name``)."""
    functions: collections.Counter = collections.Counter()
    builtins = [0]

    def profiler(frame, event, arg) -> None:
        if event == "call":
            code = frame.f_code
            functions[f"{Path(code.co_filename).name}:{code.co_firstlineno} {code.co_name}"] += 1
        elif event == "c_call":
            builtins[0] += 1

    sys.setprofile(profiler)
    try:
        for _ in range(steps):
            step()
    finally:
        sys.setprofile(None)
    return sum(functions.values()) / steps, builtins[0] / steps, {k: n / steps for k, n in functions.items()}


def kernels_and_ops(step: Callable[[], object], steps: int = 2) -> tuple[float, float]:
    """Kernels launched and CPU-side ops (torch's dispatcher calls, nested ones included) a step."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    ops = sum(e.count for e in events if e.device_type != torch.autograd.DeviceType.CUDA and not e.is_user_annotation)
    return kernel_totals(events)[1] / steps, ops / steps


class GcClock:
    """Counts Python's collections per generation and their time, for whichever variant is running."""

    def __init__(self) -> None:
        self.owner: str | None = None
        self.counts: dict = collections.defaultdict(lambda: [0, 0, 0])
        self.seconds: dict = collections.defaultdict(float)
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if self.owner is None:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.counts[self.owner][info["generation"]] += 1
            self.seconds[self.owner] += time.perf_counter() - self._start


def timed_rounds(steps: dict[str, Callable[[], tuple]], rounds: int, per_round: int, clock: GcClock,
                 by_step: bool = True) -> dict:
    """Per variant, per round: the median of each phase over its ``per_round`` steps in the round (seconds).
    The order rotates each round; ``by_step``: the variants alternate step by step (A B C A B C ...: a drift
    of the host's speed hits them alike), else each runs its steps in a block (A A ... B B ..., as
    ``pmexp.bench step`` does)."""
    medians: dict[str, list[tuple]] = {name: [] for name in steps}
    for round_ in range(rounds):
        order = rotated(list(steps), round_)
        phases: dict[str, list[tuple]] = {name: [] for name in order}
        for name in schedule(order, per_round, by_step):
            clock.owner = name
            phases[name].append(steps[name]())
        clock.owner = None
        for name, times in phases.items():
            medians[name].append(tuple(statistics.median(t[i] for t in times) for i in range(len(PHASES))))
    return medians


def _ratios(variant: list[tuple], reference: list[tuple], i: int, inverse: bool = False) -> dict:
    """Per round, the variant's phase time over the reference's (``inverse``: the reference's over the variant's)."""
    return ratio_stats([(r[i] / v[i]) if inverse else (v[i] / r[i]) for v, r in zip(variant, reference, strict=True)])


def _count_rows(steps: dict[str, Callable[[], tuple]], reference: str, top: int) -> dict[str, dict]:
    """The counted (noise-free) columns per variant, with the functions whose calls differ most from the reference's."""
    counted = {}
    for name, step in steps.items():
        calls, builtins, functions = python_calls(step)
        kernels, ops = kernels_and_ops(step)
        counted[name] = {"python_calls": calls, "builtin_calls": builtins, "kernels": kernels, "ops": ops,
                         "functions": functions}
    base = counted[reference]["functions"]
    for row in counted.values():
        keys = set(base) | set(row["functions"])
        diff = {k: row["functions"].get(k, 0) - base.get(k, 0) for k in keys}
        row["most_different"] = sorted(((k, d) for k, d in diff.items() if d), key=lambda kd: -abs(kd[1]))[:top]
        del row["functions"]
    return counted


def build_steps(cell: str, variants, mode: str = "eager", padded: bool = False, device: str = "cuda",
                inductor: dict | None = None) -> dict[str, Callable[[], tuple]]:
    """Each variant's :func:`phased_step` on its own model (same weights and batch), warmed up (``mode``: eager or
    compiled with the trainer's Inductor options for the variant, ``inductor`` over them)."""
    from pmexp.dropout.traced import inductor_options

    steps = {}
    torch._dynamo.reset()
    for name in variants:
        model, inputs, dtype = build_cell_model(cell, name, device, padded)
        compiled = {**inductor_options(split_variant(name)[1]), **(inductor or {})} if mode == "compiled" else None
        steps[name] = phased_step(model, inputs, dtype, torch.device(device), compiled)
        for _ in range(3):  # warm-up: allocator, autotuning, the C++ extension's first launch
            steps[name]()
    return steps


def run(cell: str = "minilm_mrpc", variants=("standard", "packed", CONTROL), rounds: int = 25,
        per_round: int = 20, padded: bool = False, gc_mode: str = "on", device: str = "cuda",
        out: Path | None = None, top: int = 12, mode: str = "eager", by_step: bool = True,
        inductor: dict | None = None) -> list[dict]:
    """Build, count, then time ``variants`` interleaved (``mode``: eager or compiled; ``inductor``: Inductor
    options for every variant, over the trainer's); print Markdown and write it (and JSON) under ``out``."""
    from pmexp.bench.dropout import report

    reference = reference_variant(variants)
    steps = build_steps(cell, variants, mode, padded, device, inductor)
    counted = _count_rows(steps, reference, top)
    clock = GcClock()
    gc.callbacks.append(clock)
    gc.collect()
    if gc_mode == "freeze":
        gc.freeze()  # everything alive now (models, modules, transformers' objects) is never scanned again
    tracked = len(gc.get_objects()) + gc.get_freeze_count()
    if gc_mode == "off":
        gc.disable()
    try:
        medians = timed_rounds(steps, rounds, per_round, clock, by_step)
    finally:
        gc.enable()
        gc.callbacks.remove(clock)
    rows = []
    for name in variants:
        row = {"variant": name, **{f"{p}_ms": statistics.median(m[i] for m in medians[name]) * 1e3
                                   for i, p in enumerate(PHASES)}}
        row.update({f"{p}_ratio": _ratios(medians[name], medians[reference], i) for i, p in enumerate(PHASES)})
        row["seq_s_ratio"] = _ratios(medians[name], medians[reference], PHASES.index("wall"), inverse=True)
        collections_ = clock.counts[name]
        row.update(counted[name], gc_collections=list(collections_),
                   gc_ms_per_step=clock.seconds[name] * 1e3 / (rounds * per_round))
        rows.append(row)
    settings = {"cell": cell, "mode": mode, "interleave": "step" if by_step else "round", "rounds": rounds,
                "per_round": per_round, "padded": padded, "gc": gc_mode, "inductor": inductor or {},
                "gc_tracked_objects": tracked}
    env = env_info()
    report([{"settings": settings, "rows": rows}], to_markdown(rows, settings, env), env, out, "host_step")
    return rows


def _ratio(q: dict) -> str:
    return f"{q['median']:.3f} [{q['min']:.3f}, {q['max']:.3f}]"


def to_markdown(rows: list[dict], settings: dict, env: dict) -> str:
    lines = [f"Host cost of a step, {settings['cell']}, on {env['device_name']} (torch {env['torch']}, transformers "
             f"{env['transformers']}, commit {env['pmexp_commit']}); settings {settings}.", "",
             "Medians over rounds of each round's median (ms); ratio = the variant's time / standard's, per round, "
             "median [min, max] (above 1: slower); seq/s ratio = standard's wall / the variant's, per round (the "
             "throughput target's ratio). cpu: process CPU time of the three phases; main_cpu: the main thread's.", "",
             "| variant | " + " | ".join(f"{p} ms" for p in PHASES) + " | " + " | ".join(f"{p} ratio" for p in PHASES)
             + " | seq/s ratio |", "|" + "---|" * (2 + 2 * len(PHASES))]
    lines += ["| " + " | ".join([r["variant"], *(f"{r[p + '_ms']:.2f}" for p in PHASES),
                                 *(_ratio(r[p + "_ratio"]) for p in PHASES), _ratio(r["seq_s_ratio"])]) + " |"
              for r in rows]
    lines += ["", "Counted a step (no noise): Python function calls, builtin calls, kernels, CPU-side ops; GC "
              "collections in the timed rounds (generations 0/1/2) and their time a step.", "",
              "| variant | Python calls | builtin calls | kernels | ops | GC collections | GC ms/step |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['python_calls']:,.0f} | {r['builtin_calls']:,.0f} | {r['kernels']:,.0f} | "
              f"{r['ops']:,.0f} | {'/'.join(map(str, r['gc_collections']))} | {r['gc_ms_per_step']:.3f} |"
              for r in rows]
    for r in rows:
        if r["most_different"]:
            lines += ["", f"Python calls a step, {r['variant']} minus standard (largest differences):", ""]
            lines += [f"- {d:+g} {k}" for k, d in r["most_different"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pmexp.bench.host_step", description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="minilm_mrpc", choices=sorted(CELLS))
    parser.add_argument("--variants", nargs="+", default=["standard", "packed", CONTROL], choices=[*VARIANTS, CONTROL])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--padded", action="store_true", help="a 2D padding mask, as the trainer passes")
    parser.add_argument("--gc", default="on", choices=["on", "off", "freeze"])
    parser.add_argument("--mode", default="eager", choices=["eager", "compiled"])
    parser.add_argument("--interleave", default="step", choices=["step", "round"],
                        help="variants alternate step by step (default), or run their steps in blocks per round")
    parser.add_argument("--inductor", nargs="*", default=[], metavar="KEY=VALUE", type=_option,
                        help="compiled: Inductor options for every variant, e.g. combo_kernels=True")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("times a CUDA step: no CUDA device here (--device cpu runs the same on the CPU)")
    run(args.cell, tuple(args.variants), args.rounds, args.per_round, args.padded, args.gc, args.device, args.out,
        mode=args.mode, by_step=args.interleave == "step", inductor=dict(args.inductor))


def _option(text: str) -> tuple[str, object]:
    """argparse type of ``--inductor``: ``KEY=VALUE``, the value a Python literal (True, 52, 'x') or a string."""
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: write KEY=VALUE, e.g. combo_kernels=True")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


if __name__ == "__main__":
    main()
