"""trainer.strategy=zero2|zero3 (FSDP2's fully_shard) under torchrun: two gloo processes on the CPU."""

from __future__ import annotations

import json

import pytest
import torch
from test_distributed import torchrun

from pmexp.experiment.config import validate
from pmexp.experiment.distributed import SHARDED, STRATEGIES, DistInfo, shard_model
from pmexp.experiment.records import STEPS_FILE

# Both runs add the same two ranks' gradients, only in another order of collectives (reduce-scatter
# vs all-reduce): losses and gradient norms agree to float32 rounding. A norm sums <= 2**20 squares;
# blocked float32 summation keeps that within ~20 eps32 = 2.4e-6 relative: 1e-5 leaves 4x room.
NORM_RTOL = 1e-5
LOSS_RTOL = 1e-5  # a loss after a step: the update differs by rounding (AdamW: a few ops per element)


def _steps(job_dir) -> tuple[list[tuple[float, float]], list[dict]]:
    rows = [json.loads(line) for line in (job_dir / STEPS_FILE).read_text().splitlines()]
    return [(r["loss"], r["grad_norm"]) for r in rows if "step" in r], [r for r in rows if "epoch" in r]


@pytest.mark.slow
def test_zero2_and_zero3_train_as_ddp_does(tmp_path, mrpc_dir):
    # No probe: its extra forward draws masks under ddp only (zero2/3 skip it), which would shift the streams.
    common = ("trainer.grad_accum=2", "trainer.max_steps=2", "data.max_train_samples=64", "trainer.probe=false")
    runs = {}
    for strategy in ("ddp", "zero2", "zero3"):
        job_dir, record = torchrun(tmp_path, mrpc_dir, strategy, f"trainer.strategy={strategy}", *common)
        assert record["status"] == "ok", record["traceback"]
        s = record["summary"]
        assert (s["strategy"], s["world_size"], s["steps"]) == (strategy, 2, 2)
        assert {"peak_allocated_mb_max", "peak_allocated_mb_mean"} <= set(s)  # per-rank peaks (null on a CPU)
        assert s["throughput_seq_s"] > 0 and s["eval_loss"] is not None
        runs[strategy] = _steps(job_dir)
    (ddp, ddp_eval) = runs["ddp"]
    for strategy in SHARDED:
        steps, evals = runs[strategy]
        assert len(steps) == 2
        assert steps[0][0] == ddp[0][0]  # the first loss: same weights, same masks, no update yet
        for (loss, norm), (loss_d, norm_d) in zip(steps, ddp, strict=True):
            assert loss == pytest.approx(loss_d, rel=LOSS_RTOL) and norm == pytest.approx(norm_d, rel=NORM_RTOL)
        assert evals[0]["eval_loss"] == pytest.approx(ddp_eval[0]["eval_loss"], rel=LOSS_RTOL)


@pytest.mark.slow
def test_zero3_with_checkpointing_runs(tmp_path, mrpc_dir):
    _, record = torchrun(tmp_path, mrpc_dir, "z3ckpt", "trainer.strategy=zero3", "memory=checkpointing",
                         "dropout=packed")
    assert record["status"] == "ok", record["traceback"]
    assert (record["summary"]["memory"], record["summary"]["strategy"]) == ("checkpointing", "zero3")
    assert record["summary"]["saved_mask_bytes"] is None  # no probe: FSDP2's gathered weights would count


def test_zero_strategies_are_known_and_single_leaves_the_model_alone(make_cfg):
    assert {"zero2", "zero3"} <= set(STRATEGIES) and SHARDED == {"zero2": False, "zero3": True}
    assert validate(make_cfg("trainer.strategy=zero3")).trainer.strategy == "zero3"
    model = torch.nn.Linear(2, 2)
    assert shard_model(DistInfo(), model) is model and type(model) is torch.nn.Linear
