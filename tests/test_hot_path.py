"""The parts of the fast path that run without a GPU: dropout-add, graph-safe seeds, compile modes, fixed shapes.

The C++ kernels themselves and CUDA-graph replays are checked in tests/test_native_gpu.py (H200).
"""

import pytest
import torch

from pmexp.dropout import VARIANTS, apply, dropout, dropout_add, native
from pmexp.dropout import functional as fn
from pmexp.experiment.config import ConfigError, validate


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_dropout_add_equals_dropout_plus_residual(variant, layout):
    x = torch.randn(6, 10, requires_grad=True)
    r = torch.randn(6, 10, requires_grad=True)
    if layout == "transposed":
        x, r = x.detach().t().requires_grad_(True), r.detach().t().requires_grad_(True)
    g = torch.randn(x.shape)
    results = []
    for fused in (True, False):
        torch.manual_seed(4)
        out = dropout_add(x, r, 0.3, True, variant) if fused else dropout(x, 0.3, True, variant) + r
        results.append((out, *torch.autograd.grad(out, (x, r), g)))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_dropout_add_broadcasts_and_evaluates_like_the_expression():
    x, r = torch.randn(2, 5, 8), torch.randn(8)
    assert torch.equal(dropout_add(x, r, 0.2, False, "packed"), x + r)
    torch.manual_seed(0)
    out = dropout_add(x, r, 0.2, True, "seeded")
    torch.manual_seed(0)
    assert torch.equal(out, dropout(x, 0.2, True, "seeded") + r)


@pytest.mark.parametrize("variant", VARIANTS)
def test_dropout_add_of_a_bf16_x_and_a_float32_residual_promotes_like_the_expression(variant):
    # the pair BERT adds under autocast; on CUDA the fused kernel takes it (tests/test_native_gpu.py)
    x = torch.randn(6, 10).bfloat16().requires_grad_(True)
    r = torch.randn(6, 10, requires_grad=True)
    results = []
    for fused in (True, False):
        torch.manual_seed(4)
        out = dropout_add(x, r, 0.3, True, variant) if fused else dropout(x, 0.3, True, variant) + r
        results.append((out, *torch.autograd.grad(out, (x, r), torch.ones(6, 10))))
    for a, b in zip(*results, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert [t.dtype for t in results[0]] == [torch.float32, torch.bfloat16, torch.float32]


@pytest.mark.parametrize("x, residual, fused", [
    (torch.float32, torch.float32, True), (torch.bfloat16, torch.bfloat16, True),
    (torch.bfloat16, torch.float32, True), (torch.float16, torch.float32, True),
    (torch.float32, torch.bfloat16, False), (torch.float16, torch.bfloat16, False),
    (torch.float64, torch.float32, False),
])
def test_which_dtype_pairs_the_fused_kernel_takes(x, residual, fused):
    assert fn._fusable_dtypes(x, residual) is fused


def test_seed_is_a_device_tensor_from_the_generator_while_capturing(monkeypatch):
    """Under CUDA-graph capture an int seed would be baked into the graph: the seed must be a tensor drawn
    by a random op (replayed with fresh randomness), reproducible from torch's seed like eager draws."""
    x = torch.randn(4)
    assert isinstance(fn._draw_seed(x), int)
    monkeypatch.setattr(fn, "_capturing", lambda x: True)
    torch.manual_seed(1)
    first, second = fn._draw_seed(x), fn._draw_seed(x)
    assert isinstance(first, torch.Tensor) and first.dtype == torch.int64 and first.shape == (1,)
    assert first.item() != second.item()
    torch.manual_seed(1)
    assert fn._draw_seed(x).item() == first.item()


def test_native_backend_reported_on_cpu():
    import transformers

    model = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    assert apply(model, "packed").kernels == ("cpu" if not torch.cuda.is_available() else native.backend())
    assert apply(model, "standard").kernels == "torch"
    assert native.backend() == "cpu" or torch.cuda.is_available()


def test_reduce_overhead_needs_fixed_shapes(make_cfg):
    with pytest.raises(ConfigError, match="data.pad_to_seq_len=true"):
        validate(make_cfg("trainer.compile=true", "trainer.compile_mode=reduce-overhead"))
    validate(make_cfg("trainer.compile=true", "trainer.compile_mode=reduce-overhead", "data.pad_to_seq_len=true"))
    with pytest.raises(ConfigError, match="trainer.compile_mode"):
        validate(make_cfg("trainer.compile_mode=fastest"))


def test_compile_mode_reaches_torch_compile(monkeypatch):
    from torch import nn

    from pmexp.experiment.compiling import compile_fresh

    calls = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: calls.append(kw) or module)
    compile_fresh(nn.Linear(2, 2), "inductor", "reduce-overhead")
    compile_fresh(nn.Linear(2, 2), "inductor")
    compile_fresh(nn.Linear(2, 2), "aot_eager", "reduce-overhead")  # a mode is Inductor's: not passed on
    # a variant's Inductor options (seeded's threshold) on top of the mode's: torch.compile takes one or the other
    compile_fresh(nn.Linear(2, 2), "inductor", "reduce-overhead", {"realize_opcount_threshold": 48})
    assert calls == [{"backend": "inductor", "mode": "reduce-overhead"}, {"backend": "inductor", "mode": None},
                     {"backend": "aot_eager"},
                     {"backend": "inductor", "options": {"triton.cudagraphs": True, "realize_opcount_threshold": 48}}]


