"""The registries are the one declaration: conf/ agrees with them, and the readers take their lists from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from pmexp.dropout import VARIANTS
from pmexp.experiment.config import ConfigError, validate
from pmexp.experiment.maxbatch import DEFAULT_VARIANTS, MaxBatchError, run_search
from pmexp.experiment.tasks import GLUE_TASKS, TASKS
from pmexp.experiment.variants import DROPOUT_OPTIONS, PMDROP_OPTIONS, option_order
from pmexp.report.gather import PMDROP_VARIANTS, variant_order

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_conf_dropout_holds_exactly_the_declared_options():
    files = {p.stem: OmegaConf.load(p) for p in (CONF / "dropout").glob("*.yaml")}
    assert set(files) == set(DROPOUT_OPTIONS)
    for name, option in DROPOUT_OPTIONS.items():
        assert (files[name].name, files[name].variant, files[name].hooks) == (name, option.variant, option.hooks)
        assert option.variant is None or option.variant in VARIANTS  # the library's list


def test_report_and_maxbatch_read_the_option_registry():
    assert PMDROP_VARIANTS == PMDROP_OPTIONS == ("packed_exact", "packed", "seeded", "packed_hooks")
    assert DEFAULT_VARIANTS == ("standard", "packed_exact", "packed", "seeded")
    assert sorted(["none", "seeded", "standard", "other"], key=variant_order) == ["standard", "seeded", "none", "other"]
    assert variant_order("packed") == option_order("packed")


def test_a_dropout_option_must_match_its_declaration(make_cfg):
    with pytest.raises(ConfigError, match="dropout.variant/hooks"):
        validate(make_cfg("dropout=standard", "dropout.variant=packed"))
    with pytest.raises(ConfigError, match="dropout.name"):
        validate(make_cfg("dropout.name=packd"))


def test_maxbatch_refuses_an_undeclared_variant(tmp_path):
    with pytest.raises(MaxBatchError, match="not dropout options"):
        run_search(["model=tinybert"], tmp_path, variants=["standard", "packd"], train_fn=lambda cfg: {})


def test_conf_models_name_declared_tasks_and_glue_data_its_tasks():
    for path in (CONF / "model").glob("*.yaml"):
        model = OmegaConf.load(path)
        model = model.model if "model" in model else model  # gpt2/vit_b16 are written as a global package
        assert model.task in TASKS, path
    for name, glue in GLUE_TASKS.items():
        assert OmegaConf.load(CONF / "data" / f"{name}.yaml").name == name
        assert glue.task in TASKS


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_makes_examples_the_shape_its_token_count_reads(name):
    task = TASKS[name]
    config = type("C", (), {"vocab_size": 50, "num_labels": 3, "image_size": 16, "patch_size": 8})()
    example = task.synthetic(torch.Generator().manual_seed(0), 12, config)
    batch = {k: v.unsqueeze(0).repeat(2, *([1] * v.dim())) for k, v in example.items()}
    expected = 2 * 12 if task.uses_seq_len else 2 * ((16 // 8) ** 2 + 1)
    assert task.count_tokens(batch, config) == expected
    assert (example["labels"].dim() == 0) == task.labelled  # a classifier's label, or next-token labels
