"""The files a job leaves in its directory, which pmexp.report reads (and nothing else does).

`metrics.json` holds one record: schema, status, error, traceback, config, config_hash, overrides, env
and summary (keys in `SUMMARY_KEYS`, null where they do not apply). `schema` is the record format's
version (`SCHEMA_VERSION`; a record without one is version 1): it says how the record's config hash
was computed, so a resumed sweep compares a job with an older record the way that record was hashed.
`steps.jsonl` holds one JSON object per optimizer step and one per evaluation, each line flushed as
soon as it is written, so a crash loses nothing already logged. Numbers that are not finite are
written as null (strict JSON).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pmexp.experiment.envinfo import env_info as machine_info

__all__ = [
    "HASH_EXCLUDED_KEYS",
    "HASHED_SINCE",
    "MAXBATCH_FILE",
    "PROBES_FILE",
    "RECORD_FILE",
    "SCHEMA_VERSION",
    "STATUSES",
    "STEPS_FILE",
    "SUMMARY_KEYS",
    "StepLog",
    "config_hash",
    "env_info",
    "error_line",
    "same_config",
    "schema_of",
    "read_record",
    "write_record",
]

RECORD_FILE = "metrics.json"
STEPS_FILE = "steps.jsonl"
#: What `python -m pmexp.maxbatch` writes: the result, and one line per probe.
MAXBATCH_FILE, PROBES_FILE = "maxbatch.json", "maxbatch.jsonl"
#: 1: records before the version existed (no `schema` key); 2: the version is written and every config key
#: is hashed (version 1 left out the keys of `HASHED_SINCE[2]` at their defaults); 3: `dropout.fuse` too;
#: 4: `data.drop_last` too.
SCHEMA_VERSION = 4
# diverged: the loss or gradient norm stopped being finite; invalid: the config failed validation (a multirun job)
STATUSES = ("ok", "oom", "failed", "killed", "running", "diverged", "invalid")
SUMMARY_KEYS = (
    "model", "variant", "precision", "seq_len", "attention", "batch_size", "seed", "compile",
    "checkpointing", "memory", "targets", "steps", "train_loss_final", "eval_loss", "eval_accuracy", "eval_f1",
    "peak_allocated_mb", "peak_reserved_mb", "peak_active_mb", "saved_mask_bytes",
    "saved_activation_bytes", "saved_total_bytes", "throughput_seq_s", "throughput_tok_s",
    "step_time_median_ms", "step_time_p90_ms", "grad_norm_final", "wall_time_s",
    # Added with trainer.strategy (at the end, so the order above stays): peaks over a job's processes.
    "strategy", "world_size", "peak_allocated_mb_max", "peak_allocated_mb_mean",
    # With trainer.compile: how PM-Drop's variants are traced (pmexp.dropout.traced) and the backend.
    "compiled_dropout", "compile_backend",
    # Graphs Dynamo captured and graph breaks in the first step (pmexp.experiment.compiling).
    "compile_graphs", "graph_breaks",
    # dropout.fuse: packed/seeded ran fused with the residual add and attention's matmul (null: no surgery).
    "fuse",
    # With trainer.compile: the Inductor options the variant added ("realize_opcount_threshold=N" for seeded).
    "inductor_options",
    # Steps after the warm-up in which Dynamo compiled (a new shape): left out of seq/s and step times.
    "compile_steps", "compile_step_s",
)
# Keys that change where or how a job is reported, not what it computes: a resumed sweep with
# W&B switched on, or `force=true`, still matches the record it left.
HASH_EXCLUDED_KEYS = ("force", "job_dir", "logger")
#: Config keys hashed since a schema version, with the value that reproduces what an older record ran:
#: the hash of a record of an older schema left them out while at that value. Adding a config key
#: that older records should still match (resume) means a new version here and in SCHEMA_VERSION.
HASHED_SINCE: dict[int, dict[tuple[str, str], Any]] = {
    2: {("trainer", "strategy"): "single", ("trainer", "compile_backend"): "inductor"},
    3: {("dropout", "fuse"): True},
    4: {("data", "drop_last"): False},
}


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tensors and paths become plain values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, torch.Tensor):
        return _clean(value.item() if value.numel() == 1 else value.tolist())
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def schema_of(record: Mapping[str, Any]) -> int:
    """The schema version of a record (1 for records written before the version was)."""
    schema = record.get("schema", 1)
    return schema if isinstance(schema, int) and not isinstance(schema, bool) else 1


def config_hash(config: Mapping[str, Any], schema: int = SCHEMA_VERSION) -> str:
    """A stable hash of a resolved config as records of `schema` compute it (first 16 hex digits).

    `HASH_EXCLUDED_KEYS` are always left out; for an older schema, so are the keys hashed only since
    (`HASHED_SINCE`) while they hold the value that schema's jobs ran with.
    """
    kept = {k: v for k, v in config.items() if k not in HASH_EXCLUDED_KEYS}
    for version in range(schema + 1, SCHEMA_VERSION + 1):
        for (group, key), default in HASHED_SINCE.get(version, {}).items():
            if isinstance(kept.get(group), Mapping) and kept[group].get(key, default) == default:
                kept[group] = {k: v for k, v in kept[group].items() if k != key}
    text = json.dumps(_clean(kept), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def same_config(config: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether `record` was written for `config`: its hash, computed the way the record's schema did."""
    return record.get("config_hash") == config_hash(config, schema_of(record))


def error_line(error: str | None, limit: int = 160) -> str:
    """The first line of a record's error, cut to `limit` characters; '' for None."""
    return (error or "").strip().split("\n", 1)[0][:limit]


def _cpu_name() -> str:
    """The CPU model (Linux /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def env_info(device: torch.device) -> dict[str, Any]:
    """Versions, commit and hardware a record was made with (`pmexp.experiment.envinfo`), naming the job's device."""
    info = machine_info()
    info["device_name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return info


def write_record(job_dir: Path, record: Mapping[str, Any]) -> Path:
    """Write `metrics.json` atomically (temp file + rename): a reader never sees half a record."""
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / RECORD_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_clean(record), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def read_record(job_dir: Path) -> dict[str, Any] | None:
    """The record in `job_dir`, or None when there is none, it cannot be parsed or is not a JSON object."""
    try:
        record = json.loads((job_dir / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        logging.getLogger(__name__).warning("%s holds %s, not a record object: ignored",
                                            job_dir / RECORD_FILE, type(record).__name__)
        return None
    return record


class StepLog:
    """Appends one JSON line per call to `steps.jsonl`, flushed at once.

    A new attempt in a job dir that already has a steps file moves the old one aside to
    `steps.attemptN.jsonl` first, so lines of an earlier (failed or killed) attempt are kept.
    """

    def __init__(self, job_dir: Path) -> None:
        path = job_dir / STEPS_FILE
        if path.exists():
            n = 1
            while (job_dir / f"steps.attempt{n}.jsonl").exists():
                n += 1
            path.rename(job_dir / f"steps.attempt{n}.jsonl")
        self.path = path
        self._file = path.open("a", buffering=1)  # line buffered, plus an explicit flush below

    def write(self, row: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(_clean(row)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