def test_pad_to_seq_len_gives_fixed_shapes(make_cfg):
    from pmexp.experiment.data import build_dataloaders
    from pmexp.experiment.models import build_model

    cfg = validate(make_cfg("data.pad_to_seq_len=true", "seq_len=48"))
    model, _ = build_model(cfg)
    train, evaluation = build_dataloaders(cfg, model.config)
    shapes = {tuple(batch["input_ids"].shape[1:]) for loader in (train, evaluation) for batch in loader}
    assert shapes == {(48,)}


def test_drop_last_gives_one_batch_shape(make_cfg):
    """data.drop_last (with pad_to_seq_len): every training batch full, so a compiled model sees one shape."""
    from pmexp.experiment.data import build_dataloaders
    from pmexp.experiment.models import build_model

    cfg = validate(make_cfg("data.pad_to_seq_len=true", "seq_len=48", "data.drop_last=true",
                            "data.max_train_samples=21", "trainer.batch_size=8"))
    model, _ = build_model(cfg)
    train, _ = build_dataloaders(cfg, model.config)
    assert [tuple(batch["input_ids"].shape) for batch in train] == [(8, 48), (8, 48)]  # 21 rows: 5 left out


def test_drop_last_with_fewer_rows_than_a_batch_says_what_to_change(make_cfg):
    from pmexp.experiment.data import build_dataloaders
    from pmexp.experiment.models import build_model

    cfg = validate(make_cfg("data.drop_last=true", "data.max_train_samples=5", "trainer.batch_size=8"))
    model, _ = build_model(cfg)
    with pytest.raises(ConfigError, match="data.drop_last=false or a smaller batch"):
        build_dataloaders(cfg, model.config)


def test_bench_step_tables_from_a_committed_record():
    """`python -m pmexp.bench step` prints its tables from the rows it saves (here the H200 record's)."""
    import json
    from pathlib import Path

    from pmexp.bench.step import to_markdown

    records = Path(__file__).resolve().parents[1] / "runs" / "2026-11-29-native-speed" / "records"
    micro = json.loads((records / "micro_step.json").read_text())["rows"][0]
    graphed = json.loads((records / "graphed_step.json").read_text())["rows"][0]
    env = {"device_name": "H200", "torch": "2.11", "triton": "3.6", "transformers": "5.17", "pmexp_commit": "x"}
    text = to_markdown(graphed["step"], micro["host"], micro["op"], env, {})
    assert "| bert_large_512 | graphed | packed | 107.95 | 148.2 | 1.012 [1.011, 1.012] | 0 |" in text
    assert "| packed (native) | 20.5 | 219.5 | 0.89 | 1.05 |" in text
    assert "| packed (native) | bfloat16 | 201,326,592 | 0.345 | 0.318 | 0.288 | 0.200 |" in text


def test_bench_step_reads_tempo_variants_as_memory_and_dropout():
    from pmexp.bench.step import TEMPO_VARIANTS, split_variant

    assert split_variant("packed") == ("none", "packed")
    assert [split_variant(v) for v in TEMPO_VARIANTS] == [("tempo", "standard"), ("tempo", "packed"),
                                                          ("tempo", "seeded")]


def test_bench_step_lengthens_the_rounds_of_a_short_step():
    """A 15 ms step gets 34 steps a round for 0.5 s (six read 1.043x and 0.898x for one path); a
    100 ms step keeps --steps."""
    from pmexp.bench.step import steps_per_round

    assert steps_per_round(0.015, 8, 0.5) == 34
    assert steps_per_round(0.107, 8, 0.5) == 8
    assert steps_per_round(0.0, 8, 0.0) == 8


def test_bench_step_rotates_the_order_and_offers_an_a_a_control():
    """Each round starts one later (no variant always first or after the same one); again:standard
    builds a plain standard model (its ratio is the noise floor)."""
    from pmexp.bench.step import CONTROL, rotated, split_variant

    variants = ["standard", "packed", "seeded"]
    assert [rotated(variants, r) for r in range(4)] == [
        variants, ["packed", "seeded", "standard"], ["seeded", "standard", "packed"], variants]
    assert split_variant(CONTROL) == ("again", "standard")


