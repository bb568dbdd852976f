"""GLUE tasks beside MRPC (SST-2, RTE): the registry, the lookup, and files checked before any model.

Malformed files are written by the tests into tmp_path (made-up sentences; the real corpora are
only read where they lie, under ../shared/data, and the tests that need them skip without them).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import pmexp.experiment.data
import pmexp.experiment.models
from pmexp.experiment.config import ConfigError, validate
from pmexp.experiment.data import (
    DataFileError,
    MissingDataError,
    build_dataloaders,
    check_data,
    find_task_dir,
    read_task_file,
)
from pmexp.experiment.job import train
from pmexp.experiment.tasks import GLUE_TASKS

_WORDS = "the film a movie is was great dull plot actors story not very long short fine".split()


def _row(task: str, i: int, rng: random.Random) -> list[str]:
    s1 = " ".join(rng.choices(_WORDS, k=rng.randint(3, 12)))
    s2 = " ".join(rng.choices(_WORDS, k=rng.randint(3, 12))) + (' "' if i % 5 == 0 else "")
    if task == "sst2":
        return [s1 + " ", str(i % 2)]
    if task == "rte":
        return [str(i), s1, s2, ("entailment", "not_entailment")[i % 2]]
    return [str(i % 2), str(1000 + i), str(2000 + i), s1, s2]


def write_task(folder: Path, task: str, n_train: int = 24, n_eval: int = 12, seed: int = 0) -> Path:
    """GLUE-shaped TSVs of `task` with made-up sentences; returns the folder."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.tsv", n_train), ("validation.tsv", n_eval)):
        lines = ["\t".join(GLUE_TASKS[task].columns)] + ["\t".join(_row(task, i, rng)) for i in range(n)]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def _edit(path: Path, line: int, new: str | None) -> None:
    """Replace 1-based `line` of `path` (None: drop every line from there on)."""
    lines = path.read_text().split("\n")
    lines[line - 1:] = [] if new is None else [new, *lines[line:]]
    path.write_text("\n".join(lines) + ("\n" if lines and new is None else ""))


def _task_cfg(make_cfg, task: str, folder: Path, *extra: str):
    return make_cfg(f"data={task}", f"data.dir={folder}", "data.max_train_samples=16", "data.max_eval_samples=8",
                    *extra)


def test_each_task_is_declared_once_and_the_config_reads_it():
    assert set(GLUE_TASKS) == {"mrpc", "sst2", "rte"}
    rte = GLUE_TASKS["rte"]
    assert (rte.label_index("entailment"), rte.label_index("not_entailment"), rte.label_index("x")) == (0, 1, None)
    sst2 = GLUE_TASKS["sst2"]
    assert (sst2.text_fields, sst2.label_index("1"), sst2.label_index("2"), sst2.env_var) == (
        ("sentence",), 1, None, "PMEXP_SST2_DIR")


def test_a_model_with_the_wrong_number_of_labels_names_the_key(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"model.num_labels=3.*data=rte has 2 labels"):
        validate(_task_cfg(make_cfg, "rte", tmp_path, "model.num_labels=3"))


def test_an_unknown_task_lists_the_known_ones(make_cfg):
    with pytest.raises(Exception, match="sst2"):  # Hydra refuses an unknown group option and lists them
        make_cfg("data=cola")


@pytest.mark.parametrize("task", ["sst2", "rte"])
def test_env_var_and_shared_folder_are_looked_up_like_mrpc(task, tmp_path, monkeypatch):
    folder = write_task(tmp_path / task, task)
    assert find_task_dir(GLUE_TASKS[task], str(folder)) == folder
    monkeypatch.setattr(pmexp.experiment.data, "SHARED_DATA", tmp_path)
    assert find_task_dir(GLUE_TASKS[task], None) == folder  # ../shared/data/<task> stand-in
    with pytest.raises(MissingDataError, match=GLUE_TASKS[task].env_var):
        find_task_dir(GLUE_TASKS[task], str(tmp_path / "nowhere"))


@pytest.mark.parametrize("task", ["sst2", "rte"])
def test_tiny_run_of_a_written_task(make_cfg, tmp_path, task):
    folder = write_task(tmp_path / task, task)
    record = train(_task_cfg(make_cfg, task, folder))
    assert record["status"] == "ok", record["traceback"]
    assert record["summary"]["steps"] == 2 and record["summary"]["eval_accuracy"] is not None
    assert record["config"]["data"]["name"] == task


def test_sst2_batches_are_single_sentences_and_rte_labels_are_indices(make_cfg, tmp_path):
    sst2 = build_dataloaders(_task_cfg(make_cfg, "sst2", write_task(tmp_path / "s", "sst2")), None)[0]
    batch = next(iter(sst2))
    assert int(batch["token_type_ids"].max()) == 0  # one segment: no second sentence
    rte = build_dataloaders(_task_cfg(make_cfg, "rte", write_task(tmp_path / "r", "rte")), None)[1]
    labels = [int(x) for b in rte for x in b["labels"]]
    assert labels == [i % 2 for i in range(8)]  # entailment, not_entailment, ... -> 0, 1, ...
    assert int(next(iter(rte))["token_type_ids"].max()) == 1  # a pair


