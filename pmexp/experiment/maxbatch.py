"""Find the largest batch (or seq_len) that trains without running out of memory, per variant.

    python -m pmexp.maxbatch model=bert_base precision=bf16 seq_len=512 \\
        --variants standard,packed_exact,packed,seeded --out runs/maxbatch/bert_base_512
    python -m pmexp.maxbatch model=bert_base trainer.batch_size=8 --seq-len-search --max-seq-len 8192

Each probe is a real training run of a few steps (``pmexp.experiment.job.train`` on the composed config
with ``trainer.max_steps=3 data=synthetic logger=none``), doubling from the start value until
the first OOM, then a binary search between the last fit and that OOM. Every probe is appended
to ``<out>/maxbatch.jsonl``; ``<out>/maxbatch.json`` holds the maximum per variant and is
rewritten after every probe, so an interrupted search still leaves a readable result
(``"complete": false``). ``python -m pmexp.report <out>`` shows it as the "max batch" table.

``python -m pmexp.maxbatch`` (pmexp/maxbatch.py) parses the command line and calls :func:`run_search`.
Why a pure :func:`search_max`: the doubling and bisection are tested with a fake probe on CPU;
only :func:`train_probe` touches the trainer and the GPU.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pmexp.experiment.job import train
from pmexp.experiment.records import MAXBATCH_FILE, PROBES_FILE, error_line, read_record
from pmexp.experiment.settings import settings_of
from pmexp.experiment.variants import DROPOUT_OPTIONS, MAXBATCH_DEFAULT

__all__ = [
    "CONF_DIR",
    "DEFAULT_VARIANTS",
    "PROBE_OVERRIDES",
    "MaxBatchError",
    "ProbeFailedError",
    "SearchResult",
    "free_cuda_memory",
    "run_search",
    "search_max",
    "search_near",
    "train_probe",
]

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
#: Put before the user's overrides, so a user may still change them (e.g. trainer.max_steps=5).
PROBE_OVERRIDES: tuple[str, ...] = (
    "trainer.max_steps=3", "data=synthetic", "logger=none", "trainer.eval=false",
    "trainer.probe=false", "trainer.timing_warmup=1", "force=true",
    "model.pretrained=false",  # memory is the architecture's, not the weights': random init, no hub (overridable)
)
DEFAULT_VARIANTS: tuple[str, ...] = MAXBATCH_DEFAULT  # the dropout options applied by surgery
_CONTROLLED = ("dropout", "job_dir")  # set per probe; a user override of them is refused


class MaxBatchError(ValueError):
    """The search was asked for something it cannot do; the message says what to pass instead."""


class ProbeFailedError(RuntimeError):
    """A probe ended neither ok nor OOM (a crash or a bad config): no memory limit was learnt."""


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`search_max`.

    ``best`` is the largest value that fit (0: not even the first one); ``hit_cap`` says the
    cap itself fit, so the true limit may be higher; ``probes`` lists (value, fit) in order.
    """

    best: int
    hit_cap: bool
    probes: tuple[tuple[int, bool], ...]


def search_max(probe: Callable[[int], bool], *, start: int = 1, cap: int | None = None) -> SearchResult:
    """Largest ``n`` in ``[1, cap]`` with ``probe(n)`` true, assuming fits at n => fits below n.

    Doubles from ``start`` until the first failure (or ``cap``), then bisects between the last
    fit and that failure; no value is probed twice. A failing ``start`` bisects ``[1, start)``.

    Args:
        probe: runs one configuration of size ``n``; True when it fit.
        start: first value probed, >= 1.
        cap: largest value ever probed; None for no cap.

    Raises:
        MaxBatchError: ``start`` < 1, or ``cap`` < ``start``.
    """
    if start < 1:
        raise MaxBatchError(f"the search starts at 1 or more, but got start={start}")
    if cap is not None and cap < start:
        raise MaxBatchError(f"cap={cap} is below start={start}: raise the cap or lower the start")
    probes: list[tuple[int, bool]] = []

    def fits(n: int) -> bool:
        ok = bool(probe(n))
        probes.append((n, ok))
        return ok

    lo, hi, n = 0, None, start  # lo: largest known fit; hi: smallest known failure
    while hi is None:
        if not fits(n):
            hi = n
        elif cap is not None and n >= cap:
            return SearchResult(n, True, tuple(probes))
        else:
            lo, n = n, n * 2 if cap is None else min(n * 2, cap)
    return SearchResult(_bisect(fits, lo, hi), False, tuple(probes))


