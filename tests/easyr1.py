"""EasyR1 at the pinned commit, importable on a CPU machine for tests that run its real code.

An installed ``verl`` (a GPU node's environment) is preferred; otherwise the vendored source
``<repo>/../shared/vendor/easyr1-b44b311`` goes on ``sys.path``. EasyR1's imports need ray,
tensordict, codetiming and qwen-vl-utils (pinned in requirements/cpu.in); the only thing stubbed is
vLLM, which has no CPU build: its names import as placeholders that refuse to be used, so the
config dataclasses, data loader, image processing, reward manager and FSDP worker set-up can run,
and any path that would really generate fails loudly instead of pretending.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PINNED_COMMIT = "b44b311"
VENDORED = ROOT.parent / "shared" / "vendor" / "easyr1-b44b311"


class _VllmPlaceholder:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("vLLM is stubbed in this test environment (no CPU build); nothing can generate here")


class _VllmStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``vllm`` and every ``vllm.*`` module to an empty package whose names are placeholders."""

    def find_spec(self, name, path=None, target=None):
        if name == "vllm" or name.startswith("vllm."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__vllm_stub__ = True

        def placeholder(attribute: str):
            if attribute.startswith("__"):
                raise AttributeError(attribute)
            return type(attribute, (_VllmPlaceholder,), {"__module__": spec.name})

        module.__getattr__ = placeholder
        return module

    def exec_module(self, module):
        pass


def import_easyr1(*modules: str):
    """Import EasyR1's ``modules`` (e.g. ``"verl.trainer.config"``) from an installed ``verl``, else the
    vendored copy, or skip. Without vLLM, its names are stubbed only while these modules import: the
    stub is removed again afterwards, so no other code in the session mistakes it for a vLLM install."""
    if importlib.util.find_spec("verl") is None:
        if not (VENDORED / "verl" / "trainer" / "config.py").is_file():
            pytest.skip(f"EasyR1 is neither installed nor vendored at {VENDORED}")
        sys.path.insert(0, str(VENDORED))
    for needed in ("ray", "tensordict", "codetiming", "qwen_vl_utils", "torchdata"):
        if importlib.util.find_spec(needed) is None:
            pytest.fail(f"EasyR1's import {needed!r} is missing: install requirements/cpu.lock")
    stub = _VllmStub() if importlib.util.find_spec("vllm") is None else None
    if stub is not None:
        sys.meta_path.insert(0, stub)
    try:
        return [importlib.import_module(name) for name in ("verl", *modules)]
    finally:
        if stub is not None:
            sys.meta_path.remove(stub)
            for name in [name for name, module in sys.modules.items() if getattr(module, "__vllm_stub__", False)]:
                del sys.modules[name]
