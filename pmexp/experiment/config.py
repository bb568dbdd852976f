"""The schema of `conf/` and the checks run on a composed config before any work starts.

Hydra already refuses an override of a key that does not exist (`trainer.bach_size=4`); this module
also catches what Hydra cannot see: a typo inside a YAML file of `conf/`, a value of the wrong type,
and values that are well-typed but wrong (a dropout probability of 1.5, an unknown variant, a
sequence longer than a pretrained model's position table). Each error names the key and the fix.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from pmexp.dropout import VARIANTS
from pmexp.experiment.distributed import STRATEGIES
from pmexp.experiment.errors import ConfigError
from pmexp.experiment.models import check_model_config
from pmexp.experiment.reference import REFERENCES
from pmexp.experiment.tasks import GLUE_TASKS, TASKS
from pmexp.experiment.variants import DROPOUT_OPTIONS

__all__ = [
    "ATTENTIONS",
    "DROPOUT_TARGETS",
    "FAULTS",
    "TASKS",
    "ConfigError",
    "TrainConfig",
    "config_warnings",
    "validate",
]

ATTENTIONS = ("eager", "sdpa")
DROPOUT_TARGETS = ("hidden", "attention")
AUTOCAST_DTYPES = (None, "bfloat16", "float16")
LOGGER_MODES = ("offline", "online", "disabled")
# trainer.fault: a failure injected once the first optimizer step is logged, to test a sweep's fault handling.
FAULTS = (None, "oom", "sigterm", "nan", "kill9")
SEED_MAX = 2**32 - 1  # numpy's seed range (pmexp seeds Python, NumPy and torch with it)
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclasses.dataclass
class ModelConfig:
    name: str = "???"
    arch: str = "???"
    task: str = "???"
    hub_id: str | None = None
    pretrained: bool = False
    local_path: str | None = None
    max_positions: int | None = None
    num_labels: int | None = None
    dropout_keys: dict[str, list[str]] = field(default_factory=dict)
    position_key: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclasses.dataclass
class DataConfig:
    name: str = "???"
    dir: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    vocab: str | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    pad_to_seq_len: bool = False
    drop_last: bool = False
    num_train: int | None = None
    num_eval: int | None = None


@dataclasses.dataclass
class DropoutConfig:
    name: str = "???"
    variant: str | None = None
    hooks: bool = False
    targets: list[str] = field(default_factory=lambda: list(DROPOUT_TARGETS))
    p: float | None = None
    fuse: bool = True


@dataclasses.dataclass
class PrecisionConfig:
    name: str = "???"
    autocast_dtype: str | None = None
    grad_scaler: bool = False


@dataclasses.dataclass
class TrainerConfig:
    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_grad_norm: float | None = 1.0
    checkpointing: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    compile_mode: str = "default"
    inductor_options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    eval: bool = True
    log_every: int = 10
    timing_warmup: int = 3
    probe: bool = True
    memory_cap_gb: float | None = None
    num_workers: int = 0
    fault: str | None = None
    strategy: str = "single"
    reference: str | None = None


@dataclasses.dataclass
class LoggerConfig:
    name: str = "none"
    project: str | None = None
    entity: str | None = None
    mode: str = "disabled"
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclasses.dataclass
class MemoryConfig:
    """conf/memory: a memory technique stacked on the dropout variant (Tempo's layers, checkpointing)."""

    name: str = "none"
    tempo: bool = False


@dataclasses.dataclass
class TrainConfig:
    """Everything `pmexp.experiment.job.train` reads; conf/train.yaml composes into this shape."""

    seed: int = 0
    seq_len: int = 128
    force: bool = False
    job_dir: str | None = None
    attention: str = "eager"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)


def _fail(key: str, got: Any, expected: str) -> None:
    raise ConfigError(f"{key}={got!r} is invalid: {expected}")


def _check_prob(key: str, value: Any) -> None:
    # `not 0 <= p <= 1` also rejects NaN, which `p < 0 or p > 1` lets through.
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        _fail(key, value, f"a dropout probability is a number, not a {type(value).__name__}, e.g. dropout.p=0.1")
    if not 0 <= value <= 1:
        _fail(key, value, "a dropout probability must be a number in [0, 1], e.g. dropout.p=0.1")


