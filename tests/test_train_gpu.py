"""The trainer on a real CUDA device: peak memory is recorded, and a real OOM becomes an `oom` record."""

from __future__ import annotations

import pytest
import torch

from pmexp.experiment.job import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("option", ["standard", "packed_exact", "packed", "seeded", "packed_hooks"])
def test_cuda_run_records_peak_memory_and_saved_bytes(make_cfg, option):
    record = train(make_cfg("trainer.device=cuda", "precision=bf16", f"dropout={option}", job=option))
    assert record["status"] == "ok", record["traceback"]
    s = record["summary"]
    assert 0 < s["peak_allocated_mb"] <= s["peak_reserved_mb"]
    assert s["peak_active_mb"] > 0 and s["throughput_seq_s"] > 0
    assert record["env"]["cuda"] and record["env"]["device_name"]


def test_standard_and_packed_exact_identical_on_cuda(make_cfg):
    losses = {}
    for option in ("standard", "packed_exact"):
        record = train(make_cfg("trainer.device=cuda", f"dropout={option}", "trainer.max_steps=3", job=option))
        assert record["status"] == "ok", record["traceback"]
        losses[option] = (record["summary"]["train_loss_final"], record["summary"]["eval_loss"])
    assert losses["standard"] == losses["packed_exact"]


def test_real_oom_under_a_memory_cap_is_recorded_and_the_cap_lifted(make_cfg):
    record = train(make_cfg("trainer.device=cuda", "trainer.memory_cap_gb=0.001", "data=synthetic",
                            "seq_len=1024", "trainer.batch_size=64"))
    assert record["status"] == "oom" and "out of memory" in record["error"].lower()
    assert record["summary"]["peak_allocated_mb"] is not None
    after = train(make_cfg("trainer.device=cuda", job="after"))  # same process, no cap left behind
    assert after["status"] == "ok", after["traceback"]
