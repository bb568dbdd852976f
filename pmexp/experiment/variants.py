"""The dropout options of the framework (`dropout=<name>`), each declared once.

    python -c "from pmexp.experiment.variants import DROPOUT_OPTIONS; print(DROPOUT_OPTIONS['packed_hooks'])"

The library's `pmexp.dropout.VARIANTS` lists what model surgery can apply; an option here is what an
experiment compares: one of those variants applied by surgery, saved-tensor hooks on torch's own
dropout (`packed_hooks`), or no dropout (`none`). Config validation, the report (which options are
PM-Drop and are judged, in which order they are listed) and maxbatch (what it searches by default)
read this table; `conf/dropout/<name>.yaml` holds the same `variant` and `hooks` (a test checks).
Adding an option is one entry here plus its yaml.
"""

from __future__ import annotations

import dataclasses

__all__ = ["DROPOUT_OPTIONS", "MAXBATCH_DEFAULT", "PMDROP_OPTIONS", "DropoutOption", "option_order"]


@dataclasses.dataclass(frozen=True)
class DropoutOption:
    """One `conf/dropout` option.

    Args:
        name: `dropout.name`, the yaml's file name and what records call the variant.
        variant: the `pmexp.dropout` variant model surgery applies; None: no surgery.
        hooks: torch's dropout stays and saved-tensor hooks keep its masks as bits (`pmexp.masks`).
        pmdrop: a PM-Drop option, judged by the report's success criteria (`standard` is the
            baseline, `none` a no-dropout reference).
    """

    name: str
    variant: str | None
    hooks: bool = False
    pmdrop: bool = True

    @property
    def surgery(self) -> bool:
        """Whether `pmexp.dropout.apply` replaces the model's dropout modules."""
        return self.variant is not None


#: In the order the report lists them: the baseline, the PM-Drop options, no dropout.
DROPOUT_OPTIONS: dict[str, DropoutOption] = {
    o.name: o
    for o in (
        DropoutOption("standard", "standard", pmdrop=False),
        DropoutOption("packed_exact", "packed_exact"),
        DropoutOption("packed", "packed"),
        DropoutOption("seeded", "seeded"),
        DropoutOption("packed_hooks", None, hooks=True),
        DropoutOption("none", None, pmdrop=False),
    )
}
PMDROP_OPTIONS: tuple[str, ...] = tuple(n for n, o in DROPOUT_OPTIONS.items() if o.pmdrop)
#: What `python -m pmexp.maxbatch` searches without --variants: every option applied by surgery.
MAXBATCH_DEFAULT: tuple[str, ...] = tuple(n for n, o in DROPOUT_OPTIONS.items() if o.surgery)


def option_order(name: str | None) -> tuple[int, str]:
    """Sort key: the options in `DROPOUT_OPTIONS` order, then any other name alphabetically."""
    names = list(DROPOUT_OPTIONS)
    text = str(name)
    return (names.index(text) if text in names else len(names)), text