def _check_device_present(device: str) -> None:
    """`trainer.device` names a device this machine has (auto always does)."""
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.split(":", 1)[1]) if ":" in device and device.split(":", 1)[1].isdigit() else 0
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA (this torch or machine has none)"
            _fail("trainer.device", device, f"this machine has {have}: pass trainer.device=auto or trainer.device=cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        _fail("trainer.device", device, "MPS is not available here: pass trainer.device=auto or trainer.device=cpu")


def config_warnings(cfg: DictConfig, device: Any) -> list[str]:
    """Settings that run but do not do what they suggest on `device` (logged and kept in the record)."""
    found = []
    if cfg.precision.autocast_dtype == "float16" and getattr(device, "type", device) == "cpu":
        found.append("precision=fp16 on a CPU: autocast runs float16 kernels where the CPU has them (slow, "
                     "emulated on most CPUs) and GradScaler works, but nothing measured here says anything "
                     "about a GPU's fp16; use precision=bf16 or fp32 on a CPU")
    return found


def _check_schema(cfg: DictConfig) -> DictConfig:
    """Merge onto the dataclass schema: unknown keys and wrong types fail here, named."""
    user = cfg.copy()
    if "hydra" in user:
        with open_dict(user):
            del user["hydra"]
    try:
        merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), user)
        OmegaConf.resolve(merged)
        missing = sorted(OmegaConf.missing_keys(merged))
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        first = str(e).splitlines()[0]
        raise ConfigError(
            f"config key {key!r}: {first}. Fix the key or its value "
            f"(`python -m pmexp.train --cfg job` prints every key and value)."
        ) from None
    if missing:
        raise ConfigError(f"config keys {missing} have no value: pick a config group option for them")
    return merged


def _check_reference(c: DictConfig) -> None:
    """trainer.reference: a known mode, on one process, eager, without a GradScaler."""
    t = c.trainer
    if t.reference not in REFERENCES:
        _fail("trainer.reference", t.reference, f"pick one of {REFERENCES} (null: no lockstep reference)")
    if t.reference is None:
        return
    if t.strategy != "single":
        _fail("trainer.reference", t.reference, "the lockstep reference runs in one process: "
              "pass trainer.strategy=single, or trainer.reference=null")
    if t.compile:
        _fail("trainer.reference", t.reference, "the reference runs eager and compiled masks may differ: "
              "pass trainer.compile=false, or trainer.reference=null")
    if c.dropout.name == "none":
        _fail("trainer.reference", t.reference, "the reference is a copy of the built model, whose dropout "
              "dropout=none set to 0: compare a dropout variant (e.g. dropout=packed), or trainer.reference=null")
    if c.precision.grad_scaler:
        _fail("trainer.reference", t.reference, "fp16's loss scaling is not mirrored in the reference: "
              "use precision=fp32 or bf16, or trainer.reference=null")


def _check_model_fields(c: DictConfig) -> None:
    """model.task from the task registry, its labels, positions, dropout keys and probabilities."""
    m = c.model
    if m.task not in TASKS:
        _fail("model.task", m.task, f"pick one of {tuple(TASKS)}")
    if TASKS[m.task].labelled and not (m.num_labels and m.num_labels >= 2):
        _fail("model.num_labels", m.num_labels, f"a {m.task} model needs 2 or more labels")
    if m.pretrained and m.max_positions and c.seq_len > m.max_positions:
        _fail(
            "seq_len",
            c.seq_len,
            f"pretrained model.name={m.name} has {m.max_positions} positions; use seq_len<={m.max_positions} "
            f"or model.pretrained=false (random init extends the position table)",
        )
    for target, keys in m.dropout_keys.items():
        if target not in DROPOUT_TARGETS:
            _fail(f"model.dropout_keys.{target}", list(keys), f"targets are {DROPOUT_TARGETS}")
    for key, value in m.config.items():
        if key.endswith(("dropout_prob", "pdrop", "dropout")):
            _check_prob(f"model.config.{key}", value)


