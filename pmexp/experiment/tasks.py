"""The GLUE tasks pmexp trains on, each declared once: files, columns, labels, text fields.

    python -c "from pmexp.experiment.tasks import GLUE_TASKS; print(GLUE_TASKS['rte'])"

Config validation (`data.name`, `model.num_labels`), the data loader (`pmexp.experiment.data`: file lookup,
checks, tokenization) and the report read these declarations; nothing else spells a task's columns
or labels. Adding a GLUE task is one entry here plus its `conf/data/<name>.yaml`.
"""

from __future__ import annotations

import dataclasses

__all__ = ["GLUE_TASKS", "SPLITS", "GlueTask", "glue_task"]

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
    """

    name: str
    text_fields: tuple[str, ...]
    columns: tuple[str, ...]
    label_names: tuple[str, ...] | None
    num_labels: int
    label_field: str = "label"

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