def _shared(task: str) -> Path | None:
    return find_task_dir(GLUE_TASKS[task], None)


@pytest.mark.parametrize(("task", "counts", "positives"), [
    ("sst2", (67349, 872), (37569, 444)),  # SOURCE.md: label=1 rows
    ("rte", (2490, 277), (1241, 131)),  # SOURCE.md: not_entailment (index 1) rows
])
def test_shared_files_read_every_row_with_the_documented_counts(task, counts, positives):
    folder = _shared(task)
    if folder is None:
        pytest.skip(f"../shared/data/{task} is not here")
    train_cols = read_task_file(GLUE_TASKS[task], folder / "train.tsv")
    eval_cols = read_task_file(GLUE_TASKS[task], folder / "validation.tsv")
    assert (len(train_cols["label"]), len(eval_cols["label"])) == counts
    assert (sum(train_cols["label"]), sum(eval_cols["label"])) == positives


@pytest.mark.parametrize("task", ["sst2", "rte"])
def test_tiny_run_from_the_shared_files(make_cfg, task):
    folder = _shared(task)
    if folder is None:
        pytest.skip(f"../shared/data/{task} is not here")
    record = train(_task_cfg(make_cfg, task, folder))
    assert record["status"] == "ok", record["traceback"]
    assert record["summary"]["eval_accuracy"] is not None


# Malformed copies: (task, file, line to replace (1 = header), new text or None = cut, expected message).
MALFORMED = [
    ("mrpc", "train.tsv", 3, "x\t1\t2\ta b\tc d", r"train.tsv, line 3: label 'x' is not a label of mrpc"),
    ("mrpc", "train.tsv", 1, None, r"train.tsv: the file is empty"),
    ("mrpc", "train.tsv", 2, None, r"train.tsv: no rows below the header"),
    ("mrpc", "train.tsv", 4, "1\t1\t2\tonly one sentence",
     r"train.tsv, line 4: 4 tab-separated field\(s\), the header has 5"),
    ("mrpc", "train.tsv", 1, "label\tid1\tid2\ttext_a\ttext_b",
     r"train.tsv, line 1: the header .* lacks the column\(s\) \['sentence1', 'sentence2'\]"),
    ("mrpc", "validation.tsv", 6, "2\t1\t2\ta b\tc d",
     r"validation.tsv, line 6: label '2' is not a label of mrpc .*0\.\.1"),
    ("sst2", "train.tsv", 5, "a fine film \t", r"train.tsv, line 5: label '' is not a label of sst2"),
    ("sst2", "train.tsv", 7, " \t1", r"train.tsv, line 7: column 'sentence' is empty"),
    ("rte", "train.tsv", 2, "0\ta b\tc d\tentails",
     r"train.tsv, line 2: label 'entails' is not a label of rte .*'entailment' or 'not_entailment'"),
    ("rte", "validation.tsv", 1, "idx\tsentence1\tsentence2\tgold",
     r"validation.tsv, line 1: .* lacks the column\(s\) \['label'\]"),
]


@pytest.mark.parametrize(("task", "name", "line", "new", "message"), MALFORMED)
def test_a_malformed_file_names_file_line_and_problem_before_any_model(
        make_cfg, tmp_path, monkeypatch, task, name, line, new, message):
    folder = write_task(tmp_path / task, task)
    _edit(folder / name, line, new)
    cfg = _task_cfg(make_cfg, task, folder)
    with pytest.raises(DataFileError, match=message) as info:
        check_data(cfg)
    assert str(folder / name) in str(info.value)  # the bad file by its full path, not its sibling
    built = []
    monkeypatch.setattr(pmexp.experiment.models, "build_model", lambda *a, **k: built.append(1))
    record = train(cfg)
    assert record["status"] == "failed" and "DataFileError" in record["error"]
    assert str(folder / name) in record["error"] and not built  # checked before any model was built


def test_a_bad_label_past_max_train_samples_is_still_found(make_cfg, tmp_path):
    folder = write_task(tmp_path / "mrpc", "mrpc", n_train=40)
    _edit(folder / "train.tsv", 40, "2\t1\t2\ta b\tc d")  # training would stop long before row 39
    with pytest.raises(DataFileError, match="line 40: label '2'"):
        check_data(_task_cfg(make_cfg, "mrpc", folder))


def test_hub_data_is_checked_too_and_names_split_and_row(make_cfg, tmp_path, monkeypatch):
    import datasets

    def fake_hub(hub_id, config):  # the hub's shape: integer ClassLabel labels, an idx column
        rows = {"sentence1": ["a b", "c d", "e f"], "sentence2": ["g", "h", "i"], "label": [0, 1, 7], "idx": [0, 1, 2]}
        good = {k: v[:2] for k, v in rows.items()}
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                                     "validation": datasets.Dataset.from_dict(good)})

    monkeypatch.setattr(pmexp.experiment.data, "SHARED_DATA", tmp_path)  # no local copy: the hub is next
    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    cfg = make_cfg("data=rte", "data.dir=null")
    with pytest.raises(DataFileError, match=r"hub nyu-mll/glue/rte split train, row 2: label 7 is not a label of rte"):
        check_data(cfg)