def _check_dropout(d: DictConfig) -> None:
    """dropout: a declared option (pmexp.experiment.variants) whose variant the library knows."""
    if d.variant is not None and d.variant not in VARIANTS:
        _fail("dropout.variant", d.variant, f"pick one of {VARIANTS}, or dropout=packed_hooks / dropout=none")
    if d.variant is not None and d.hooks:
        _fail("dropout.hooks", d.hooks, "saved-tensor hooks and model surgery do not combine: use dropout=packed_hooks")
    option = DROPOUT_OPTIONS.get(d.name)
    if option is None:
        _fail("dropout.name", d.name, f"pick dropout=<one of {', '.join(DROPOUT_OPTIONS)}> (conf/dropout)")
    if (d.variant, d.hooks) != (option.variant, option.hooks):
        _fail("dropout.variant/hooks", (d.variant, d.hooks), f"dropout={d.name} means variant={option.variant} "
              f"hooks={option.hooks}; pick the dropout option that applies what you want instead")
    if not d.targets or any(x not in DROPOUT_TARGETS for x in d.targets):
        _fail("dropout.targets", list(d.targets), f"a non-empty list drawn from {DROPOUT_TARGETS}, e.g. [hidden]")
    _check_prob("dropout.p", d.p)
    if d.name == "none" and d.p != 0:
        _fail("dropout.p", d.p, "dropout=none means p=0; pick another dropout option to set p")


def _check_data(c: DictConfig) -> None:
    """data: synthetic or a declared GLUE task that fits the model, and positive counts."""
    m = c.model
    if c.data.name not in (*GLUE_TASKS, "synthetic"):
        _fail("data.name", c.data.name, f"pick data=synthetic or a GLUE task: {', '.join(GLUE_TASKS)}")
    glue = GLUE_TASKS.get(c.data.name)
    if glue is not None and m.task != glue.task:
        _fail("data", c.data.name, f"model={m.name} is a {m.task} model: use data=synthetic")
    if glue is not None and m.num_labels != glue.num_labels:
        _fail("model.num_labels", m.num_labels, f"data={glue.name} has {glue.num_labels} labels: pass "
              f"model.num_labels={glue.num_labels}")
    if c.data.name == "synthetic" and (c.data.num_train is None or c.data.num_eval is None):
        _fail("data.num_train/num_eval", (c.data.num_train, c.data.num_eval), "synthetic data needs both counts")
    for key in ("max_train_samples", "max_eval_samples", "num_train", "num_eval"):
        value = c.data[key]
        if value is not None and value < 1:
            _fail(f"data.{key}", value, "must be a positive count or null")


def _check_optimization(t: DictConfig) -> None:
    """trainer: counts, learning rate, warm-up, weight decay, clipping and the memory cap."""
    for key in ("epochs", "batch_size", "eval_batch_size", "grad_accum", "log_every"):
        if t[key] < 1:
            _fail(f"trainer.{key}", t[key], "must be 1 or more")
    if t.max_steps is not None and t.max_steps < 1:
        _fail("trainer.max_steps", t.max_steps, "must be 1 or more, or null to run trainer.epochs")
    if not (t.lr > 0 and math.isfinite(t.lr)):
        _fail("trainer.lr", t.lr, "must be a positive learning rate, e.g. trainer.lr=5e-5")
    if not 0 <= t.warmup <= 1:
        _fail("trainer.warmup", t.warmup, "the warm-up is a fraction of the steps in [0, 1]")
    if t.timing_warmup < 0 or t.num_workers < 0:
        _fail("trainer.timing_warmup/num_workers", (t.timing_warmup, t.num_workers), "must be 0 or more")
    if not (math.isfinite(t.weight_decay) and t.weight_decay >= 0):
        _fail("trainer.weight_decay", t.weight_decay, "a finite number >= 0, e.g. trainer.weight_decay=0.01")
    if t.max_grad_norm is not None and not (math.isfinite(t.max_grad_norm) and t.max_grad_norm > 0):
        _fail("trainer.max_grad_norm", t.max_grad_norm, "a finite clipping norm > 0, or null for no clipping "
              "(clip_grad_norm_ with a negative norm flips every gradient's sign)")
    if t.memory_cap_gb is not None and not (math.isfinite(t.memory_cap_gb) and t.memory_cap_gb > 0):
        _fail("trainer.memory_cap_gb", t.memory_cap_gb, "a positive number of GB, or null for no cap")


