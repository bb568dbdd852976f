"""The measurements: accuracy/F1 module against scikit-learn, timing statistics, gradient norms."""

from __future__ import annotations

import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score

from pmexp.experiment.metrics import StepTimer, classification_metrics, grad_norms, layer_of, peak_memory

labels = st.integers(min_value=1, max_value=60).flatmap(
    lambda n: st.tuples(st.lists(st.integers(0, 1), min_size=n, max_size=n),
                        st.lists(st.integers(0, 1), min_size=n, max_size=n)))


@settings(max_examples=30, deadline=None)
@given(labels)
def test_binary_accuracy_f1_match_scikit_learn(pair):
    preds, refs = pair
    got = classification_metrics(preds, refs, num_labels=2)
    assert got["accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert got["f1"] == pytest.approx(f1_score(refs, preds, zero_division=0))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60))
def test_multiclass_f1_is_scikit_learn_macro(pairs):
    preds, refs = map(list, zip(*pairs, strict=True))
    got = classification_metrics(preds, refs, num_labels=5)
    assert got["accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert got["f1"] == pytest.approx(f1_score(refs, preds, average="macro", zero_division=0))


def test_classification_metrics_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="2 predictions for 3 references"):
        classification_metrics([0, 1], [0, 1, 1], num_labels=2)


def test_step_timer_leaves_out_warmup_steps():
    timer = StepTimer(warmup=2)
    for seconds in (10.0, 5.0, 0.1, 0.2, 0.3, 0.4):
        timer.add(seconds, samples=8, tokens=800)
    s = timer.summary()
    assert s["throughput_seq_s"] == pytest.approx(32 / 1.0)
    assert s["throughput_tok_s"] == pytest.approx(3200 / 1.0)
    assert s["step_time_median_ms"] == pytest.approx(statistics.median([100, 200, 300, 400]))
    assert s["step_time_p90_ms"] == pytest.approx(400)


def test_step_timer_leaves_out_steps_that_compiled():
    """A compile after the warm-up (an epoch's short last batch) would dominate seq/s: left out, counted."""
    timer = StepTimer(warmup=1)
    for seconds, compiled in ((20.0, True), (0.1, False), (0.1, False), (8.0, True), (0.2, False)):
        timer.add(seconds, samples=8, tokens=800, compiled=compiled)
    s = timer.summary()
    assert s["throughput_seq_s"] == pytest.approx(24 / 0.4)
    assert s["step_time_median_ms"] == pytest.approx(100)
    assert (s["compile_steps"], s["compile_step_s"]) == (1, pytest.approx(8.0))
    only_compiled = StepTimer(warmup=0)
    only_compiled.add(3.0, 8, 800, compiled=True)
    assert only_compiled.summary()["throughput_seq_s"] == pytest.approx(8 / 3.0)  # nothing else to time


def test_step_timer_short_runs_still_report():
    timer = StepTimer(warmup=5)
    assert timer.summary()["throughput_seq_s"] is None
    timer.add(2.0, 4, 40)
    assert timer.summary()["step_time_median_ms"] == pytest.approx(2000)  # one step: nothing left out
    timer.add(1.0, 4, 40)
    assert timer.summary()["throughput_seq_s"] == pytest.approx(4.0)  # first step left out


@pytest.mark.parametrize(("name", "layer"), [
    ("bert.encoder.layer.3.attention.self.query.weight", "bert.encoder.layer.3"),
    ("transformer.h.11.mlp.c_fc.bias", "transformer.h.11"),
    ("bert.embeddings.word_embeddings.weight", "bert.embeddings"),
    ("classifier.weight", "classifier"),
])
def test_layer_of_groups_by_block(name, layer):
    assert layer_of(name) == layer


def test_grad_norms_match_torch_total_norm_and_split_by_layer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    model(torch.randn(5, 4)).sum().backward()
    total, per_layer = grad_norms(model.named_parameters())
    expected = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    # float32 sums of 58 squares, in any order: relative error <= 58 u (recursive summation), sqrt halves it
    rel = 58 * 2**-24
    assert total == pytest.approx(expected.item(), rel=rel)
    assert set(per_layer) == {"grad_norm/0", "grad_norm/2"}
    assert sum(v**2 for v in per_layer.values()) ** 0.5 == pytest.approx(total, rel=rel)


def test_peak_memory_is_null_off_cuda():
    assert peak_memory(torch.device("cpu")) == dict.fromkeys(
        ["peak_allocated_mb", "peak_reserved_mb", "peak_active_mb"])
