"""The errors a config can raise, in a module of their own so config and models need not import each other."""

from __future__ import annotations

__all__ = ["ConfigError", "ModelConfigError"]


class ConfigError(ValueError):
    """A composed config is invalid; the message names the key and what to pass instead."""


class ModelConfigError(ConfigError):
    """`model.config` names a key the transformers config class does not have."""
