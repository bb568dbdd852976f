"""Data sources: the offline vocab, MRPC lookup and its error, synthetic batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import pmexp.experiment.data
from pmexp.experiment.data import MissingDataError, SyntheticDataset, build_dataloaders, find_mrpc_dir, load_tokenizer


def test_random_init_bert_tokenizes_with_the_bert_base_uncased_vocab(make_cfg):
    tokenizer = load_tokenizer(make_cfg())
    # [CLS] hello world [SEP]: a tokenizer built without its vocab would give [2, 1, 1, 3]
    assert tokenizer("hello world")["input_ids"] == [101, 7592, 2088, 102]


def test_pretrained_minilm_uses_its_own_tokenizer(make_cfg):
    tokenizer = load_tokenizer(make_cfg("model=minilm", tiny=[]))
    assert tokenizer("hello world", "second one")["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]


def test_a_bad_vocab_path_names_the_key(make_cfg, tmp_path):
    with pytest.raises(MissingDataError, match="data.vocab"):
        load_tokenizer(make_cfg(f"data.vocab={tmp_path / 'nope.txt'}"))


def test_no_mrpc_anywhere_names_what_to_pass(make_cfg, tmp_path, monkeypatch):
    import datasets

    def hub_unreachable(*args, **kwargs):
        raise ConnectionError("no route to the hub")

    monkeypatch.setattr(pmexp.experiment.data, "SHARED_DATA", tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", hub_unreachable)
    cfg = make_cfg("data.dir=null")
    assert find_mrpc_dir(None) is None
    with pytest.raises(MissingDataError, match=r"PMEXP_MRPC_DIR.*no route to the hub|no route.*PMEXP_MRPC_DIR"):
        build_dataloaders(cfg, None)


def test_mrpc_batches_are_dynamically_padded(make_cfg):
    cfg = make_cfg()
    train, evaluation = build_dataloaders(cfg, None)
    batch = next(iter(train))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape[0] == 8 and batch["input_ids"].shape[1] < cfg.seq_len
    assert (batch["input_ids"][:, 0] == 101).all()
    assert len(evaluation.dataset) == 16


@pytest.mark.skipif(find_mrpc_dir(os.environ.get("PMEXP_MRPC_DIR")) is None, reason="the real MRPC is not here")
def test_real_mrpc_reads_every_row(make_cfg):
    folder = find_mrpc_dir(os.environ.get("PMEXP_MRPC_DIR"))
    cfg = make_cfg(f"data.dir={folder}", "data.max_train_samples=null", "data.max_eval_samples=null")
    train, evaluation = build_dataloaders(cfg, None)
    assert (len(train.dataset), len(evaluation.dataset)) == (3668, 408)
    assert int(torch.as_tensor(evaluation.dataset["labels"]).sum()) == 279  # SOURCE.md: 279 positives


@pytest.mark.parametrize(("task", "keys"), [
    ("sequence_classification", {"input_ids", "attention_mask", "labels"}),
    ("causal_lm", {"input_ids", "labels"}),
    ("image_classification", {"pixel_values", "labels"}),
])
def test_synthetic_samples_are_fixed_length_and_repeatable(task, keys):
    config = type("C", (), {"vocab_size": 100, "num_labels": 3, "image_size": 16})()
    a, b = SyntheticDataset(4, task, 0, 12, config), SyntheticDataset(4, task, 0, 12, config)
    assert set(a[1]) == keys
    assert all(torch.equal(a[1][k], b[1][k]) for k in keys)
    if task == "image_classification":
        assert a[0]["pixel_values"].shape == (3, 16, 16)
    else:
        assert a[0]["input_ids"].shape == (12,) and int(a[0]["input_ids"].max()) < 100


def test_path_constants_point_beside_the_repo():
    data_file = Path(pmexp.experiment.data.__file__).resolve()
    assert pmexp.experiment.data.SHARED_DATA == data_file.parents[3] / "shared" / "data"
