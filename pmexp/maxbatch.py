"""Find the largest batch (or seq_len) that trains without running out of memory, per dropout variant.

    python -m pmexp.maxbatch model=bert_base precision=bf16 seq_len=512 \\
        --variants standard,packed_exact,packed,seeded --out runs/maxbatch/bert_base_512
    python -m pmexp.maxbatch model=bert_base trainer.batch_size=8 --seq-len-search --max-seq-len 8192

The command line only; the search (`run_search`, `search_max`) is pmexp.experiment.maxbatch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pmexp.experiment.maxbatch import DEFAULT_VARIANTS, MaxBatchError, run_search
from pmexp.experiment.records import MAXBATCH_FILE

__all__ = ["main"]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pmexp.maxbatch",
        description="Largest batch (or seq_len) per dropout variant that trains without OOM.",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=bert_base seq_len=512")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help="comma-separated dropout options (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="new directory for maxbatch.json(l) and probe dirs (default outputs/maxbatch/<time>)")
    parser.add_argument("--max-batch", type=int, default=None, help="never probe a larger batch")
    parser.add_argument("--seq-len-search", action="store_true",
                        help="search the longest seq_len at the config's trainer.batch_size instead")
    parser.add_argument("--max-seq-len", type=int, default=None,
                        help="never probe a longer seq_len (default: a pretrained model's positions)")
    parser.add_argument("--seq-len-step", type=int, default=64, help="seq_len granularity (default 64)")
    parser.add_argument("--batch-step", type=int, default=1,
                        help="batch size granularity (default 1; e.g. 8 where batches reach the hundreds)")
    parser.add_argument("--start", type=int, default=None,
                        help="first value probed (default --batch-step, or --seq-len-step for a seq_len search)")
    return parser.parse_intermixed_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    search = "seq_len" if args.seq_len_search else "batch_size"
    out = args.out or Path("outputs/maxbatch") / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    try:
        state = run_search(
            args.overrides, out, variants=[v for v in args.variants.split(",") if v], search=search,
            start=args.start or (args.seq_len_step if args.seq_len_search else args.batch_step),
            cap=args.max_seq_len if args.seq_len_search else args.max_batch,
            seq_len_step=args.seq_len_step, batch_step=args.batch_step,
        )
    except MaxBatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for variant, res in state["results"].items():
        note = " (hit the cap)" if res["hit_cap"] else ""
        print(f"{variant:>14}: max {search} {res['max']}{note}" + (f"  ERROR {res['error']}" if "error" in res else ""))
    print(f"wrote {out / MAXBATCH_FILE}; report: python -m pmexp.report {out}")
    return 1 if any("error" in r for r in state["results"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
