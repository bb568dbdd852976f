"""Machine, versions and commit, written beside every number pmexp records."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

__all__ = ["env_info", "git_commit"]


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (with ``+dirty`` when tracked files changed), or None outside git.

    ``PMEXP_COMMIT`` wins when set: a copy of the tree without ``.git`` (the GPU machine's) is
    told its commit that way.
    """
    if os.environ.get("PMEXP_COMMIT"):
        return os.environ["PMEXP_COMMIT"]
    root = root or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def env_info() -> dict[str, str | None]:
    """Device name, torch / transformers / triton / python versions, CUDA version, commit."""
    def version(module: str) -> str | None:
        try:
            return __import__(module).__version__
        except ImportError:
            return None

    return {
        "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": version("transformers"),
        "triton": version("triton") if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "pmexp_commit": git_commit(),
    }
