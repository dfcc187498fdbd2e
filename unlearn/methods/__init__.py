"""Unlearning methods, registered by name.

A method is a subclass of :class:`unlearn.methods.base.UnlearnMethod` decorated with :func:`register` in any module
of this package: every module here is imported when the package is, so a new method only adds a file.
"""

from __future__ import annotations

import importlib
import pkgutil

from unlearn.errors import UsageError
from unlearn.methods.base import UnlearnMethod

METHODS: dict[str, type[UnlearnMethod]] = {}


def register(method: type[UnlearnMethod]) -> type[UnlearnMethod]:
    """Class decorator: make ``method`` available as ``--method <method.name>``."""
    if method.name in METHODS and METHODS[method.name] is not method:
        raise ValueError(f"two unlearning methods are named {method.name!r}")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> type[UnlearnMethod]:
    """The method class registered as ``name``; a UsageError listing the known methods otherwise."""
    if name not in METHODS:
        raise UsageError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