def _check_inductor_options(t: DictConfig) -> None:
    """trainer.inductor_options: Inductor's own option names, and only where Inductor compiles."""
    if not t.inductor_options:
        return
    if not t.compile or t.compile_backend != "inductor":
        _fail("trainer.inductor_options", dict(t.inductor_options), "they apply to Inductor's compile: add "
              "trainer.compile=true (with trainer.compile_backend=inductor), or drop them")
    import torch._inductor.config as inductor_config

    for key in t.inductor_options:
        if not hasattr(inductor_config, key):
            _fail(f"trainer.inductor_options.{key}", t.inductor_options[key], "not an Inductor option (a name in "
                  "torch._inductor.config), e.g. +trainer.inductor_options.combo_kernels=true")


def _check_execution(c: DictConfig) -> None:
    """trainer: device, compilation, injected fault and the multi-process strategy."""
    t = c.trainer
    if not (t.device in ("auto", "cpu", "cuda", "mps") or t.device.startswith("cuda:")):
        _fail("trainer.device", t.device, "pick auto, cpu, cuda, cuda:N or mps")
    if t.compile_mode not in COMPILE_MODES:
        _fail("trainer.compile_mode", t.compile_mode, f"pick one of {COMPILE_MODES}")
    if t.compile_mode == "reduce-overhead" and c.data.name != "synthetic" and not c.data.pad_to_seq_len:
        _fail("trainer.compile_mode", t.compile_mode, "CUDA graphs replay fixed shapes, and dynamic padding makes "
              "a new shape per batch (a graph recorded for each): add data.pad_to_seq_len=true")
    if t.compile_backend not in COMPILE_BACKENDS:
        _fail("trainer.compile_backend", t.compile_backend, f"pick one of {COMPILE_BACKENDS}")
    _check_inductor_options(t)
    if t.fault not in FAULTS:
        _fail("trainer.fault", t.fault, "pick trainer.fault=null (no fault), oom, sigterm, nan or kill9")
    if t.strategy not in STRATEGIES:
        _fail("trainer.strategy", t.strategy, f"pick one of {STRATEGIES}")
    if t.strategy != "single" and (t.device.startswith("cuda:") or t.device == "mps"):
        _fail("trainer.device", t.device, f"with trainer.strategy={t.strategy} each process takes cuda:LOCAL_RANK: "
              "pass trainer.device=auto, cuda or cpu")
    _check_device_present(t.device)  # after the strategy's own rule, which says more


def validate(cfg: DictConfig) -> DictConfig:
    """Check a composed config and return it typed and resolved, without the `hydra` node.

    Args:
        cfg: the config from Hydra (`@hydra.main` or `compose`), with or without its `hydra` node.

    Returns:
        A struct-mode DictConfig of the `TrainConfig` shape with every interpolation resolved.

    Raises:
        ConfigError: an unknown key, a wrong type, or a value out of range; the message names the key.
    """
    c = _check_schema(cfg)
    if not 0 <= c.seed <= SEED_MAX:
        _fail("seed", c.seed, f"a seed is an integer in [0, {SEED_MAX}] (NumPy's range), e.g. seed=0")
    if c.seq_len < 1:
        _fail("seq_len", c.seq_len, "must be a positive number of tokens, e.g. seq_len=128")
    if c.attention not in ATTENTIONS:
        _fail("attention", c.attention, f"pick one of {ATTENTIONS}, e.g. attention=eager")
    # Order kept from the single function this was: model, dropout, precision, data, trainer, reference, logger.
    _check_model_fields(c)
    _check_dropout(c.dropout)
    if c.precision.autocast_dtype not in AUTOCAST_DTYPES:
        _fail("precision.autocast_dtype", c.precision.autocast_dtype, f"pick one of {AUTOCAST_DTYPES}")
    _check_data(c)
    _check_optimization(c.trainer)
    _check_execution(c)
    _check_reference(c)
    check_model_config(c.model)
    if c.logger.name not in ("none", "wandb"):
        _fail("logger.name", c.logger.name, "pick logger=none or logger=wandb")
    if c.logger.mode not in LOGGER_MODES:
        _fail("logger.mode", c.logger.mode, f"pick one of {LOGGER_MODES}")
    return c