def search_near(probe: Callable[[int], bool], guess: int) -> SearchResult:
    """Largest ``n >= 1`` with ``probe(n)`` true, starting at a good ``guess`` (e.g. from a fit of
    memory against batch): gallop from it by 1, 2, 4, ... up while it fits (down while it does not),
    then bisect the last bracket. A guess k off costs about 2 log2(k) probes; no value is probed twice.
    """
    probes: list[tuple[int, bool]] = []

    def fits(n: int) -> bool:
        ok = bool(probe(n))
        probes.append((n, ok))
        return ok

    guess = max(1, guess)
    if fits(guess):
        lo, jump = guess, 1
        while fits(lo + jump):
            lo, jump = lo + jump, jump * 2
        hi = lo + jump
    else:
        hi, jump = guess, 1
        while hi - jump >= 1 and not fits(hi - jump):
            hi, jump = hi - jump, jump * 2
        lo = max(0, hi - jump)
    return SearchResult(_bisect(fits, lo, hi), False, tuple(probes))


def _bisect(fits: Callable[[int], bool], lo: int, hi: int) -> int:
    """Largest fit in ``[lo, hi)`` given ``lo`` fits (or is 0) and ``hi`` does not."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def free_cuda_memory() -> None:
    """Drop what the last probe left (compiled graphs, garbage, cached blocks) and reset peaks."""
    dynamo = sys.modules.get("torch._dynamo")  # imported only once something was compiled
    if dynamo is not None:
        dynamo.reset()  # graphs compiled for another shape would stay cached, and hold memory
    if torch.cuda.is_available():  # off CUDA there is no peak to measure, nor a cache to empty
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def train_probe(
    cfg: Any, job_dir: Path, train_fn: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """Run one probe and return its job record (``<job_dir>/metrics.json`` as the trainer wrote it).

    The trainer records an OOM itself; one that escapes it still counts as ``oom``, while any
    other exception propagates (a bad config must stop the search, not read as a limit).
    """
    train_fn = train_fn or train
    free_cuda_memory()  # between probes: what the last one left must not count against this one
    try:
        result = train_fn(cfg)
    except Exception as exc:
        if not _is_oom(exc):
            raise
        return {"status": "oom", "error": f"{type(exc).__name__}: {exc}"}
    record = read_record(job_dir)
    return record if record is not None else dict(result)


def _runs_on_cuda(cfg: Any) -> bool:
    """Whether the trainer would put this config on a CUDA device (``trainer.device``)."""
    device = str(cfg.trainer.device)
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a file


class _Prober:
    """Runs the probes of one search: logs each to maxbatch.jsonl, keeps maxbatch.json current.

    Each variant's config is composed once (``dropout=<variant>`` and the user's overrides); a
    probe sets the searched value and its job dir on a copy. Both are plain values, so this is
    what a ``trainer.batch_size=N`` override would give, without composing again per probe.
    """

    def __init__(self, compose: Callable[[list[str]], Any], overrides: Sequence[str], out: Path,
                 state: dict[str, Any], train_fn: Callable[[Any], Any] | None) -> None:
        self.compose, self.overrides, self.out = compose, list(overrides), out
        self.state, self.train_fn = state, train_fn
        self.configs: dict[str, Any] = {}

    def __call__(self, variant: str, value: int) -> bool:
        search = self.state["search"]
        job_dir = self.out / "probes" / variant / f"{search}_{value}"
        if variant not in self.configs:
            self.configs[variant] = self.compose([*PROBE_OVERRIDES, *self.overrides, f"dropout={variant}"])
        cfg = self.configs[variant].copy()
        if search == "batch_size":
            cfg.trainer.batch_size = value
        else:
            cfg.seq_len = value
        cfg.job_dir = str(job_dir)
        # Synthetic data has data.num_train samples: enough for max_steps full batches, or the
        # DataLoader would hand a smaller batch than the one being probed.
        steps = (cfg.trainer.max_steps or 1) * cfg.trainer.grad_accum
        cfg.data.num_train = max(cfg.data.num_train or 0, cfg.trainer.batch_size * steps)
        t0 = time.perf_counter()
        record = train_probe(cfg, job_dir, self.train_fn)
        if not record.get("config"):
            record["config"] = OmegaConf.to_container(cfg, resolve=True)
        settings, summary = settings_of(record), record.get("summary") or {}
        status = record.get("status", "failed")
        line = {
            "variant": variant, "search": search, "batch_size": settings["batch_size"],
            "seq_len": settings["seq_len"], "status": status,
            "peak_allocated_mb": summary.get("peak_allocated_mb"),
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - t0, 3),
            "job_dir": str(job_dir), "error": error_line(record.get("error")) or None,
        }
        with (self.out / PROBES_FILE).open("a") as f:
            f.write(json.dumps(line) + "\n")
        log.info("%s %s=%d: %s (%.1f s)", variant, search, value, status, line["wall_time_s"])
        if not self.state["settings"]:
            drop = ("variant", "seed", search)
            self.state["settings"] = {k: v for k, v in settings.items() if k not in drop}
            self.state["env"] = record.get("env") or {}
        result = self.state["results"][variant]
        result["probes"] += 1
        if status == "ok" and (result["max"] is None or value > result["max"]):
            result.update(max=value, peak_allocated_mb=line["peak_allocated_mb"])
        _write_json(self.out / MAXBATCH_FILE, self.state)
        if status not in ("ok", "oom"):
            raise ProbeFailedError(
                f"{variant} probe {search}={value} ended {status!r}, not ok or OOM: {line['error']}; "
                f"see {job_dir}/metrics.json, fix the cause and search again"
            )
        return status == "ok"


def _check_search(overrides: Sequence[str], out: Path, variants: Sequence[str], search: str, start: int,
                  seq_len_step: int, batch_step: int) -> None:
    """`run_search`'s arguments, before anything is composed or written (see its Raises)."""
    unknown = [v for v in variants if v not in DROPOUT_OPTIONS]
    if unknown:
        raise MaxBatchError(f"variants {unknown} are not dropout options: pick from {', '.join(DROPOUT_OPTIONS)}")
    if search not in ("batch_size", "seq_len"):
        raise MaxBatchError(f"search={search!r}: pick 'batch_size' or 'seq_len'")
    unit, unit_name = (seq_len_step, "seq_len_step") if search == "seq_len" else (batch_step, "batch_step")
    if unit < 1 or start < unit:
        raise MaxBatchError(f"start={start} and {unit_name}={unit}: both must be >= 1 and start >= {unit_name}")
    owned = (*_CONTROLLED, "trainer.batch_size" if search == "batch_size" else "seq_len")
    for o in overrides:
        if o.lstrip("+~").split("=")[0] in owned:
            raise MaxBatchError(f"override {o!r} is set by the search itself: use --variants for the "
                                "dropout, --out for where probes go, and leave out the searched value")
    if (out / PROBES_FILE).exists():
        raise MaxBatchError(f"{out / PROBES_FILE} exists: pass a new --out directory to search again")


