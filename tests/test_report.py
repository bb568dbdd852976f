"""The evidence report on a synthetic sweep whose numbers are chosen so every figure is known.

Layout (bert_base, bf16, sdpa, batch 32; seeds 0-2 unless noted):
- seq_len 128, 1024: standard, packed_exact, packed, seeded all ok;
- seq_len 2048: standard OOM (all seeds), packed_exact ok, packed OOM, seeded ok;
- packed_hooks: seq_len 128 one failed job, seq_len 1024 one killed job;
- a max-batch search: standard 48, packed_exact 56, packed 48 (its probe dirs must not count).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from scipy import stats as sps

from pmexp.report import EmptySweepError, SweepNotFoundError, build_report, gather_rows, settings_of
from pmexp.report.__main__ import main
from pmexp.report.fmt import config_label
from pmexp.report.stats import compare_to_standard, group_rows

SEEDS = (0, 1, 2)
F1_STANDARD = (0.80, 0.82, 0.84)  # std 0.02
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# variant -> seq_len -> (peak MB, seq/s, saved mask bytes, F1 per seed) ; None: OOM
NUMBERS: dict[str, dict[int, tuple[float, float, int, tuple[float, ...]] | None]] = {
    "standard": {128: (1000, 100, 1_000_000, F1_STANDARD), 1024: (4000, 20, 8_000_000, F1_STANDARD),
                 2048: None},
    "packed_exact": {128: (940, 99, 125_000, F1_STANDARD), 1024: (3500, 19.8, 1_000_000, F1_STANDARD),
                     2048: (7000, 9, 2_000_000, F1_STANDARD)},
    "packed": {128: (960, 97, 125_000, (0.85, 0.86, 0.87)),
               1024: (3700, 19.4, 1_250_000, (0.85, 0.86, 0.87)), 2048: None},
    "seeded": {128: (900, 95, 0, (0.802, 0.822, 0.842)), 1024: (3400, 19, 0, (0.802, 0.822, 0.842)),
               2048: (6800, 8, 0, F1_STANDARD)},
}


def _summary(variant: str, seq_len: int, seed: int, **measured: float | None) -> dict:
    keys = ("steps", "train_loss_final", "eval_loss", "eval_accuracy", "eval_f1", "peak_allocated_mb",
            "peak_reserved_mb", "peak_active_mb", "saved_mask_bytes", "saved_activation_bytes",
            "saved_total_bytes", "throughput_seq_s", "throughput_tok_s", "step_time_median_ms",
            "step_time_p90_ms", "grad_norm_final", "wall_time_s")
    summary = {k: None for k in keys}
    summary.update(model="bert_base", variant=variant, precision="bf16", seq_len=seq_len,
                   attention="sdpa", batch_size=32, seed=seed, compile=False, checkpointing=False,
                   targets=["attention", "hidden"])
    summary.update(measured)
    return summary


def write_job(root: Path, name: str, status: str, summary: dict, *, steps: int = 0,
              torn: bool = False, error: str | None = None) -> Path:
    """One job dir as the trainer writes it (metrics.json + steps.jsonl)."""
    job = root / name
    job.mkdir(parents=True)
    record = {"status": status, "error": error, "traceback": None, "config": {},
              "config_hash": "x", "overrides": [], "summary": summary,
              "env": {"device_name": "FakeGPU", "torch": "2.13", "transformers": "5.17",
                      "python": "3.11", "pmexp_commit": "abc123", "cuda": "12.8"}}
    (job / "metrics.json").write_text(json.dumps(record))
    lines = [json.dumps({"step": s, "loss": 1.0 / (s + 1) + 0.01 * summary["seed"], "lr": 1e-4,
                         "grad_norm": 1.0, "step_time_ms": 10.0}) for s in range(steps)]
    if steps:
        lines.append(json.dumps({"epoch": 0, "eval_loss": 0.5, "eval_accuracy": 0.8, "eval_f1": 0.8}))
    if torn:
        lines.append('{"step": 99, "lo')
    (job / "steps.jsonl").write_text("\n".join(lines) + "\n")
    return job


def make_sweep(root: Path) -> Path:
    n = 0
    for variant, by_len in NUMBERS.items():
        for seq_len, numbers in by_len.items():
            for i, seed in enumerate(SEEDS):
                n += 1
                if numbers is None:
                    write_job(root, f"{n}", "oom", _summary(variant, seq_len, seed),
                              error="CUDA out of memory")
                    continue
                peak, seq_s, mask, f1 = numbers
                jitter = (-1, 0, 1)[i]
                write_job(root, f"{n}", "ok", _summary(
                    variant, seq_len, seed, peak_allocated_mb=peak + 10 * jitter,
                    peak_reserved_mb=peak * 1.1, throughput_seq_s=seq_s * (1 + 0.01 * jitter),
                    throughput_tok_s=seq_s * seq_len, saved_mask_bytes=mask, eval_f1=f1[i],
                    eval_accuracy=f1[i] - 0.05, eval_loss=0.5, train_loss_final=0.3,
                    step_time_median_ms=10.0), steps=10)
    write_job(root, "hooks/a", "failed", _summary("packed_hooks", 128, 0),
              error="RuntimeError: triton kernel blew up\nsecond line")
    write_job(root, "hooks/b", "killed", _summary("packed_hooks", 1024, 0), steps=3, torn=True)
    mb = root / "maxbatch"
    write_job(mb / "probes" / "standard", "bs64", "oom", _summary("standard", 512, 0))
    (mb / "maxbatch.jsonl").write_text(json.dumps({"variant": "standard", "batch_size": 64}) + "\n")
    (mb / "maxbatch.json").write_text(json.dumps({
        "search": "batch_size", "complete": True, "env": {"device_name": "FakeGPU"},
        "settings": {"model": "bert_base", "precision": "bf16", "attention": "sdpa", "seq_len": 512},
        "results": {"standard": {"max": 48, "peak_allocated_mb": 70000.0, "hit_cap": False, "probes": 9},
                    "packed_exact": {"max": 56, "peak_allocated_mb": 71000.0, "hit_cap": False, "probes": 9},
                    "packed": {"max": 48, "peak_allocated_mb": 69000.0, "hit_cap": False, "probes": 9}}}))
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_sweep(tmp_path_factory.mktemp("sweep"))
    build_report([root])
    return root


def _md(sweep: Path) -> str:
    return (sweep / "report.md").read_text()


def _table_rows(md: str, heading: str) -> list[list[str]]:
    """Rows of the first Markdown table after the heading ``heading``."""
    lines = md.splitlines()
    after = lines.index(next(line for line in lines if line.startswith("#") and line.lstrip("# ") == heading))
    start = next(i for i, line in enumerate(lines) if i > after and line.startswith("| "))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def _comparisons(sweep: Path) -> dict[tuple[str, int], object]:
    comps = compare_to_standard(group_rows(gather_rows([sweep])))
    return {(c.group.variant, c.group.settings["seq_len"]): c for c in comps}


def test_status_counts_at_top_and_probe_dirs_excluded(sweep: Path) -> None:
    md = _md(sweep)
    counts = {r[0]: r[1] for r in _table_rows(md, "Jobs by status")}
    assert counts == {"ok": "30", "OOM": "6", "failed": "1", "killed": "1", "running": "0", "diverged": "0",
                      "invalid": "0", "total": "38"}
    assert md.index("Jobs by status") < md.index("Verdicts") < md.index("Results per configuration")
    assert "triton kernel blew up" in md and "second line" not in md


def test_oom_failed_killed_cells_shown(sweep: Path) -> None:
    rows = _table_rows(_md(sweep), "Memory and speed")  # varying settings: seq_len, variant
    by_key = {(r[0], r[1]): r for r in rows}
    assert by_key[("2048", "standard")][2:] == ["OOM 3"] + ["OOM"] * 6
    assert by_key[("2048", "packed")][3] == "OOM"
    assert by_key[("128", "packed_hooks")][3] == "failed"
    assert by_key[("1024", "packed_hooks")][3] == "killed"
    assert by_key[("128", "standard")][2:4] == ["ok 3", "1,000.0 ± 10.0"]


def test_ratios_on_known_numbers(sweep: Path) -> None:
    comps = _comparisons(sweep)
    exact = comps[("packed_exact", 128)]
    assert exact.memory_saving == pytest.approx(0.06)
    assert exact.throughput_ratio == pytest.approx(0.99)
    assert exact.mask_compression == pytest.approx(8.0)
    assert comps[("packed", 1024)].mask_compression == pytest.approx(6.4)
    assert math.isinf(comps[("seeded", 128)].mask_compression)
    assert comps[("packed_exact", 2048)].memory_saving is None  # standard OOM: nothing to divide by
    rows = {(r[0], r[1]): r for r in _table_rows(_md(sweep), "Against standard")}
    label = "bert_base bf16 sdpa L=128 B=32 targets=attention,hidden"
    assert rows[(label, "packed_exact")][2:5] == ["+6.0%", "0.990x", "8.00x"]
    assert rows[(label, "seeded")][4] == "inf (all)"
    assert rows[(label.replace("128", "2048"), "packed_exact")][2] == "standard OOM"


def test_welch_matches_scipy_and_sigma_units(sweep: Path) -> None:
    comp = _comparisons(sweep)[("packed", 128)]
    expected = sps.ttest_ind([0.85, 0.86, 0.87], F1_STANDARD, equal_var=False).pvalue
    assert comp.f1_p == pytest.approx(expected, rel=1e-12)
    assert comp.f1_diff == pytest.approx(0.04)
    assert comp.f1_sigma == pytest.approx(2.0)  # 0.04 / std(0.80, 0.82, 0.84)
    assert _comparisons(sweep)[("packed_exact", 128)].f1_sigma == 0.0
    ci = sps.ttest_ind([0.85, 0.86, 0.87], F1_STANDARD, equal_var=False).confidence_interval(0.90)
    assert comp.f1_ci_sigma == pytest.approx((ci.low / 0.02, ci.high / 0.02), rel=1e-12)
    low, high = _comparisons(sweep)[("packed_exact", 128)].f1_ci_sigma  # the same F1s: centred on 0
    assert low == pytest.approx(-high, rel=1e-12) and high > 0.2  # 3 seeds cannot show ±0.2σ


def test_verdicts_follow_the_numbers(sweep: Path) -> None:
    rows = _table_rows(_md(sweep), "Verdicts")
    got = {(r[0].split(".")[0], r[1]): r[2] for r in rows}
    expected = {
        ("1", "packed_exact"): "PASS", ("1", "packed"): "FAIL", ("1", "seeded"): "PASS",
        ("1", "packed_hooks"): "n/a",
        ("2a", "packed_exact"): "PASS", ("2a", "packed"): "FAIL", ("2a", "seeded"): "PASS",
        ("2b", "packed_exact"): "PASS", ("2b", "packed"): "FAIL", ("2b", "seeded"): "PASS",
        ("3", "packed_exact"): "PASS", ("3", "packed"): "FAIL", ("3", "seeded"): "FAIL",
        ("4", "packed_exact"): "PASS", ("4", "packed"): "FAIL", ("4", "seeded"): "PASS",
        ("5", "packed_exact"): "PASS", ("5", "packed"): "FAIL", ("5", "seeded"): "PASS",
        ("5", "packed_hooks"): "n/a",
    }
    assert {k: got[k] for k in expected} == expected
    measured = {(r[0].split(".")[0], r[1]): r[3] for r in rows}
    assert measured[("1", "packed")].startswith("worst 6.40x")
    assert measured[("2a", "packed")].startswith("worst +4.0%")
    assert measured[("4", "packed")].startswith("worst ΔF1 = +2.00σ (0.0400, Welch p = 0.055")


def test_maxbatch_table(sweep: Path) -> None:
    rows = {r[2]: r for r in _table_rows(_md(sweep), "Max batch")}
    assert rows["standard"][3] == "48" and rows["packed_exact"][3:6] == ["56", "71,000.0", "+16.7%"]


def test_plots_are_pngs_and_linked(sweep: Path) -> None:
    pngs = sorted(p.name for p in sweep.glob("*.png"))
    assert any(n.startswith("memory_vs_seq_len") for n in pngs)
    assert any(n.startswith("throughput_vs_seq_len") for n in pngs)
    assert len([n for n in pngs if n.startswith("loss")]) == 3  # one per seq_len config
    for name in pngs:
        assert (sweep / name).read_bytes()[:8] == PNG_SIGNATURE
    html = (sweep / "report.html").read_text()
    linked = set(re.findall(r'<img src="([^"]+)"', html))
    assert linked == set(pngs)
    md_tables = sum(line.startswith("| ---") for line in _md(sweep).splitlines())
    assert html.count("<table>") == md_tables
    assert '<td class="FAIL">FAIL</td>' in html


def test_out_dir_and_several_sweeps(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_job(a, "j", "ok", _summary("standard", 128, 0, peak_allocated_mb=1.0))
    write_job(b, "j", "oom", _summary("packed", 128, 0))
    files = build_report([a, b], tmp_path / "out")
    assert files.markdown == tmp_path / "out" / "report.md" and files.html.exists()
    assert not (a / "report.md").exists()
    counts = {r[0]: r[1] for r in _table_rows(files.markdown.read_text(), "Jobs by status")}
    assert counts["total"] == "2" and counts["OOM"] == "1"


def test_missing_and_empty_dirs_say_what_to_pass(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SweepNotFoundError, match="does not exist"):
        build_report([tmp_path / "nope"])
    with pytest.raises(EmptySweepError, match="python -m pmexp.train -m"):
        build_report([tmp_path])
    assert main([str(tmp_path)]) == 2
    assert "no metrics.json found" in capsys.readouterr().err


def test_max_batch_where_standard_hit_the_cap_is_not_evidence(tmp_path: Path) -> None:
    from pmexp.report.gather import MaxBatchResult
    from pmexp.report.verdicts import judge

    capped = MaxBatchResult(tmp_path, "batch_size", {"model": "tinybert"},
                            {"standard": {"max": 64, "hit_cap": True}, "packed": {"max": 64, "hit_cap": True}})
    (verdict,) = [v for v in judge([], [capped]) if v.criterion.startswith("5.")]
    assert verdict.outcome == "n/a" and "standard hit the cap" in verdict.measured
    more = MaxBatchResult(tmp_path, "seq_len", {"model": "tinybert"},
                          {"standard": {"max": 1024}, "packed": {"max": 1536}})
    (verdict,) = [v for v in judge([], [more]) if v.criterion.startswith("5.")]
    assert verdict.outcome == "PASS" and verdict.measured.startswith("max seq_len 1536 vs standard 1024")


def test_torn_steps_line_of_a_killed_job_is_skipped(tmp_path: Path) -> None:
    from pmexp.report.gather import read_steps

    job = write_job(tmp_path, "k", "killed", _summary("standard", 128, 0), steps=3, torn=True)
    train, evals = read_steps(job)
    assert [t["step"] for t in train] == [0, 1, 2] and len(evals) == 1


def test_compressed_steps_log_reads_like_the_plain_one(tmp_path: Path) -> None:
    import gzip

    from pmexp.report.gather import read_steps

    job = write_job(tmp_path, "g", "ok", _summary("standard", 128, 0), steps=3)
    plain = read_steps(job)
    steps = job / "steps.jsonl"
    (job / "steps.jsonl.gz").write_bytes(gzip.compress(steps.read_bytes()))
    steps.unlink()
    assert read_steps(job) == plain and len(plain[0]) == 3


def test_partly_oom_configuration_keeps_its_ok_seeds_and_counts_the_rest(tmp_path: Path) -> None:
    write_job(tmp_path, "s0", "ok", _summary("standard", 128, 0, peak_allocated_mb=100.0))
    write_job(tmp_path, "s1", "oom", _summary("standard", 128, 1))
    md = build_report([tmp_path]).markdown.read_text()
    (row,) = _table_rows(md, "Memory and speed")
    assert row[:3] == ["standard", "ok 1, OOM 1", "100.0"]


def _header(md: str, heading: str) -> list[str]:
    """Header of the first Markdown table after the heading ``heading``."""
    lines = md.splitlines()
    after = lines.index(next(line for line in lines if line.startswith("#") and line.lstrip("# ") == heading))
    line = next(line for i, line in enumerate(lines) if i > after and line.startswith("| "))
    return [c.strip() for c in line.strip("|").split(" | ")]


@pytest.mark.parametrize(
    ("memory", "checkpointing", "expected"),
    [(None, False, "none"), (None, True, "checkpointing"), ("none", True, "checkpointing"),
     ("tempo", True, "tempo_checkpointing"), ("tempo_checkpointing", False, "tempo_checkpointing")],
)
def test_old_records_read_as_one_process_and_the_memory_technique_that_ran(memory, checkpointing, expected) -> None:
    summary = _summary("standard", 128, 0, checkpointing=checkpointing)  # no strategy, world_size
    if memory is not None:
        summary["memory"] = memory
    s = settings_of({"summary": summary})
    assert (s["strategy"], s["world_size"]) == ("single", 1)
    assert (s["memory"], s["checkpointing"]) == (expected, expected.endswith("checkpointing"))


def test_fuse_groups_no_surgery_options_with_the_variants() -> None:
    """dropout=none records no fuse in its summary (no surgery): the config's value groups it with the
    variants of its sweep; records from before the key have none anywhere and group among themselves."""
    config = {"dropout": {"fuse": True}}
    packed = settings_of({"summary": {**_summary("packed", 128, 0), "fuse": True}, "config": config})
    none = settings_of({"summary": {**_summary("none", 128, 0), "fuse": None}, "config": config})
    old = settings_of({"summary": _summary("packed", 128, 0), "config": {"dropout": {}}})
    assert packed["fuse"] is True and none["fuse"] is True and old["fuse"] is None
    assert "unfused" in config_label({**packed, "fuse": False}) and "unfused" not in config_label(packed)


def test_single_process_report_has_no_rank_columns_nor_memory_table(sweep: Path) -> None:
    md = _md(sweep)
    assert "over ranks" not in md and "## Memory technique" not in md
    assert "memory=none" in md and "strategy=single, world_size=1" in md  # common settings


def test_ddp_and_zero1_are_configurations_with_per_rank_peaks(tmp_path: Path) -> None:
    # strategy, world_size -> (rank 0's peak, max over ranks, mean over ranks)
    peaks = {("single", 1): (1000.0, 1000.0, 1000.0), ("ddp", 2): (900.0, 950.0, 925.0),
             ("zero1", 2): (700.0, 720.0, 710.0)}
    for (strategy, world_size), (peak, top, mean) in peaks.items():
        for variant, factor in (("standard", 1.0), ("packed", 0.9)):
            write_job(tmp_path, f"{strategy}-{variant}", "ok", _summary(
                variant, 128, 0, strategy=strategy, world_size=world_size, peak_allocated_mb=peak * factor,
                peak_allocated_mb_max=top * factor, peak_allocated_mb_mean=mean * factor,
                throughput_seq_s=100.0 * world_size))
    md = build_report([tmp_path]).markdown.read_text()
    header = _header(md, "Memory and speed")
    assert header[:7] == ["strategy", "world_size", "variant", "jobs", "peak alloc MB",
                          "peak alloc MB max over ranks", "peak alloc MB mean over ranks"]
    rows = {(r[0], r[2]): r for r in _table_rows(md, "Memory and speed")}
    assert rows[("zero1", "standard")][4:7] == ["700.0", "720.0", "710.0"]
    assert rows[("ddp", "packed")][4:7] == ["810.0", "855.0", "832.5"]
    assert rows[("single", "standard")][1] == "1"
    comps = {c.group.settings["strategy"]: c for c in compare_to_standard(group_rows(gather_rows([tmp_path])))}
    assert comps["ddp"].baseline.settings["strategy"] == "ddp" and comps["ddp"].throughput_ratio == 1.0
    against = [r[0] for r in _table_rows(md, "Against standard")]
    assert "bert_base bf16 sdpa L=128 B=32 zero1×2 targets=attention,hidden" in against


def test_memory_technique_tables_against_none_standard(tmp_path: Path) -> None:
    # memory -> (peak MB, seq/s) at seq_len 128 for standard; packed: 0.8x peak, 0.9x seq/s; 512: 4x peak
    techniques = {"none": (1000.0, 100.0), "checkpointing": (500.0, 75.0), "tempo": (750.0, 95.0)}
    for memory, (peak, seq_s) in techniques.items():
        for seq_len, scale in ((128, 1), (512, 4)):
            for variant, (f_peak, f_speed) in (("standard", (1.0, 1.0)), ("packed", (0.8, 0.9))):
                name = f"{memory}-{seq_len}-{variant}"
                summary = _summary(variant, seq_len, 0, memory=memory, checkpointing=memory == "checkpointing")
                if (memory, seq_len, variant) == ("tempo", 512, "standard"):
                    write_job(tmp_path, name, "oom", summary, error="CUDA out of memory")
                    continue
                summary.update(peak_allocated_mb=peak * scale * f_peak, throughput_seq_s=seq_s / scale * f_speed)
                write_job(tmp_path, name, "ok", summary)
    for memory, results in (("none", {"standard": 32, "packed": 36}), ("tempo", {"standard": 40, "packed": 48})):
        out = tmp_path / f"maxbatch-{memory}"
        out.mkdir()
        settings = {"model": "bert_base", "precision": "bf16", "attention": "sdpa", "seq_len": 512,
                    "memory": memory, "targets": ["attention", "hidden"]}
        (out / "maxbatch.json").write_text(json.dumps({
            "search": "batch_size", "settings": settings,
            "results": {v: {"max": m, "hit_cap": v == "packed" and memory == "tempo"} for v, m in results.items()}}))
    md = build_report([tmp_path]).markdown.read_text()
    assert md.index("## Memory technique") < md.index("## Max batch")
    assert _header(md, "Memory and speed")[:3] == ["seq_len", "memory", "variant"]  # memory names checkpointing
    assert [r[1] for r in _table_rows(md, "Memory and speed")][:6:2] == ["none", "checkpointing", "tempo"]
    header = ["memory"] + [f"{v} {c}" for v in ("standard", "packed")
                           for c in ("peak alloc MB", "peak vs base", "seq/s", "seq/s vs base")]
    assert _header(md, "seq_len=128") == header  # no max batch searched at 128
    short = {r[0]: r[1:] for r in _table_rows(md, "seq_len=128")}
    assert list(short) == ["none", "checkpointing", "tempo"]
    assert short["none"] == ["1,000.0", "1.000x", "100.00", "1.000x", "800.0", "0.800x", "90.00", "0.900x"]
    assert short["checkpointing"][:4] == ["500.0", "0.500x", "75.00", "0.750x"]
    assert short["tempo"][4:] == ["600.0", "0.600x", "85.50", "0.855x"]
    assert _header(md, "seq_len=512") == [*header[:5], "standard max batch", *header[5:], "packed max batch"]
    long = {r[0]: r[1:] for r in _table_rows(md, "seq_len=512")}
    assert long["tempo"] == ["OOM"] * 4 + ["40", "2,400.0", "0.600x", "21.38", "0.855x", "≥48"]
    assert long["none"][4] == "32" and long["none"][9] == "36" and long["checkpointing"][4] == "n/a"


def test_attention_and_compile_are_separate_configurations(tmp_path: Path) -> None:
    speed = {("eager", False): 100.0, ("eager", True): 150.0, ("sdpa", False): 200.0, ("sdpa", True): 300.0}
    for (attention, compiled), seq_s in speed.items():
        for variant, factor in (("standard", 1.0), ("packed", 0.9), ("seeded", 0.8)):
            write_job(tmp_path, f"{attention}-{compiled}-{variant}", "ok", _summary(
                variant, 128, 0, attention=attention, compile=compiled, throughput_seq_s=seq_s * factor))
    groups = group_rows(gather_rows([tmp_path]))
    assert len(groups) == 12
    comps = compare_to_standard(groups)
    assert len(comps) == 8
    for c in comps:
        assert {k: c.baseline.settings[k] for k in ("attention", "compile")} == {
            k: c.group.settings[k] for k in ("attention", "compile")}
        assert c.throughput_ratio == pytest.approx({"packed": 0.9, "seeded": 0.8}[c.group.variant])
    md = build_report([tmp_path]).markdown.read_text()
    assert _header(md, "Memory and speed")[:3] == ["attention", "compile", "variant"]
    rows = [r[:3] for r in _table_rows(md, "Memory and speed")]
    assert rows[:3] == [["eager", "False", "standard"], ["eager", "False", "packed"], ["eager", "False", "seeded"]]
    assert len(rows) == 12
    assert "bert_base bf16 sdpa L=128 B=32 compile targets=attention,hidden" in [
        r[0] for r in _table_rows(md, "Against standard")]
