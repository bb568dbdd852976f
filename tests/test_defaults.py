"""Defaults that learn: named models are pretrained, a hub that cannot be reached fails at once naming
the keys that fix it, and a random-init model on a labelled task says so."""

from __future__ import annotations

import logging

from conftest import TINY_GPT2

from pmexp.experiment.job import train


def test_a_pretrained_hub_model_without_the_hub_fails_at_once_naming_the_fix(make_cfg, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what a machine without network sees, without waiting on it
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: set it there too
    record = train(make_cfg("model.pretrained=true"))  # tinybert from huawei-noah/..., not in the cache
    assert record["status"] == "failed"
    assert "model.pretrained=false" in record["error"] and "model.local_path=" in record["error"]
    assert record["summary"]["steps"] == 0  # nothing trained before it gave up


def test_an_unreachable_hub_is_found_out_in_one_short_connect(monkeypatch):
    """Without network transformers retries ~25 s; one refused connect says the same at once."""
    import socket

    import huggingface_hub.constants

    from pmexp.experiment.models import _hub_unreachable

    def refused(address, timeout):
        assert timeout <= 5
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", refused)
    assert "cannot be reached" in _hub_unreachable("no-such-org/no-such-model-for-pmexp")


def test_random_init_on_a_labelled_task_says_so_in_the_log_and_the_record(make_cfg, caplog):
    with caplog.at_level(logging.WARNING, logger="pmexp.experiment.models"):
        record = train(make_cfg())  # conftest's tiny BERT: model.pretrained=false on MRPC
    assert record["status"] == "ok", record["traceback"]
    assert record["model_info"]["pretrained"] is False
    assert record["model_info"]["note"].startswith("random init (model.pretrained=false)")
    assert any("random init" in r.getMessage() for r in caplog.records)


def test_a_random_init_causal_lm_has_no_note(make_cfg):
    record = train(make_cfg(tiny=TINY_GPT2))
    assert record["model_info"]["note"] is None  # a causal LM's loss is its result; no F1 to mistake


def test_pretrained_minilm_has_no_note_and_vit_keeps_its_dropout(make_cfg):
    from pmexp.experiment.config import validate
    from pmexp.experiment.models import _config_dropout

    assert _config_dropout(validate(make_cfg("model=vit_b16", tiny=[]))) == {
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}  # over the checkpoint's 0.0
    record = train(make_cfg("model=minilm", "trainer.max_steps=1", "trainer.eval=false", tiny=[]))
    assert record["model_info"]["pretrained"] is True and record["model_info"]["note"] is None