def run_search(
    overrides: Sequence[str],
    out: Path,
    *,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    search: str = "batch_size",
    start: int = 1,
    cap: int | None = None,
    seq_len_step: int = 64,
    batch_step: int = 1,
    train_fn: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Search every variant and write ``maxbatch.jsonl`` and ``maxbatch.json`` into ``out``.

    A variant whose probe fails for another reason than OOM gets ``max`` null and the error;
    the other variants are still searched.

    Args:
        overrides: Hydra overrides of ``conf/train.yaml`` (model, precision, seq_len, memory cap...).
        out: a directory without ``maxbatch.jsonl``; probe job dirs go to ``out/probes``.
        variants: dropout options (``conf/dropout``) to search, in order.
        search: ``"batch_size"`` or ``"seq_len"`` (at the config's fixed batch size).
        start: first value probed (for seq_len in tokens, rounded down to ``seq_len_step``).
        cap: largest value probed; for seq_len the default is a pretrained model's position count.
        seq_len_step: seq_len is searched in multiples of this many tokens.
        batch_step: the batch size is searched in multiples of this (a coarser, shorter search
            where batches reach the hundreds, e.g. with activation checkpointing).
        train_fn: replaces ``pmexp.experiment.job.train`` (tests).

    Returns:
        The content of ``maxbatch.json``.

    Raises:
        MaxBatchError: bad arguments, a used ``out``, an unknown variant, or an override the search sets itself.
    """
    unit = seq_len_step if search == "seq_len" else batch_step
    _check_search(overrides, out, variants, search, start, seq_len_step, batch_step)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="maxbatch"):
        base = compose("train", overrides=[*PROBE_OVERRIDES, *overrides])  # bad overrides fail here
        if search == "seq_len" and cap is None and OmegaConf.select(base, "model.pretrained"):
            cap = OmegaConf.select(base, "model.max_positions")
        if cap is None and train_fn is None and not _runs_on_cuda(base):
            raise MaxBatchError("the probes would run on the CPU, which has no OOM to find: run on a "
                                "CUDA device, or bound the search with --max-batch / --max-seq-len")
        out.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {"search": search, "complete": False, "overrides": list(overrides),
                                 "cap": cap, "step": unit, "settings": {}, "env": {}, "results": {}}
        prober = _Prober(lambda o: compose("train", overrides=o), overrides, out, state, train_fn)
        for variant in variants:
            result = state["results"][variant] = {"max": None, "peak_allocated_mb": None,
                                                  "hit_cap": False, "probes": 0}
            try:
                found = search_max(lambda k, v=variant: prober(v, k * unit), start=start // unit,
                                   cap=None if cap is None else cap // unit)
                result["hit_cap"] = found.hit_cap
                if found.best == 0:
                    result["max"] = 0  # even the smallest value ran out of memory
            except ProbeFailedError as exc:
                result["error"] = str(exc)
            _write_json(out / MAXBATCH_FILE, state)
    state["complete"] = True
    _write_json(out / MAXBATCH_FILE, state)
    return state
