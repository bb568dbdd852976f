"""How a job can end other than ok, besides an exception: divergence, a signal, an injected fault.

    python -m pmexp.train trainer.fault=oom trainer.max_steps=2 logger=none   # an OOM recorded as `oom`

`Diverged` (the loss or gradient norm stopped being finite) and `JobKilled` (SIGTERM/SIGINT) are
raised inside the loop and turned into the record's status by `pmexp.experiment.job`;
`inject_fault` makes the failures a sweep must survive happen on demand, on any machine.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["Diverged", "JobKilled", "check_finite", "inject_fault", "signals_raise_killed"]

log = logging.getLogger(__name__)


class Diverged(Exception):
    """The loss or the gradient norm stopped being finite (recorded as `diverged`, with the step)."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(f"{what} at step {step}")
        self.step = step


def check_finite(step: int, loss: float, grad_norm: float, scaler: bool) -> None:
    """Raise `Diverged` for a non-finite loss, or gradient norm (unless a GradScaler skips those steps).

    Costs no sync: both are Python floats already read for the step's row."""
    if not math.isfinite(loss):
        raise Diverged(step, f"the loss is {loss}")
    if not scaler and not math.isfinite(grad_norm):
        raise Diverged(step, f"the gradient norm is {grad_norm}")


class JobKilled(BaseException):
    """SIGTERM or SIGINT arrived. A BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"killed by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def signals_raise_killed() -> Iterator[None]:
    """Turn SIGTERM/SIGINT into `JobKilled` while a job runs (main thread only; others keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise JobKilled(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def inject_fault(fault: str | None) -> None:
    """Fail as `trainer.fault` says, so a sweep's fault handling can be tested on any machine.

    Why: a real CUDA OOM or a scheduler's SIGTERM cannot be summoned on demand (nor on a CPU); these
    take the same paths through `train` as the real ones: `oom` raises the exception torch raises,
    `sigterm` signals this process so the installed handler records `killed` and exits; `kill9`
    SIGKILLs it (nothing can record that: the record stays `running` until a resume finds it);
    `nan` (in the loop's `train_step`) makes the loss NaN from the second step on.

    Raises:
        torch.OutOfMemoryError: fault is "oom".
    """
    if fault == "oom":
        raise torch.OutOfMemoryError("injected by trainer.fault=oom")
    if fault in ("sigterm", "kill9"):
        sig = signal.SIGTERM if fault == "sigterm" else signal.SIGKILL
        log.warning("trainer.fault=%s: sending %s to this process (pid %d)", fault, sig.name, os.getpid())
        os.kill(os.getpid(), sig)
