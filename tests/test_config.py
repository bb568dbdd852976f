"""conf/ composes for every option of every group, and bad configs fail at once, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from pmexp.experiment.callbacks import job_dirname
from pmexp.experiment.config import ConfigError, config_warnings, validate
from pmexp.experiment.job import train

GROUPS = ["model", "data", "dropout", "precision", "attention", "trainer", "memory", "logger", "experiment"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]


def compose_train(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_validates(group, option):
    cfg = validate(compose_train(f"{group}={option}"))
    if group in ("model", "dropout", "precision", "logger", "data"):
        assert cfg[group].name == option
    if group == "attention":
        assert cfg.attention == option


def test_defaults_are_pretrained_minilm_on_mrpc_with_wandb_offline(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = validate(compose_train())
    assert (cfg.model.name, cfg.data.name, cfg.dropout.name, cfg.precision.name) == (
        "minilm", "mrpc", "standard", "fp32")
    assert (cfg.attention, cfg.seq_len, cfg.model.pretrained) == ("eager", 128, True)
    assert cfg.model.local_path.startswith("pkg://")  # ships offline
    assert (cfg.logger.name, cfg.logger.mode) == ("wandb", "offline")
    monkeypatch.setenv("WANDB_MODE", "online")
    assert validate(compose_train()).logger.mode == "online"
    assert validate(compose_train("logger=none")).logger.name == "none"


@pytest.mark.parametrize("model", ["tinybert", "bert_base", "bert_large", "gpt2", "vit_b16", "minilm"])
def test_named_models_are_pretrained_and_memory_presets_are_not(model):
    assert compose_train(f"model={model}").model.pretrained is True
    c = compose_train(f"model={model}", "model.pretrained=false").model.config
    assert c.get("num_hidden_layers", c.get("n_layer")) >= 1  # random init has an architecture to build


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_memory_and_speed_presets_use_random_init(preset):
    expected = preset == "fidelity"  # the one preset that measures learning: pretrained MiniLM
    assert compose_train(f"experiment={preset}").model.pretrained is expected


@pytest.mark.parametrize("model", ["gpt2", "vit_b16"])
def test_non_text_classifiers_switch_to_synthetic_data(model):
    assert compose_train(f"model={model}").data.name == "synthetic"


def test_vit_dropout_is_set_to_0_1():
    c = compose_train("model=vit_b16").model.config
    assert c.hidden_dropout_prob == c.attention_probs_dropout_prob == 0.1


def test_experiment_presets_define_sweeps():
    for name in ("fidelity", "memory_scaling", "throughput", "targets_ablation", "compat", "long_context"):
        cfg = compose_train(f"experiment={name}", hydra=True)
        assert cfg.hydra.sweeper.params, name
    fidelity = compose_train("experiment=fidelity", hydra=True)
    assert fidelity.model.name == "minilm" and fidelity.data.name == "mrpc"
    assert dict(fidelity.hydra.sweeper.params) == {"data": "mrpc,sst2,rte", "seed": "range(0,5)",
                                                  "dropout": "standard,packed_exact,packed,seeded"}
    for task in ("mrpc", "sst2", "rte"):  # every job of the sweep validates
        validate(compose_train("experiment=fidelity", f"data={task}"))
    long_context = compose_train("experiment=long_context", hydra=True)
    assert long_context.data.name == "synthetic" and long_context.precision.name == "bf16"
    assert long_context.hydra.sweeper.params["seq_len"] == "4096,8192"


def test_sweep_dir_is_overridable_and_subdir_follows_overrides():
    cfg = compose_train("hydra.sweep.dir=multirun/fixed", hydra=True)
    assert cfg.hydra.sweep.dir == "multirun/fixed"
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "${pmexp_dirname:${hydra.job.override_dirname}}"
    assert job_dirname("dropout=packed,seed=0") == "dropout=packed,seed=0"
    assert job_dirname("data.dir=/a/b") == "data.dir=_a_b"
    long = ",".join(f"key{i}=value{i}" for i in range(40))
    assert len(job_dirname(long)) == 150 and job_dirname(long) == job_dirname(long) != job_dirname(long + "x")


def test_typo_in_an_override_fails_at_composition():
    with pytest.raises(ConfigCompositionException, match="bach_size"):
        compose_train("trainer.bach_size=4")
    with pytest.raises(ConfigCompositionException, match="dropout/packd"):
        compose_train("dropout=packd")


def test_typo_inside_a_yaml_file_fails_validation_naming_the_key():
    cfg = compose_train()
    with open_dict(cfg):
        cfg.trainer.bach_size = 4  # as if conf/trainer/default.yaml had a typo
    with pytest.raises(ConfigError, match="trainer.bach_size"):
        validate(cfg)


@pytest.mark.parametrize(("override", "key"), [
    ("dropout.p=1.5", "dropout.p"),
    ("dropout.p=-0.1", "dropout.p"),
    ("dropout.p=nan", "dropout.p"),
    ("model.config.hidden_dropout_prob=2", "model.config.hidden_dropout_prob"),
    ("dropout.variant=packedd", "dropout.variant"),
    ("dropout.targets=[hiden]", "dropout.targets"),
    ("dropout.fuse=maybe", "dropout.fuse"),
    ("seq_len=0", "seq_len"),
    ("trainer.batch_size=abc", "trainer.batch_size"),
    ("trainer.lr=0", "trainer.lr"),
    ("trainer.warmup=2", "trainer.warmup"),
    ("trainer.device=tpu", "trainer.device"),
    ("logger.mode=sometimes", "logger.mode"),
    ("trainer.fault=segfault", "trainer.fault"),
    ("+model.config.num_hiden_layers=2", "num_hiden_layers"),
    # every numeric key has a range (issue 13)
    ("seed=-1", "seed"),
    (f"seed={2**32}", "seed"),
    ("trainer.weight_decay=nan", "trainer.weight_decay"),
    ("trainer.weight_decay=-0.1", "trainer.weight_decay"),
    ("trainer.weight_decay=inf", "trainer.weight_decay"),
    ("trainer.max_grad_norm=-1", "trainer.max_grad_norm"),
    ("trainer.max_grad_norm=0", "trainer.max_grad_norm"),
    ("trainer.max_grad_norm=nan", "trainer.max_grad_norm"),
    ("trainer.lr=inf", "trainer.lr"),
    ("trainer.lr=nan", "trainer.lr"),
    ("trainer.warmup=nan", "trainer.warmup"),
    ("trainer.warmup=-0.5", "trainer.warmup"),
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.eval_batch_size=0", "trainer.eval_batch_size"),
    ("trainer.grad_accum=0", "trainer.grad_accum"),
    ("trainer.max_steps=0", "trainer.max_steps"),
    ("trainer.memory_cap_gb=inf", "trainer.memory_cap_gb"),
    ("trainer.num_workers=-1", "trainer.timing_warmup/num_workers"),
    ("data.max_train_samples=0", "data.max_train_samples"),
    ("+trainer.inductor_options.combo_kernels=true", "trainer.inductor_options"),  # without trainer.compile
])
def test_bad_values_fail_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_train(override))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_device_without_cuda_names_the_key_and_the_fix(device):
    with pytest.raises(ConfigError, match=rf"trainer\.device='{device}'.*trainer\.device=cpu"):
        validate(compose_train(f"trainer.device={device}"))


def test_cuda_index_beyond_the_machine_fails():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ConfigError, match=r"trainer\.device"):
        validate(compose_train(f"trainer.device=cuda:{count}"))


def test_dropout_p_of_another_type_says_type():
    cfg = compose_train()
    with open_dict(cfg):
        cfg.model.config.hidden_dropout_prob = "0.1"
    with pytest.raises(ConfigError, match="not a str"):
        validate(cfg)


def test_fp16_on_cpu_is_a_recorded_warning(make_cfg):
    cfg = validate(make_cfg("precision=fp16"))
    assert any("precision=fp16 on a CPU" in w for w in config_warnings(cfg, torch.device("cpu")))
    assert config_warnings(validate(make_cfg()), torch.device("cpu")) == []
    record = train(make_cfg("precision=fp16", "trainer.max_steps=1", "trainer.eval=false", "trainer.probe=false"))
    assert record["status"] == "ok" and any("fp16" in w for w in record["warnings"])


def test_seq_len_beyond_a_pretrained_model_fails_but_random_init_extends():
    with pytest.raises(ConfigError, match=r"seq_len=1024.*512 positions"):
        validate(compose_train("model=minilm", "seq_len=1024"))
    assert validate(compose_train("model=bert_base", "model.pretrained=false", "seq_len=4096")).seq_len == 4096


def test_dropout_none_refuses_a_probability():
    with pytest.raises(ConfigError, match="dropout=none"):
        validate(compose_train("dropout=none", "dropout.p=0.1"))


def test_mrpc_with_a_causal_lm_fails():
    with pytest.raises(ConfigError, match="data=synthetic"):
        validate(compose_train("model=gpt2", "data=mrpc"))


def test_train_validates_before_writing_anything(tmp_path: Path):
    with pytest.raises(ConfigError, match="dropout.p"):
        train(compose_train("dropout.p=1.5", f"job_dir={tmp_path / 'job'}"))
    assert not (tmp_path / "job").exists()


def test_job_dir_is_required_outside_hydra():
    with pytest.raises(ConfigError, match="job_dir"):
        train(compose_train("trainer.max_steps=1"))


def test_slurm_preset_builds_on_the_submitit_plugin():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the `sweep` extra: make install")
    launcher = compose_train("hydra/launcher=slurm_h200", hydra=True).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 1, 1)
    assert launcher.signal_delay_s == 120  # a plugin default, kept


def test_inductor_options_go_over_the_variants_and_unknown_ones_fail():
    from pmexp.dropout.merged_draws import MERGE_BIT_DRAWS
    from pmexp.experiment.compiling import job_inductor_options

    cfg = validate(compose_train("dropout=seeded", "trainer.compile=true",
                                 "+trainer.inductor_options.combo_kernels=true",
                                 "+trainer.inductor_options.realize_opcount_threshold=60"))
    ours = {"triton.descriptive_names": False, "joint_custom_pre_pass": MERGE_BIT_DRAWS}
    # the user's options win over the variant's
    assert job_inductor_options(cfg) == {"realize_opcount_threshold": 60, "combo_kernels": True, **ours}
    assert job_inductor_options(validate(compose_train("dropout=seeded", "trainer.compile=true"))) == {
        "realize_opcount_threshold": 52, **ours}
    with pytest.raises(ConfigError, match=r"trainer\.inductor_options\.combo_kernel\b.*not an Inductor option"):
        validate(compose_train("trainer.compile=true", "+trainer.inductor_options.combo_kernel=true"))
