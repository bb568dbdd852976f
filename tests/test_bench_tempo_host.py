"""The Tempo host-cost table runs its paths (CPU smoke; the numbers that matter come from CUDA).

    python -m pytest tests/test_bench_tempo_host.py
"""

from __future__ import annotations

from pmexp.bench import tempo_host


def test_host_rows_on_cpu_time_every_path_against_its_kind():
    rows = tempo_host.host_rows("cpu", calls=2, warmup=1)
    assert [r["path"] for r in rows] == list(tempo_host.paths("cpu"))
    for row in rows:
        assert row["forward_us"] > 0 and row["forward_backward_us"] > 0
        if row["path"] in ("gelu: F.gelu", "layernorm: F.layer_norm", "attention: softmax, F.dropout, matmul"):
            assert row["forward_vs_stock"] == row["forward_backward_vs_stock"] == 1.0
    table = tempo_host.to_markdown(rows, {"torch": "x", "pmexp_commit": "y"}, "cpu")
    assert table.count("\n| ") == len(rows) + 1  # header and one line per path
