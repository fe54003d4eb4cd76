"""Booleans in the project's configs and command lines: real booleans only, checked in one place.

A Hydra override ``teacher.allow_remote_endpoint=no`` arrives as the *string* ``"no"``, which
Python's truthiness reads as true: an opt-in (sending credentialed data to a remote endpoint, a
forced rerun) would be switched on by a word meant to switch it off. So every boolean the project
reads from a config (data build, cold start, evaluation, training run, viewer) goes through
``config_bool``: ``true``/``false`` (YAML, Hydra) pass; a string, a number or null is an error that
names the key. The trainers' own recipe keys are checked by ``training.check``. Counts go through
``check_counts`` the same way (``limit=-1`` or ``batch_size=0`` is an error, not a shortened run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ConfigValueError(ValueError):
    """A config value of the wrong kind; the message names the key."""


def config_bool(value: Any, name: str) -> bool:
    """``value`` if it is a real boolean, else ``ConfigValueError`` naming ``name``."""
    if isinstance(value, bool):
        return value
    hint = " (a string is not a boolean: write true or false, unquoted)" if isinstance(value, str) else ""
    raise ConfigValueError(f"{name} must be true or false, got {value!r} ({type(value).__name__}){hint}")


def _dotted(config: Any, name: str) -> tuple[bool, Any]:
    """(whether ``config`` holds the dotted key ``name``, its value): absent keys are not checked."""
    node: Any = config
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_booleans(config: Any, names: Iterable[str], where: str = "") -> None:
    """Check each dotted key of ``names`` that ``config`` (a mapping or an OmegaConf config) holds
    with ``config_bool``; ``where`` (a file or command) prefixes the key in the message."""
    for name in names:
        found, node = _dotted(config, name)
        if found:
            config_bool(node, f"{where}: {name}" if where else name)


def check_counts(config: Any, lowest: Mapping[str, int], optional: Iterable[str] = ()) -> None:
    """Each dotted key of ``lowest`` that ``config`` holds must be an integer >= its value (a bool is
    not one; a key in ``optional`` may be null): ``ConfigValueError`` naming the key otherwise. A
    count of -1 or 0 typed by mistake would otherwise build or run an empty or shortened set."""
    optional = set(optional)
    for name, least in lowest.items():
        found, node = _dotted(config, name)
        if found and not (node is None and name in optional):
            if type(node) is not int or node < least:
                raise ConfigValueError(f"{name} must be an integer >= {least}{' or null' if name in optional else ''}, "
                                       f"got {node!r}")
