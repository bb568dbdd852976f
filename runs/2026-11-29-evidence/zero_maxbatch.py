"""Largest per-GPU batch of one config under torchrun (2 processes), per strategy and dropout variant.

    python3 runs/2026-11-29-evidence/zero_maxbatch.py --out multirun/zero_maxbatch \
        --strategies zero2,zero3 --variants standard,packed -- model=bert_large precision=bf16 seq_len=512 \
        memory=checkpointing trainer.memory_cap_gb=80

pmexp.maxbatch probes in its own process, which cannot host a multi-process job; this driver reuses
its doubling-then-bisection (`search_max`, or `search_near` from a guess) and runs each probe as
`torchrun --nproc_per_node=N -m pmexp.train ...` (3 steps, synthetic data, no eval or probe),
reading the probe's metrics.json: ok fits, oom does not, anything else stops the search. Writes
<out>/zero_maxbatch.json (rewritten after every probe) and one probe dir per (strategy, variant, batch).

--near zero2/packed=272,... starts the search of the combinations it names at that batch (e.g. a
call that resumes where a cut one stopped); with --near given, a combination it does not name starts
from the answer of its strategy's previous variant.

--fit A,B saves probes where each one costs half a minute: probe batches A and B, fit the peak
reserved memory (the allocator's cap applies to reserved bytes) as a line in the batch, guess the
largest batch under the cap from it, then gallop from the guess in --step units (up while it fits,
down while it does not) and bisect the last bracket: the answer is measured (a fit at N, an OOM at
N + step), the line only picks where to look.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from pmexp.experiment.maxbatch import search_max, search_near

PROBE = ("data=synthetic", "trainer.max_steps=3", "trainer.eval=false", "trainer.probe=false",
         "trainer.timing_warmup=1", "logger=none", "force=true")


def peak_reserved_mb(out: Path, strategy: str, variant: str, batch: int) -> float:
    """Rank 0's peak reserved MB of a finished probe (ranks hold equal shards and batches: their
    allocated peaks agree, runs/2026-11-28-ddp)."""
    record = json.loads((out / f"{strategy}_{variant}" / f"bs{batch}" / "metrics.json").read_text())
    return record["summary"]["peak_reserved_mb"]


def probe(out: Path, nproc: int, strategy: str, variant: str, batch: int, overrides: list[str]) -> bool:
    job = out / f"{strategy}_{variant}" / f"bs{batch}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "pmexp.train", *PROBE, *overrides, f"trainer.strategy={strategy}", f"dropout={variant}",
           f"trainer.batch_size={batch}", f"data.num_train={batch * 3 * nproc}", "data.num_eval=8",
           f"job_dir={job}", f"hydra.run.dir={job}/hydra/rank${{oc.env:RANK}}"]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600, env=os.environ.copy())
    record = json.loads((job / "metrics.json").read_text()) if (job / "metrics.json").exists() else {}
    status = record.get("status")
    print(f"{strategy} {variant} batch {batch}: {status}", flush=True)
    if status not in ("ok", "oom"):
        raise RuntimeError(f"probe {job} ended {status}: {record.get('error')}")
    return status == "ok"


def fit_then_search(args: argparse.Namespace, strategy: str, variant: str, run) -> dict:
    """--fit: two probes give the line peak(batch); the search starts where it meets the cap."""
    a, b = (int(x) for x in args.fit.split(","))
    if not (run(a // args.step) and run(b // args.step)):
        raise RuntimeError(f"{strategy}/{variant}: the fit batches {a},{b} must fit; pick smaller ones")
    pa, pb = (peak_reserved_mb(args.out, strategy, variant, n) for n in (a, b))
    cap_mb = next(float(o.split("=")[1]) * 1024 for o in args.overrides if o.startswith("trainer.memory_cap_gb="))
    slope = (pb - pa) / (b - a)
    guess = int((b + (cap_mb - pb) / slope) // args.step)
    found = search_near(run, guess)
    return {"max": found.best * args.step, "hit_cap": False, "fit": {"batches": [a, b], "peak_reserved_mb": [pa, pb],
            "mb_per_sample": slope, "guess": guess * args.step},
            "probes": [(a, True), (b, True)] + [(k * args.step, ok) for k, ok in found.probes]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--strategies", default="zero2,zero3")
    parser.add_argument("--variants", default="standard,packed")
    parser.add_argument("--start", type=int, default=64)
    parser.add_argument("--step", type=int, default=8, help="batch granularity")
    parser.add_argument("--cap", type=int, default=4096)
    parser.add_argument("--fit", help="A,B: fit peak memory at batches A and B, search near the guess")
    parser.add_argument("--near", default="", help="strategy/variant=N,...: search from N, no fit "
                        "(a variant not named starts from the strategy's previous variant's answer)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    near = {k: int(v) for k, v in (item.split("=") for item in args.near.split(",") if item)}
    for strategy in args.strategies.split(","):
        for variant in args.variants.split(","):
            run = lambda k, s=strategy, v=variant: probe(args.out, args.nproc, s, v, k * args.step, args.overrides)
            key = f"{strategy}/{variant}"
            previous = [r["max"] for k, r in results.items() if k.startswith(f"{strategy}/")]
            if key in near or (near and previous):
                start = near.get(key) or previous[-1]
                found = search_near(run, start // args.step)
                results[key] = {"max": found.best * args.step, "hit_cap": False, "near": start,
                                "probes": [(k * args.step, ok) for k, ok in found.probes]}
            elif args.fit:
                results[f"{strategy}/{variant}"] = fit_then_search(args, strategy, variant, run)
            else:
                found = search_max(run, start=args.start // args.step, cap=args.cap // args.step)
                results[f"{strategy}/{variant}"] = {"max": found.best * args.step, "hit_cap": found.hit_cap,
                                                   "probes": [(k * args.step, ok) for k, ok in found.probes]}
            (args.out / "zero_maxbatch.json").write_text(json.dumps(
                {"nproc": args.nproc, "overrides": args.overrides, "results": results}, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
