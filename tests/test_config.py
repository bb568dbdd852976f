"""conf/ composes for every option of every group, and bad configs fail at once, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from pmexp.callbacks import job_dirname
from pmexp.config import ConfigError, validate
from pmexp.train import train

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


def test_defaults_are_tinybert_on_mrpc_offline():
    cfg = validate(compose_train())
    assert (cfg.model.name, cfg.data.name, cfg.dropout.name, cfg.precision.name) == (
        "tinybert", "mrpc", "standard", "fp32")
    assert (cfg.attention, cfg.seq_len, cfg.logger.name, cfg.model.pretrained) == ("eager", 128, "none", False)
    c = cfg.model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == (4, 312, 12, 1200)


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
    ("seq_len=0", "seq_len"),
    ("trainer.batch_size=abc", "trainer.batch_size"),
    ("trainer.lr=0", "trainer.lr"),
    ("trainer.warmup=2", "trainer.warmup"),
    ("trainer.device=tpu", "trainer.device"),
    ("logger.mode=sometimes", "logger.mode"),
    ("trainer.fault=segfault", "trainer.fault"),
    ("+model.config.num_hiden_layers=2", "num_hiden_layers"),
])
def test_bad_values_fail_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_train(override))


def test_seq_len_beyond_a_pretrained_model_fails_but_random_init_extends():
    with pytest.raises(ConfigError, match=r"seq_len=1024.*512 positions"):
        validate(compose_train("model=minilm", "seq_len=1024"))
    assert validate(compose_train("model=bert_base", "seq_len=4096")).seq_len == 4096


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
