"""The host-cost bench on a tiny CPU model: its counts are exact, its timing rows complete.

    python -m pytest tests/test_bench_host_step.py
"""

from __future__ import annotations

import pytest

from pmexp.bench import host_step


@pytest.fixture(scope="module")
def rows(tiny_cell):
    return {r["variant"]: r for r in host_step.run(tiny_cell, ("standard", "packed", "again:standard"), rounds=2,
                                                  per_round=2, padded=True, device="cpu")}


def test_identical_models_make_identical_calls(rows):
    # the A/A control runs the same code: every count equal, no function differs
    control, standard = rows["again:standard"], rows["standard"]
    for key in ("python_calls", "builtin_calls", "ops", "kernels"):
        assert control[key] == standard[key]
    assert control["most_different"] == []


def test_a_variant_differs_where_its_code_does(rows):
    different = dict(rows["packed"]["most_different"])
    assert rows["packed"]["python_calls"] != rows["standard"]["python_calls"]
    # on the CPU packed runs packed_exact: torch's mask packed into bits by pmexp.masks.bits
    assert any(name.startswith("bits.py") and calls > 0 for name, calls in different.items()), different


def test_every_phase_is_timed_and_the_reference_is_one(rows):
    for row in rows.values():
        for phase in host_step.PHASES:
            assert row[f"{phase}_ms"] > 0
    assert all(rows["standard"][f"{p}_ratio"]["median"] == 1.0 for p in host_step.PHASES)
    assert len(rows["packed"]["gc_collections"]) == 3
