"""The destination types and their modules: `webhook` (HTTP, the default) and the brokers.

A broker type's module (`causeflow.webhook.destinations.<type>`) is imported by name, lazily,
the first time a subscription of that type is delivered to: its broker client is an optional
extra, and a process serving only webhooks never loads one. `available` tells whether a type's
module (and so its client) can be loaded here.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from causeflow.webhook.destinations.options import SPECS

WEBHOOK = "webhook"
BROKER_TYPES: tuple[str, ...] = tuple(SPECS)
TYPES: tuple[str, ...] = (WEBHOOK, *BROKER_TYPES)
_PACKAGE = "causeflow.webhook.destinations"


class Unsupported(Exception):
    """The type's module or its broker client is not installed in this process."""


def module_name(type_: str) -> str:
    if type_ not in SPECS:
        raise Unsupported(f"unknown destination type {type_!r}")
    return f"{_PACKAGE}.{type_}"


def has_module(type_: str) -> bool:
    """Whether the type's module exists (its client may still be missing)."""
    try:
        return importlib.util.find_spec(module_name(type_)) is not None
    except (Unsupported, ImportError, ValueError):
        return False


def load(type_: str) -> ModuleType:
    """The type's module, imported on first use; `Unsupported` when it or its client is absent."""
    name = module_name(type_)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        extra = SPECS[type_].extra
        raise Unsupported(
            f"the {type_} destination is not installed here (pip install 'causeflow[{extra}]')"
        ) from exc


def available(type_: str) -> bool:
    """Whether a subscription of this type can be delivered to by this process."""
    try:
        load(type_)
    except Unsupported:
        return False
    return True
