"""The step benchmark's variant names and ratio arithmetic (CPU; the benchmark itself needs a GPU).

    python -m pytest tests/test_bench_step.py
"""

from __future__ import annotations

import pytest

from pmexp.bench import step


@pytest.mark.parametrize("name, expected", [
    ("packed", ("packed", None)),
    ("tempo:packed@85", ("tempo:packed", 85)),
    ("standard@63", ("standard", 63)),
    ("again:standard@1", ("again:standard", 1)),
])
def test_split_batch(name, expected):
    assert step.split_batch(name) == expected


@pytest.mark.parametrize("name", ["packed@", "packed@0", "packed@-3", "packed@x", "packed@8.5"])
def test_split_batch_rejects_a_bad_batch(name):
    with pytest.raises(ValueError, match="positive integer"):
        step.split_batch(name)


def test_split_variant_ignores_the_batch():
    assert step.split_variant("tempo:packed@85") == ("tempo", "packed")
    assert step.split_variant("unfused:seeded@4") == ("unfused", "seeded")
    assert step.split_variant("seeded") == ("none", "seeded")


def test_reference_is_standard_at_any_batch():
    assert step.reference_variant(["packed", "standard", "again:standard"]) == "standard"
    assert step.reference_variant(["tempo:packed@85", "standard@63"]) == "standard@63"
    with pytest.raises(ValueError, match="must include standard"):
        step.reference_variant(["packed", "again:standard", "tempo:standard"])


def test_throughput_ratio():
    # one batch: standard's step time over the variant's
    assert step.throughput_ratio(0.100, 16, 0.080, 16) == pytest.approx(1.25)
    # 85 sequences in 0.130 s against 63 in 0.100 s: 653.8 / 630 seq/s
    assert step.throughput_ratio(0.100, 63, 0.130, 85) == pytest.approx((85 / 0.130) / (63 / 0.100))


def test_command_line_checks_variants(capsys):
    for argv, message in [(["--variants", "packed"], "must include standard"),
                          (["--variants", "standard", "foo"], "unknown variant 'foo'"),
                          (["--variants", "standard", "packed@x"], "positive integer")]:
        with pytest.raises(SystemExit):
            step.main(["--parts", "step", *argv])
        assert message in capsys.readouterr().err


def test_failed_cells_are_named_after_the_table():
    from pmexp.bench.step import not_measured

    rows = [{"cell": "bert_large_512", "mode": "eager", "variant": "standard"},
            {"cell": "bert_large_2048", "mode": "graphed", "error": "OOM: CUDA out of memory."}]
    assert not_measured(rows) == "\nNot measured: bert_large_2048 graphed: OOM: CUDA out of memory.\n"
    assert not_measured(rows[:1]) == ""


def test_tempo_is_compared_with_the_same_dropout_without_it():
    from pmexp.bench.step import memory_none_twin

    variants = ["standard", "packed", "tempo:packed", "tempo:seeded", "standard@63", "packed@83", "tempo:packed@83"]
    assert memory_none_twin("tempo:packed", variants) == "packed"
    assert memory_none_twin("tempo:packed@83", variants) == "packed@83"
    assert memory_none_twin("tempo:seeded", variants) is None  # seeded does not run
    assert memory_none_twin("packed", variants) is None and memory_none_twin("again:standard", variants) is None


def test_markdown_adds_the_tempo_column_only_where_a_row_has_it():
    from pmexp.bench.step import to_markdown

    def row(variant, **extra):
        return {"cell": "bert_large_512", "mode": "eager", "variant": variant, "step_ms_median": 100.0, "seq_s": 160.0,
                "ratio_vs_standard": {"median": 1.0, "min": 1.0, "max": 1.0}, "step_peak_above_resident_mb": 1.0,
                **extra}

    env = {"device_name": "fake", "torch": "x", "triton": "x", "transformers": "x", "pmexp_commit": "abc"}
    tempo = row("tempo:packed", ratio_vs_memory_none={"median": 0.95, "min": 0.94, "max": 0.96})
    text = to_markdown([row("standard"), row("packed"), tempo], [], [], env, {})
    assert "| Tempo vs memory=none |" in text and "| 0.950 [0.940, 0.960] |" in text
    assert "| bert_large_512 | eager | packed | 100.00 | 160.0 | 1.000 [1.000, 1.000] |  | 1 |" in text
    assert "Tempo vs memory=none" not in to_markdown([row("standard")], [], [], env, {})


def test_schedule_runs_each_variant_its_steps_in_blocks_or_alternating():
    assert step.schedule(["a", "b"], 3, by_step=False) == ["a", "a", "a", "b", "b", "b"]
    assert step.schedule(["a", "b"], 3, by_step=True) == ["a", "b", "a", "b", "a", "b"]


def test_models_compiled_apart_keep_their_own_frames():
    # Dynamo keeps compiled frames per code object: two models of one class compiled plainly share their forward's
    # (each call fails the other's guards first); compiled apart, each has its own and the class's forward none
    import torch
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    torch._dynamo.reset()
    models = [torch.nn.Linear(4, 4) for _ in range(2)]
    compiled = [step.compile_apart(m, backend="eager") for m in models]
    x = torch.randn(2, 4)
    for model, run in zip(models, compiled, strict=True):
        torch.testing.assert_close(run(x), model(x))
    codes = [run._torchdynamo_orig_callable.__code__ for run in compiled]
    assert codes[0] is not codes[1]
    assert [len(_debug_get_cache_entry_list(c)) for c in codes] == [1, 1]
    assert _debug_get_cache_entry_list(torch.nn.Linear.forward.__code__) == []


def test_a_compiled_cell_model_compiles_once(tiny_cell):
    # a BERT classifier's first call sets config.problem_type: unset, a compiled model compiled twice (its first
    # frame guarded on None); the cell's model sets it as that call would
    import torch
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    model, inputs, _ = step.build_cell_model(tiny_cell, "standard", device="cpu")
    torch._dynamo.reset()
    run = step.compile_apart(model, backend="eager")  # Dynamo's frames and guards alone: no Inductor compile
    for _ in range(2):
        run(**inputs).loss.backward()
    assert len(_debug_get_cache_entry_list(run._torchdynamo_orig_callable.__code__)) == 1
