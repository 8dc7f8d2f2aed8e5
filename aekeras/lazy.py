"""Package attributes loaded from their modules when first used (PEP 562).

What the command line reads from a package (built-in data names, a run's
settings) is then there without TensorFlow, which the rest loads.
"""

import importlib
import sys


def lazy_attributes(package, modules):
    """`(__getattr__, __dir__)` for `package`, each name in `modules` loaded from `package.<modules[name]>`."""

    def __getattr__(name):
        if name in modules:
            return getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        # The names loaded when first used, for dir(), tab completion and help().
        module = sys.modules[package]
        return sorted({*vars(module), *module.__all__})

    return __getattr__, __dir__
