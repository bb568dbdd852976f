"""Where compiled packed's forward spends its extra host time (MiniLM fp32 S128 B32, the issue-12 cell it misses).

    python runs/2026-11-30-compiled-host/fwd_host.py --out OUT/fwd_host          # ~3 min on an H200

Per compiled model (standard, packed; each also with Inductor's ``size_asserts`` off): the host time of
the forward alone (until the loss returns; no sync inside), the steps alternating model by model; then,
per model, three evidence kinds: cProfile of 20 forwards (Python functions and builtins by own time),
torch.profiler's CPU ops inside the forward (self time by op, on the forward's thread), and the
stalling CUDA runtime calls. Prints Markdown; writes fwd_host.md and the raw tables under ``--out``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import statistics
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from pmexp.bench.step import build_cell_model
from pmexp.dropout.traced import inductor_options


def build(cell: str, variant: str, options: dict, device: str):
    """A compiled training step of ``cell`` with ``variant``, and its forward alone."""
    model, inputs, dtype = build_cell_model(cell, variant, device)
    compiled = torch.compile(model, options={**inductor_options(variant), **options} or None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=True)
    autocast = dtype != torch.float32

    def forward():
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=autocast):
            return compiled(**inputs).loss

    def step():
        with record_function("fwd"):
            loss = forward()
        with record_function("bwd"):
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    return step, forward


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def forward_host_ms(models: dict, rounds: int, device: str) -> dict[str, list[float]]:
    """Per model, the forward's host ms, one forward per model per round in a rotated order (each step completed)."""
    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            step, forward = models[name]
            sync(device)
            t0 = time.perf_counter()
            loss = forward()
            times[name].append((time.perf_counter() - t0) * 1e3)
            loss.backward()
            sync(device)
    return times


def cprofile_table(forward, device: str, calls: int = 20, rows: int = 30) -> tuple[str, dict]:
    """cProfile of ``calls`` forwards: the top functions by own time, and own seconds per call by function."""
    prof = cProfile.Profile()
    for _ in range(calls):
        sync(device)
        prof.enable()
        loss = forward()
        prof.disable()
        loss.backward()
    sync(device)
    stream = io.StringIO()
    stats = pstats.Stats(prof, stream=stream)
    stats.sort_stats("tottime").print_stats(rows)
    own: dict[str, list[float]] = {}
    for (f, line, fn), v in stats.stats.items():
        row = own.setdefault(unhashed(f"{Path(f).name}:{line}({fn})"), [0.0, 0.0])
        row[0] += v[1] / calls
        row[1] += v[2] / calls * 1e6
    return stream.getvalue(), own


def unhashed(name: str) -> str:
    """``name`` with Inductor's 52-character hashes (generated files, kernels, graphs) as ``<hash>``, so that two
    models' generated code compares by kind (their hashes differ), and line numbers of generated files dropped."""
    name = re.sub(r"\b[a-z0-9]{52}\b", "<hash>", name)
    return re.sub(r"<hash>\.py:\d+", "<hash>.py", name)


def forward_ops(step, device: str, steps: int = 3) -> tuple[dict, str]:
    """torch.profiler's CPU events inside the ``fwd`` ranges on the forward's thread: per name, (calls, self us)
    a step; and the stalling CUDA runtime calls a step."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    events = prof.events()
    ranges = [(e.time_range.start, e.time_range.end, e.thread) for e in events if e.name == "fwd"]
    per_name: dict[str, list[float]] = {}
    for e in events:
        if e.device_type == torch.autograd.DeviceType.CUDA or e.name == "fwd":
            continue
        if any(s <= e.time_range.start and e.time_range.end <= end and e.thread == t for s, end, t in ranges):
            row = per_name.setdefault(unhashed(e.name), [0.0, 0.0])
            row[0] += 1 / steps
            row[1] += e.self_cpu_time_total / steps
    fwd_us = sum(end - s for s, end, _ in ranges) / steps
    per_name["<fwd range, us>"] = [1, fwd_us]
    return per_name, prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60)


def diff_lines(rows: dict[str, dict], a: str, b: str, index: int, top: int, unit: str) -> list[str]:
    """The ``top`` keys whose ``index``-th value differs most between models ``b`` and ``a``."""
    keys = set(rows[a]) | set(rows[b])
    diffs = {k: rows[b].get(k, (0, 0))[index] - rows[a].get(k, (0, 0))[index] for k in keys}
    lines = [f"| {k} | {rows[a].get(k, (0, 0))[0]:.1f} | {rows[b].get(k, (0, 0))[0]:.1f} | "
             f"{rows[a].get(k, (0, 0))[1]:.1f} | {rows[b].get(k, (0, 0))[1]:.1f} | {d:+.1f} |"
             for k, d in sorted(diffs.items(), key=lambda kd: -abs(kd[1]))[:top]]
    return [f"| name | calls {a} | calls {b} | {unit} {a} | {unit} {b} | diff ({unit if index else 'calls'}) |",
            "|---|---|---|---|---|---|", *lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="minilm_mrpc")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    specs = {"standard": ("standard", {}), "packed": ("packed", {}),
             "standard/no-asserts": ("standard", {"size_asserts": False}),
             "packed/no-asserts": ("packed", {"size_asserts": False})}
    torch._dynamo.reset()
    models = {name: build(args.cell, v, o, args.device) for name, (v, o) in specs.items()}
    times = forward_host_ms(models, args.rounds, args.device)
    lines = [f"# Compiled {args.cell}: forward host time (torch {torch.__version__}, "
             f"{torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'})", "",
             f"Forward host ms, {args.rounds} rounds, models alternating: median [p10, p90]", "",
             "| model | forward ms | ratio to standard (per round, median [min, max]) |", "|---|---|---|"]
    for name, t in times.items():
        ratios = sorted(a / b for a, b in zip(t, times["standard"], strict=True))
        q = statistics.quantiles(t, n=10)
        lines.append(f"| {name} | {statistics.median(t):.3f} [{q[0]:.3f}, {q[-1]:.3f}] | "
                     f"{statistics.median(ratios):.3f} [{ratios[0]:.3f}, {ratios[-1]:.3f}] |")
    own, ops = {}, {}
    for name in ("standard", "packed"):
        step, forward = models[name]
        text, own[name] = cprofile_table(forward, args.device)
        (args.out / f"cprofile_{name}.txt").write_text(text)
        ops[name], table = forward_ops(step, args.device)
        (args.out / f"profiler_{name}.txt").write_text(table)
    lines += ["", "cProfile, 20 forwards: functions whose own time a forward differs most (packed minus standard)", "",
              *diff_lines(own, "standard", "packed", 1, 30, "own us"), "",
              "torch.profiler, CPU events inside the forward (its thread): self us a step, largest differences", "",
              *diff_lines(ops, "standard", "packed", 1, 30, "self us"), "",
              "Same, by calls", "", *diff_lines(ops, "standard", "packed", 0, 20, "self us")]
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / "fwd_host.md").write_text(text)


if __name__ == "__main__":
    main()
