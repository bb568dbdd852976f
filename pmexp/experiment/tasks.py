"""What pmexp trains: the task kinds a model can have (`model.task`) and the GLUE tasks, each declared once.

    python -c "from pmexp.experiment.tasks import TASKS, GLUE_TASKS; print(TASKS['causal_lm'], GLUE_TASKS['rte'])"

A `Task` (sequence_classification, causal_lm, image_classification) says which transformers Auto
class builds the model, what one synthetic example looks like, how many tokens a batch holds, and
whether evaluation scores accuracy and F1; config, models, data and the loop read it instead of
comparing `model.task` strings. A `GlueTask` (mrpc, sst2, rte) declares its files, columns, labels
and text fields: config validation, the data loader (`pmexp.experiment.data`) and the report read
it. Adding a GLUE task is one entry here plus its `conf/data/<name>.yaml`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["GLUE_TASKS", "SPLITS", "TASKS", "GlueTask", "Task", "glue_task", "task_of"]

Example = dict[str, torch.Tensor]


def _text_classification(g: torch.Generator, seq_len: int, config: Any) -> Example:
    label = torch.randint(getattr(config, "num_labels", 2), (), generator=g)
    ids = torch.randint(config.vocab_size, (seq_len,), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": label}


def _next_token(g: torch.Generator, seq_len: int, config: Any) -> Example:
    torch.randint(getattr(config, "num_labels", 2), (), generator=g)  # drawn and unused: the same ids as before
    ids = torch.randint(config.vocab_size, (seq_len,), generator=g)
    return {"input_ids": ids, "labels": ids.clone()}  # the model shifts the labels itself


def _image_classification(g: torch.Generator, seq_len: int, config: Any) -> Example:
    label = torch.randint(getattr(config, "num_labels", 2), (), generator=g)
    return {"pixel_values": torch.randn(3, config.image_size, config.image_size, generator=g), "labels": label}


def _token_count(batch: Example, config: Any) -> int:
    return batch["input_ids"].numel()  # padding included: what the compute sees


def _patch_count(batch: Example, config: Any) -> int:
    return batch["pixel_values"].shape[0] * ((config.image_size // config.patch_size) ** 2 + 1)  # + [CLS]


@dataclasses.dataclass(frozen=True)
class Task:
    """One kind of model (`model.task`): how it is built, fed synthetic data, counted and scored.

    Args:
        name: the `model.task` value.
        auto_class: the transformers Auto class that builds it (`from_config` / `from_pretrained`).
        labelled: a classifier: needs `model.num_labels`, and evaluation scores accuracy and F1.
        uses_seq_len: its inputs are token sequences of `seq_len` (an image model's are not).
        synthetic: one random example from a generator, `seq_len` and the model's config.
        count_tokens: the tokens (or patches) a batch feeds the model, padding included.
    """

    name: str
    auto_class: str
    labelled: bool
    uses_seq_len: bool
    synthetic: Callable[[torch.Generator, int, Any], Example]
    count_tokens: Callable[[Example, Any], int]


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("sequence_classification", "AutoModelForSequenceClassification", True, True,
             _text_classification, _token_count),
        Task("causal_lm", "AutoModelForCausalLM", False, True, _next_token, _token_count),
        Task("image_classification", "AutoModelForImageClassification", True, False,
             _image_classification, _patch_count),
    )
}


def task_of(cfg: Any) -> Task:
    """The `Task` of a validated config (`cfg.model.task`)."""
    return TASKS[cfg.model.task]


#: The files every local task folder holds (GLUE's test labels are not public, so no test split).
SPLITS = ("train", "validation")


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """One GLUE classification task as its TSV files (and the hub's `nyu-mll/glue` config) hold it.

    Args:
        name: `data.name` and the `nyu-mll/glue` config name.
        text_fields: the columns fed to the tokenizer: one (single sentence) or two (a pair).
        columns: the header of the local TSVs, in file order.
        label_names: string labels in class-index order (index = the hub's integer label); None when
            the files hold integers `0 .. num_labels - 1`.
        num_labels: the number of classes; `model.num_labels` must equal it (so the eval metrics,
            which read `model.num_labels`, count the task's classes).
        task: the `Task` (model.task) a model needs to train on it.
    """

    name: str
    text_fields: tuple[str, ...]
    columns: tuple[str, ...]
    label_names: tuple[str, ...] | None
    num_labels: int
    label_field: str = "label"
    task: str = "sequence_classification"

    @property
    def env_var(self) -> str:
        """The environment variable naming the local folder, e.g. PMEXP_RTE_DIR."""
        return f"PMEXP_{self.name.upper()}_DIR"

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f"{split}.tsv" for split in SPLITS)

    def label_index(self, value: str) -> int | None:
        """The class index a TSV label cell stands for, or None when it is not a label of this task."""
        if self.label_names is not None:
            return self.label_names.index(value) if value in self.label_names else None
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            return None
        index = int(text)
        return index if index < self.num_labels else None

    def label_hint(self) -> str:
        """The labels this task accepts, for error messages."""
        if self.label_names is not None:
            return " or ".join(repr(x) for x in self.label_names)
        return f"an integer in 0..{self.num_labels - 1}"


GLUE_TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in (
        # Paraphrase pairs, 1 = equivalent.
        GlueTask("mrpc", ("sentence1", "sentence2"), ("label", "id1", "id2", "sentence1", "sentence2"), None, 2),
        # Single sentences, sentiment 0/1; the files keep GLUE's trailing space after each sentence.
        GlueTask("sst2", ("sentence",), ("sentence", "label"), None, 2),
        # Entailment pairs with string labels; the hub's ClassLabel order: entailment 0, not_entailment 1.
        GlueTask("rte", ("sentence1", "sentence2"), ("index", "sentence1", "sentence2", "label"),
                 ("entailment", "not_entailment"), 2),
    )
}


def glue_task(name: str) -> GlueTask | None:
    """The declaration of GLUE task `name` (a `data.name`), or None for a non-GLUE source (synthetic)."""
    return GLUE_TASKS.get(name)
