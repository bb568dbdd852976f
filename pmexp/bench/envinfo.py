"""Machine, versions and commit, written beside every number pmexp records."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch

__all__ = ["env_info", "git_commit"]


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (with ``+dirty`` when files changed), or None outside git."""
    root = root or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
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
