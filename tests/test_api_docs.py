"""The public API's docstrings against its signatures, as `help()` shows them."""

import importlib
import inspect
import re

import pytest

import aekeras

# The public modules whose docstrings are checked against their signatures.
DOCUMENTED = ("analysis", "callbacks", "data", "models", "noise", "registry", "serving", "tflite", "onnx")


def _documented_args(doc):
    """The parameter names an `Args:` section lists (`a, b:` lists both), or None."""
    match = re.search(r"\n([ \t]*)Args:\n(.*?)(?=\n\1\S|\Z)", doc, re.S)
    if match is None:
        return None
    lines = [line for line in match.group(2).split("\n") if line.strip()]
    indent = min(len(line) - len(line.lstrip()) for line in lines)
    names = []
    for line in lines:
        if len(line) - len(line.lstrip()) != indent:
            continue
        head = re.match(r"\s*([*\w, ]+?)\s*(\(.*?\))?:", line)
        if head:
            names += [name.strip().lstrip("*") for name in head.group(1).split(",")]
    return names


def _public_callables():
    for module_name in DOCUMENTED:
        module = importlib.import_module(f"aekeras.{module_name}")
        names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not obj.__module__.startswith("aekeras"):
                continue
            yield f"aekeras.{module_name}.{name}", obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if inspect.isfunction(value) and (not attr.startswith("_") or attr == "__call__"):
                        yield f"aekeras.{module_name}.{name}.{attr}", value


def test_lazy_names_are_listed():
    assert set(aekeras.__all__) <= set(dir(aekeras))
    assert set(aekeras.data.__all__) <= set(dir(aekeras.data))
    assert "naming_undecodable_files" in aekeras.data.__all__
    for name in aekeras.data.__all__:
        getattr(aekeras.data, name)


def test_documented_arguments_are_real():
    wrong = []
    for label, obj in _public_callables():
        doc = obj.__doc__ if not inspect.isclass(obj) or "__doc__" in vars(obj) else None
        documented = _documented_args(doc or "")
        if not documented:
            continue
        target = obj.__init__ if inspect.isclass(obj) else obj
        try:
            parameters = set(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            continue
        unknown = [name for name in documented if name not in parameters]
        if unknown:
            wrong.append(f"{label}: {unknown}")
    assert not wrong, "documented arguments the signature lacks:\n" + "\n".join(wrong)


@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_public_functions_have_docstrings(module_name):
    module = importlib.import_module(f"aekeras.{module_name}")
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    bare = []
    for name in names:
        obj = getattr(module, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith("aekeras"):
            if not inspect.getdoc(obj):
                bare.append(name)
    assert not bare
