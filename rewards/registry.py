"""Reward functions and reward components by name, and users' own by import path or file path.

A *reward function* scores a batch the EasyR1 way: ``fn(reward_inputs: list[dict], **kwargs) ->
list[dict]``. A *component* scores one response: ``fn(response: str, truth: GroundTruth) -> float``;
recipes add components to the DeepMedix reward with weights (``extra_components``).

A spec names one of them as
- a registered name (``deepmedix_r1``, ``format``, ...);
- ``package.module:function`` (importable where the trainer runs);
- ``path/to/file.py:function``, or ``path/to/file.py`` for its function ``main`` (EasyR1's rule;
  a relative path is taken from the current directory, like EasyR1's launch directory).
A spec that does not resolve raises RewardResolutionError saying what was tried, so recipe
validation fails before any trainer starts.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from pathlib import Path
from typing import Callable

from rewards.components import (
    answer_score,
    coordinate_score,
    format_score,
    grounding_score,
    judge_reasoning_boxes,
)
from rewards.frame import Frame
from rewards.ground_truth import GroundTruth
from rewards.response import first_reasoning, last_boxed

ComponentFn = Callable[[str, GroundTruth], float]

# Frame assumed for plain-string ground truths, which carry none (the released code's constant).
DEFAULT_FRAME = Frame(512, 512)


class RewardResolutionError(LookupError):
    """A reward or component spec that names nothing loadable."""


def _answer(response: str, truth: GroundTruth) -> float:
    return answer_score(last_boxed(response), truth)


def _coordinate(response: str, truth: GroundTruth) -> float:
    boxes, left_frame = judge_reasoning_boxes(first_reasoning(response), truth.frame or DEFAULT_FRAME)
    return coordinate_score(len(boxes), left_frame)


def _grounding(response: str, truth: GroundTruth) -> float:
    boxes, _ = judge_reasoning_boxes(first_reasoning(response), truth.frame or DEFAULT_FRAME)
    return grounding_score(boxes, truth.boxes)


REWARD_COMPONENTS: dict[str, ComponentFn] = {
    "answer": _answer,
    "format": lambda response, truth: format_score(response),
    "coordinate": _coordinate,
    "grounding": _grounding,
}

# Built-in reward functions, as import specs so that importing the registry stays cheap.
REWARD_FUNCTIONS: dict[str, Callable | str] = {
    "deepmedix_r1": "rewards.deepmedix:compute_score",
}


def _register(table: dict, kind: str, name: str) -> Callable[[Callable], Callable]:
    def decorator(fn: Callable) -> Callable:
        if name in table and table[name] is not fn:
            raise ValueError(f"a reward {kind} named {name!r} is already registered")
        table[name] = fn
        return fn

    return decorator


def register_component(name: str) -> Callable[[ComponentFn], ComponentFn]:
    """Decorator: make ``fn(response, truth) -> float`` available to recipes by ``name``."""
    return _register(REWARD_COMPONENTS, "component", name)


def register_reward_function(name: str) -> Callable[[Callable], Callable]:
    """Decorator: make an EasyR1-style batch reward function available by ``name``."""
    return _register(REWARD_FUNCTIONS, "function", name)


def load_module_from_file(path: Path):
    """Import a Python file by path under a name of its own (as EasyR1 does with the reward file)."""
    if not path.is_file():
        raise RewardResolutionError(f"reward file {path} does not exist (cwd: {Path.cwd()})")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"reward_file_{path.stem}_{digest}", path)
    if spec is None or spec.loader is None:
        raise RewardResolutionError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise RewardResolutionError(f"importing reward file {path} failed: {error!r}") from error
    return module


def load_callable(spec: str, default_function: str = "main") -> Callable:
    """Resolve ``package.module:function``, ``file.py:function`` or ``file.py`` to a callable."""
    location, _, function_name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    function_name = function_name or default_function
    if location.endswith(".py") or "/" in location:
        module = load_module_from_file(Path(location).expanduser().resolve())
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as error:
            raise RewardResolutionError(f"cannot import module {location!r} named in {spec!r}: {error}") from error
    function = getattr(module, function_name, None)
    if not callable(function):
        available = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise RewardResolutionError(f"{spec!r}: {location} has no function {function_name!r}; it has {available}")
    return function


def resolve_component(spec: str) -> ComponentFn:
    if spec in REWARD_COMPONENTS:
        return REWARD_COMPONENTS[spec]
    if ":" not in spec and not spec.endswith(".py"):
        raise RewardResolutionError(
            f"unknown reward component {spec!r}: registered are {sorted(REWARD_COMPONENTS)}, "
            "or give 'package.module:function' / 'path/to/file.py:function'"
        )
    return load_callable(spec)


def resolve_reward_function(spec: str) -> Callable:
    registered = REWARD_FUNCTIONS.get(spec)
    if callable(registered):
        return registered
    if isinstance(registered, str):
        return load_callable(registered)
    if ":" not in spec and not spec.endswith(".py"):
        raise RewardResolutionError(
            f"unknown reward function {spec!r}: registered are {sorted(REWARD_FUNCTIONS)}, "
            "or give 'package.module:function' / 'path/to/file.py:function'"
        )
    return load_callable(spec)
