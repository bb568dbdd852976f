"""Lockstep reference (trainer.reference): update cosine, norm ratio and loss difference per step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_report import _table_rows

from pmexp.experiment.config import ConfigError, validate
from pmexp.experiment.job import train
from pmexp.experiment.reference import update_similarity


def _steps(cfg) -> list[dict]:
    rows = [json.loads(line) for line in (Path(cfg.job_dir) / "steps.jsonl").read_text().splitlines()]
    return [r for r in rows if "step" in r]


def _run(make_cfg, *overrides: str, job: str) -> tuple[dict, list[dict]]:
    cfg = make_cfg("trainer.max_steps=3", *overrides, job=job)
    record = train(cfg)
    assert record["status"] == "ok", record["traceback"]
    return record, _steps(cfg)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_packed_exact_against_standard_gives_cosine_exactly_one(make_cfg, grad_accum):
    record, steps = _run(make_cfg, "dropout=packed_exact", "trainer.reference=standard",
                         f"trainer.grad_accum={grad_accum}", job=f"exact{grad_accum}")
    assert len(steps) == 3
    for row in steps:  # the same masks, so the same updates bit for bit: no tolerance
        assert row["ref/update_cos"] == 1.0 and row["ref/update_norm_ratio"] == 1.0
        assert row["ref/loss_diff"] == 0.0 and row["ref/update_max_abs_diff"] == 0.0
        layers = [k for k in row if k.startswith("ref/update_cos/")]
        assert any("encoder.layer.1" in k for k in layers) and all(row[k] == 1.0 for k in layers)
    s = record["summary"]
    assert (s["reference"], s["ref_update_cos_min"], s["ref_loss_diff_abs_max"]) == ("standard", 1.0, 0.0)


def test_a_step_at_lr_zero_compares_nothing_and_leaves_the_means_alone(make_cfg):
    # warm-up over half of 3 steps: the first step runs at lr 0, so neither model moves (the H200
    # campaign's first record counted that step as cosine 0: packed_exact's mean read 0.9913)
    record, steps = _run(make_cfg, "dropout=packed_exact", "trainer.reference=standard", "trainer.warmup=0.5",
                         job="warm")
    assert steps[0]["lr"] == 0.0 and steps[0]["ref/update_cos"] is None and steps[0]["ref/update_norm_ratio"] is None
    assert all(row["ref/update_cos"] == 1.0 for row in steps[1:])
    s = record["summary"]
    assert (s["ref_update_cos_mean"], s["ref_update_cos_min"], s["ref_update_norm_ratio_mean"]) == (1.0, 1.0, 1.0)


def test_a_reseeded_reference_draws_other_masks_so_cosine_is_below_one(make_cfg):
    _, steps = _run(make_cfg, "dropout=standard", "trainer.reference=standard_reseed", job="reseed")
    for row in steps:
        assert -1.0 <= row["ref/update_cos"] < 1.0 and row["ref/update_max_abs_diff"] > 0
    assert any(row["ref/loss_diff"] != 0.0 for row in steps)


def test_the_reference_leaves_the_trained_models_run_unchanged(make_cfg):
    _, alone = _run(make_cfg, "dropout=packed_exact", job="alone")
    _, beside = _run(make_cfg, "dropout=packed_exact", "trainer.reference=standard_reseed", job="beside")
    assert [(r["loss"], r["grad_norm"]) for r in alone] == [(r["loss"], r["grad_norm"]) for r in beside]


def test_update_similarity_on_known_vectors():
    a = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float32)
    # For these the formula dot / (|a| |a|) rounds 1 ulp away from 1 in float64; bitwise equal reads 1.0.
    glob, layers = update_similarity([("bert.encoder.layer.0.w", a, a.clone())])
    assert glob["cos"] == 1.0 and glob["norm_ratio"] == 1.0 and layers == {"bert.encoder.layer.0": 1.0}
    x, y = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0])
    glob, _ = update_similarity([("w", x, y)])
    assert glob["cos"] == 0.0 and glob["norm_ratio"] == pytest.approx(1 / 3, rel=1e-15)
    glob, _ = update_similarity([("w", 2 * a, a)])
    assert glob["cos"] == pytest.approx(1.0, abs=4 * 2**-52)  # a few float64 roundings, values exact in float32
    assert glob["norm_ratio"] == pytest.approx(2.0, rel=4 * 2**-52)
    glob, layers = update_similarity([("w", torch.zeros(2), torch.zeros(2))])  # neither moved: no direction
    assert glob["cos"] is None and glob["norm_ratio"] is None and layers == {"w": None}
    glob, _ = update_similarity([("w", torch.ones(2), torch.zeros(2))])
    assert glob["cos"] == 0.0 and glob["norm_ratio"] is None


@pytest.mark.parametrize(("overrides", "message"), [
    (["trainer.reference=bogus"], "pick one of"),
    (["trainer.reference=standard", "trainer.strategy=ddp"], "trainer.strategy=single"),
    (["trainer.reference=standard", "trainer.compile=true"], "trainer.compile=false"),
    (["trainer.reference=standard", "precision=fp16"], "precision=fp32 or bf16"),
    (["trainer.reference=standard", "dropout=none"], "dropout=none set to 0"),
])
def test_unsupported_references_name_the_key_and_the_fix(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=f"trainer.reference.*{message}"):
        validate(make_cfg(*overrides))


def test_the_report_plots_both_curves_and_tabulates_the_reference(make_cfg, tmp_path):
    from pmexp.report import build_report

    sweep = tmp_path / "sweep"
    for option, ref in (("packed_exact", "standard"), ("standard", "standard_reseed")):
        cfg = make_cfg("trainer.max_steps=3", f"dropout={option}", f"trainer.reference={ref}",
                       f"job_dir={sweep / f'{option}-{ref}'}")
        assert train(cfg)["status"] == "ok"
    files = build_report([sweep])
    (plot,) = [p for p in files.plots if p.name.startswith("reference")]
    assert plot.read_bytes()[:4] == b"\x89PNG"
    rows = {(r[0], r[1]): r for r in _table_rows(files.markdown.read_text(), "Against the lockstep reference")}
    assert rows[("standard", "packed_exact")][3:5] == ["1.000000", "1.000000"]
    assert float(rows[("standard_reseed", "standard")][4]) < 1.0
