"""What a job record says was run: its settings, read from the summary with the config as fallback.

    python -c "import glob, json; from pmexp.experiment.settings import settings_of; \\
        print(settings_of(json.load(open(sorted(glob.glob('runs/*/*/*/metrics.json'))[0]))))"

The report groups jobs by these settings and `python -m pmexp.maxbatch` records them beside its
result, so both read them here. Settings added after records existed (`strategy`, `world_size`,
`memory`) are read as those older records ran (`with_defaults`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MEMORY_TECHNIQUES", "SETTING_KEYS", "normalise_setting", "select_config", "settings_of",
           "with_defaults"]

#: Summary fields that describe *what* was run (as opposed to what was measured).
SETTING_KEYS: tuple[str, ...] = (
    "data", "model", "variant", "precision", "seq_len", "attention",
    "batch_size", "compile", "checkpointing", "memory", "targets", "fuse", "strategy", "world_size", "reference",
    "seed",
)
# Where each setting may live in the resolved config (first scalar found wins), for records whose
# summary lacks it. `dropout.name` before `dropout.variant`: packed_hooks and none have variant null.
_CONFIG_PATHS: dict[str, tuple[str, ...]] = {
    "data": ("data.name",),  # the GLUE task or synthetic: in the config only
    "model": ("model.name",),
    "variant": ("dropout.name", "dropout.variant"),
    "precision": ("precision.name",),
    "seq_len": ("seq_len",),
    "attention": ("attention.implementation", "attention"),
    "batch_size": ("trainer.batch_size",),
    "compile": ("trainer.compile",),
    "checkpointing": ("trainer.checkpointing",),
    "memory": ("memory.name",),
    "targets": ("dropout.targets",),
    # dropout=none/packed_hooks: summary null, the config's value (so they group with the variants);
    # records from before dropout.fuse existed: null throughout (they ran without the attention fusion)
    "fuse": ("dropout.fuse",),
    "strategy": ("trainer.strategy",),
    "world_size": (),  # in the summary only (torchrun's WORLD_SIZE)
    "reference": ("trainer.reference",),  # the lockstep reference (pmexp.experiment.reference); null: none
    "seed": ("seed",),
}
#: What each ``memory`` config switches on: (Tempo's layers, activation checkpointing).
MEMORY_TECHNIQUES: dict[str, tuple[bool, bool]] = {
    "none": (False, False), "checkpointing": (False, True),
    "tempo": (True, False), "tempo_checkpointing": (True, True),
}


def select_config(config: Mapping[str, Any] | None, paths: Sequence[str]) -> Any:
    """The first value at one of the dotted ``paths`` that is not a mapping, else None."""
    for dotted in paths:
        node: Any = config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and not isinstance(node, Mapping):
            return node
    return None


def normalise_setting(key: str, value: Any) -> Any:
    """Make a setting hashable and comparable: lists become 'a,b', floats that are ints, ints."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if key in ("seq_len", "batch_size", "world_size", "seed") and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def settings_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of one job record: summary first, resolved config as fallback.

    Args:
        record: a parsed ``metrics.json``.

    Returns:
        A dict with every key of :data:`SETTING_KEYS`; values are ``None`` when unknown.
    """
    summary = record.get("summary") or {}
    config = record.get("config") or {}
    out: dict[str, Any] = {}
    for key in SETTING_KEYS:
        value = summary.get(key)
        if value is None:
            value = select_config(config, _CONFIG_PATHS[key])
        out[key] = normalise_setting(key, value)
    return with_defaults(out)


def with_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """Read settings added after records existed as those records ran, and ``memory`` as what ran.

    No ``strategy``/``world_size``: one process. ``memory`` names the technique that ran: a record
    without one ran Tempo-less, and checkpointed iff ``checkpointing`` (what ``memory=checkpointing``
    sets); ``trainer.checkpointing=true`` on top of ``memory=none|tempo`` is the same run as
    ``memory=checkpointing|tempo_checkpointing``, so it reads as that, and ``checkpointing`` agrees.
    """
    out = dict(settings)
    out["strategy"] = out.get("strategy") or "single"
    if out.get("world_size") is None and out["strategy"] == "single":
        out["world_size"] = 1
    memory = out.get("memory") or "none"
    if memory in MEMORY_TECHNIQUES:
        tempo, checkpointing = MEMORY_TECHNIQUES[memory]
        flags = (tempo, checkpointing or bool(out.get("checkpointing")))
        memory = next(name for name, f in MEMORY_TECHNIQUES.items() if f == flags)
        out["checkpointing"] = flags[1]
    out["memory"] = memory
    return out
