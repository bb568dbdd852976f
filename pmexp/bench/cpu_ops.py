"""Which host work a variant adds to a training step: per op and CUDA runtime call, and per thread, against standard.

    python -m pmexp.bench.cpu_ops --cell minilm_mrpc --mode compiled --variants standard packed again:standard

For when :mod:`pmexp.bench.host_step` finds a variant spending more CPU time a step than standard with the same
Python calls and kernels: the difference is then below Python (torch's dispatcher, the CUDA runtime, the driver).
Each variant's step (:func:`pmexp.bench.host_step.build_steps`: own model, same weights and batch) is profiled with
``torch.profiler`` (CPU and CUDA activity: the CUDA runtime calls are CPU events) for ``--steps`` steps, the
variants interleaved (A B A B ..., the order rotated each repetition, as ``pmexp.bench step``) over ``--reps``
repetitions. Per event name: calls and self CPU time a step (median over repetitions); per thread: self CPU time
a step (the main thread, autograd's backward thread, others); per kind of event (Triton launches, CUDA runtime
calls, aten ops, ...: kernels are named differently per variant). Then the names whose self time differs most from
the reference's, with the spread over repetitions of the difference. The profiler's own cost inflates every
event alike; read differences, not totals. ``again:standard`` gives the A/A floor. Writes ``cpu_ops.json`` /
``cpu_ops.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import statistics
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from pmexp.bench.host_step import build_steps
from pmexp.bench.step import CELLS, CONTROL, VARIANTS, reference_variant, rotated
from pmexp.experiment.envinfo import env_info

__all__ = ["KINDS", "kind_of", "profile_once", "compare", "run", "main"]

_MAIN = "pmexp.cpu_ops.main_thread"  # a profiler range around the steps: its thread is the main one


def profile_once(step, steps: int) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Per event name (count, self CPU us) a step, and self CPU us a step per thread (``main`` is this one)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof, record_function(_MAIN):  # marks the main thread
        for _ in range(steps):
            step()
    names: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    threads: dict[int, float] = collections.defaultdict(float)
    device = torch.autograd.DeviceType.CUDA
    main = None
    for event in prof.events():
        if event.name == _MAIN:
            main = event.thread
        if event.device_type == device or event.is_user_annotation:
            continue
        names[event.key][0] += event.count
        names[event.key][1] += event.self_cpu_time_total
        threads[event.thread] += event.self_cpu_time_total
    # other threads' ids differ between profiles: labelled by rank of their time (``other 1`` the busiest)
    others = sorted((us for tid, us in threads.items() if tid != main), reverse=True)
    by_thread = {"main": threads.get(main, 0.0) / steps,
                 **{f"other {i + 1}": us / steps for i, us in enumerate(others)}}
    return {k: (n / steps, us / steps) for k, (n, us) in names.items()}, by_thread


def _median(samples: list[dict], key: str, index: int | None = None) -> float:
    values = [(s[key][index] if index is not None else s[key]) if key in s else 0.0 for s in samples]
    return statistics.median(values)


def compare(profiles: dict[str, list[tuple]], reference: str, top: int) -> dict[str, dict]:
    """Per variant: medians per name and thread, and the names whose self time differs most from the reference's
    (difference per repetition, paired by repetition: median [min, max])."""
    out = {}
    ref_ops = [s[0] for s in profiles[reference]]
    for name, samples in profiles.items():
        ops = [s[0] for s in samples]
        threads = [s[1] for s in samples]
        keys = set().union(*ops, *ref_ops)
        diffs = []
        for key in keys:
            d = [o.get(key, (0, 0))[1] - r.get(key, (0, 0))[1] for o, r in zip(ops, ref_ops, strict=True)]
            calls = _median(ops, key, 0)
            diffs.append({"name": key, "us": statistics.median(d), "min": min(d), "max": max(d),
                          "calls": calls - _median(ref_ops, key, 0), "variant_us": _median(ops, key, 1),
                          "variant_calls": calls})
        diffs.sort(key=lambda r: -abs(r["us"]))
        totals = [sum(us for _, us in o.values()) for o in ops]
        out[name] = {"self_cpu_us": statistics.median(totals),
                     "threads": {t: _median(threads, t) for t in sorted(set().union(*threads))},
                     "kinds": _kinds(ops, ref_ops), "most_different": diffs[:top]}
    return out


# Kinds of events, by name: kernels' names differ between variants (and Inductor numbers them with short names), so
# a variant's launches are compared with standard's as one kind.
KINDS = (("Triton launches", ("triton_",)), ("CUDA runtime and driver", ("cu",)), ("aten ops", ("aten::",)),
         ("autograd", ("autograd::", "torch::autograd::")),
         ("compiled graph ranges", ("## Call CompiledFxGraph", "Torch-Compiled Region", "CompiledFunction")))


def kind_of(name: str) -> str:
    return next((kind for kind, prefixes in KINDS if name.startswith(prefixes)), "other")


def _by_kind(sample: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
    kinds: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for name, (n, us) in sample.items():
        kinds[kind_of(name)][0] += n
        kinds[kind_of(name)][1] += us
    return kinds


def _kinds(ops: list[dict], ref_ops: list[dict]) -> dict[str, dict]:
    """Per kind: calls and self us a step (medians), us a call, and the paired difference from the reference."""
    mine, ref = [_by_kind(o) for o in ops], [_by_kind(r) for r in ref_ops]
    rows = {}
    for kind in [k for k, _ in KINDS] + ["other"]:
        calls = statistics.median(m[kind][0] for m in mine)
        us = statistics.median(m[kind][1] for m in mine)
        d = [m[kind][1] - r[kind][1] for m, r in zip(mine, ref, strict=True)]
        rows[kind] = {"calls": calls, "us": us, "us_per_call": us / calls if calls else 0.0,
                      "diff_us": statistics.median(d), "diff_min": min(d), "diff_max": max(d)}
    return rows


def run(cell: str = "minilm_mrpc", variants=("standard", "packed", CONTROL), mode: str = "compiled", reps: int = 8,
        steps: int = 5, device: str = "cuda", top: int = 25, out: Path | None = None,
        inductor: dict | None = None) -> dict:
    """Build, profile interleaved, compare; print Markdown and write it (and JSON) under ``out``."""
    from pmexp.bench.dropout import report

    reference = reference_variant(variants)
    built = build_steps(cell, variants, mode, device=device, inductor=inductor)
    profiles: dict[str, list[tuple]] = {name: [] for name in variants}
    for rep in range(reps):
        for name in rotated(list(variants), rep):
            profiles[name].append(profile_once(built[name], steps))
    result = compare(profiles, reference, top)
    settings = {"cell": cell, "mode": mode, "reps": reps, "steps": steps, "inductor": inductor or {}}
    env = env_info()
    raw = {name: [{"events": events, "threads": threads} for events, threads in samples]
           for name, samples in profiles.items()}  # every repetition, for other cuts than these tables
    report([{"settings": settings, "variants": result, "raw": raw}], to_markdown(result, reference, settings, env),
           env, out, "cpu_ops")
    return result


def to_markdown(result: dict, reference: str, settings: dict, env: dict) -> str:
    lines = [f"Host work a step by event, {settings['cell']} {settings['mode']}, on {env['device_name']} (torch "
             f"{env['torch']}, transformers {env['transformers']}, commit {env['pmexp_commit']}); settings {settings}.",
             "", "Self CPU us a step under torch.profiler (its overhead included), median over repetitions.", "",
             "| variant | self CPU us | " + " | ".join(f"{t} us" for t in result[reference]["threads"]) + " |",
             "|---|---|" + "---|" * len(result[reference]["threads"])]
    for name, r in result.items():
        lines.append(f"| {name} | {r['self_cpu_us']:,.0f} | "
                     + " | ".join(f"{r['threads'].get(t, 0):,.0f}" for t in result[reference]["threads"]) + " |")
    lines += ["", f"By kind of event: calls, self CPU us and us a call a step; minus {reference}'s, paired by "
              "repetition: median [min, max].", "", "| variant | kind | calls | us | us a call | minus reference |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {kind} | {k['calls']:g} | {k['us']:,.0f} | {k['us_per_call']:.2f} | {k['diff_us']:+,.0f} "
              f"[{k['diff_min']:+,.0f}, {k['diff_max']:+,.0f}] |" for name, r in result.items()
              for kind, k in r["kinds"].items()]
    for name, r in result.items():
        if name == reference:
            continue
        lines += ["", f"{name} minus {reference}, by event: self CPU us a step, median [min, max] over paired "
                  "repetitions; calls a step (difference, the variant's).", "",
                  "| event | us | calls | variant us | variant calls |", "|---|---|---|---|---|"]
        lines += [f"| {d['name'][:80]} | {d['us']:+.1f} [{d['min']:+.1f}, {d['max']:+.1f}] | {d['calls']:+g} | "
                  f"{d['variant_us']:.1f} | {d['variant_calls']:g} |" for d in r["most_different"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from pmexp.bench.host_step import _option

    parser = argparse.ArgumentParser(prog="python -m pmexp.bench.cpu_ops", description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="minilm_mrpc", choices=sorted(CELLS))
    parser.add_argument("--variants", nargs="+", default=["standard", "packed", CONTROL], choices=[*VARIANTS, CONTROL])
    parser.add_argument("--mode", default="compiled", choices=["eager", "compiled"])
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="steps per profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--inductor", nargs="*", default=[], metavar="KEY=VALUE", type=_option,
                        help="compiled: Inductor options for every variant, over the trainer's")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("profiles a CUDA step: no CUDA device here (--device cpu runs the same on the CPU)")
    run(args.cell, tuple(args.variants), args.mode, args.reps, args.steps, args.device, args.top, args.out,
        dict(args.inductor))


if __name__ == "__main__":
    main()