def test_bench_step_keeps_finished_cells_tables_when_a_later_cell_dies(tmp_path, monkeypatch):
    """A call cut or killed mid-run keeps step.json and a readable step.md of the cells done."""
    import json

    from pmexp.bench import step

    def fake_cell(cell, mode, variants, reps, steps, min_round_s, by_step):
        if cell == "tinybert_512":
            raise KeyboardInterrupt  # what a deadline's SIGTERM handler or a crash looks like here
        return [{"cell": cell, "mode": mode, "variant": v, "seq_len": 128, "batch": 32, "step_ms_median": 10.0,
                 "seq_s": 3200.0, "steps_per_round": 50, "ratio_vs_standard": {"median": 1.0, "min": 1.0, "max": 1.0},
                 "step_peak_above_resident_mb": None if mode == "graphed" else 1.0} for v in variants]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(step, "run_cell", fake_cell)
    monkeypatch.setattr(step, "env_info", lambda: {"device_name": "fake", "torch": "x", "triton": "x",
                                                  "transformers": "x", "pmexp_commit": "abc"})
    monkeypatch.setattr(step.native, "backend", lambda: "native")
    monkeypatch.setattr(step.native, "why_not", lambda: None)
    with pytest.raises(KeyboardInterrupt):
        step.run(parts=("step",), cells=("minilm_mrpc", "tinybert_512"), modes=("eager", "graphed"),
                 variants=("standard", "packed"), out=tmp_path)
    saved = json.loads((tmp_path / "step.json").read_text())["rows"][0]["step"]
    pairs = [(m, v) for m in ("eager", "graphed") for v in ("standard", "packed")]
    assert [(r["mode"], r["variant"]) for r in saved] == pairs
    assert "| minilm_mrpc | eager | packed |" in (tmp_path / "step.md").read_text()
    assert "| minilm_mrpc | graphed | packed | 10.00 | 3200.0 | 1.000 [1.000, 1.000] | n/a (graphed: the pool's) |" in (
        tmp_path / "step.md").read_text()  # a replay allocates nothing: no peak of 0 MB


def test_a_compiled_seeded_job_records_the_inductor_options_it_compiled_with(make_cfg):
    """The realize threshold seeded's hash needs changes what Inductor stores, the pass merging draws how many it
    makes, and short kernel names how they launch: the record says so."""
    from pmexp.dropout.traced import SEEDED_INDUCTOR_OPTIONS
    from pmexp.experiment.recorder import config_summary

    seeded = config_summary(make_cfg("dropout=seeded", "trainer.compile=true"))
    packed = config_summary(make_cfg("dropout=packed", "trainer.compile=true"))
    eager = config_summary(make_cfg("dropout=seeded"))
    threshold = SEEDED_INDUCTOR_OPTIONS["realize_opcount_threshold"]
    merge = "triton.descriptive_names=False,joint_custom_pre_pass=pmexp.dropout.merged_draws.MERGE_BIT_DRAWS"
    assert seeded["inductor_options"] == f"realize_opcount_threshold={threshold},{merge}"
    assert packed["inductor_options"] == merge
    assert eager["inductor_options"] is None
    combo = config_summary(make_cfg("dropout=seeded", "trainer.compile=true",
                                    "+trainer.inductor_options.combo_kernels=true"))
    assert combo["inductor_options"] == f"realize_opcount_threshold={threshold},{merge},combo_kernels=True"


def test_profile_step_counts_kernels_not_annotated_ranges():
    """`pmexp.bench.profile_step`'s device time: kernels only. The GPU span of a ``record_function``
    range (the optimizer's) overlaps its kernels; counted, it read 2 ms a step too many on the H200."""
    from types import SimpleNamespace as Event

    from pmexp.bench.profile_step import kernel_totals

    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    events = [Event(device_type=cuda, is_user_annotation=False, self_device_time_total=5.0, count=3),
              Event(device_type=cuda, is_user_annotation=True, self_device_time_total=100.0, count=1),
              Event(device_type=cpu, is_user_annotation=False, self_device_time_total=7.0, count=9)]
    assert kernel_totals(events) == (5.0, 3)


def test_profile_step_names_the_calls_that_stall_a_step():
    """A sync or an allocator call inside a step stops the host running ahead of the device: the profile
    says how many a step (Tempo's BERT-large step was 10.7 ms slower with 4.1 ms more kernels)."""
    from types import SimpleNamespace as Event

    from pmexp.bench.profile_step import _stalls

    events = [Event(key="cudaStreamSynchronize", count=10), Event(key="cudaLaunchKernel", count=900),
              Event(key="cudaFree", count=0)]
    assert _stalls(events, steps=5) == "cudaStreamSynchronize 2"
    assert _stalls(events[1:], steps=5) == "none"
