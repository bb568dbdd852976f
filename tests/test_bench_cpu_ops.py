"""The by-event host profile on a tiny CPU model: identical models make identical calls, a variant's own ops show.

    python -m pytest tests/test_bench_cpu_ops.py
"""

from __future__ import annotations

import pytest

from pmexp.bench import cpu_ops


@pytest.fixture(scope="module")
def result(tiny_cell):
    return cpu_ops.run(tiny_cell, ("standard", "packed", "again:standard"), mode="eager", reps=2, steps=2,
                       device="cpu", top=400)


def test_identical_models_call_the_same_events(result):
    assert all(d["calls"] == 0 for d in result["again:standard"]["most_different"])


def test_a_variant_calls_its_own_ops(result):
    # on the CPU packed runs packed_exact: torch's mask packed into bits (a bitwise shift per dropout)
    calls = {d["name"]: d["calls"] for d in result["packed"]["most_different"]}
    assert any("shift" in name and n > 0 for name, n in calls.items()), calls


def test_the_main_thread_is_found(result):
    for row in result.values():
        assert row["threads"]["main"] > 0
        # the same events summed in another order: float64 rounding, n * eps of the sum at most
        assert row["self_cpu_us"] >= row["threads"]["main"] * (1 - 1e-9)


def test_kinds_cover_every_event(result):
    # the kinds partition the events: their self times add up to the total (two repetitions: a median is a mean,
    # and means add up; float64 rounding aside)
    for row in result.values():
        assert sum(k["us"] for k in row["kinds"].values()) == pytest.approx(row["self_cpu_us"], rel=1e-9)
    assert cpu_ops.kind_of("triton_per_fused_add_0") == "Triton launches"
    assert cpu_ops.kind_of("cuLaunchKernel") == "CUDA runtime and driver"
