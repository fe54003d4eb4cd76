"""The DeepMedix-R1 GRPO reward: r = (1 - lambda) * r_ans + lambda * r_form + r_coo (paper, Methods).

``compute_score`` has EasyR1's batch signature; ``rewards/easyr1_entry.py`` exposes it to EasyR1 and
``rewards/trl_adapter.py`` to TRL. Every weight is a keyword argument, so a recipe sets it through
``worker.reward.reward_function_kwargs`` (EasyR1) and an ablation overrides it on the command line.

Each result dict holds finite floats only, since EasyR1 averages and logs every key:
``overall``, ``answer`` (already weighted by ``answer_weight``), ``format``, ``coordinate``,
``grounding`` (unweighted; counts only with ``grounding_weight`` > 0), ``boxes`` (distinct valid
boxes in the reasoning), ``out_of_frame`` (1 if a box left the image), ``invalid_ground_truth``
(1 if the ground truth could not be read: the response then scores 0), and ``extra_<name>`` for
each extra component.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from rewards.components import (
    answer_scores,
    coordinate_score,
    count_reasoning_boxes,
    grounding_score,
    judge_reasoning_boxes,
)
from rewards.frame import Frame
from rewards.ground_truth import GroundTruth, GroundTruthError, parse_ground_truth
from rewards.registry import ComponentFn, RewardResolutionError, resolve_component
from rewards.response import parse_response

PRESETS = ("paper", "upstream")


class RewardConfigError(ValueError):
    """Reward keyword arguments that cannot configure the reward (raised at config time)."""


@dataclass(frozen=True)
class RewardConfig:
    preset: str = "paper"  # "paper" (eq. 4-6) or "upstream" (the released reward.py, exactly)
    answer_weight: float = 1.5  # paper eq. 4
    format_weight: float = 0.1  # lambda; paper: "set to 0.1 as the default"
    coordinate_per_box: float = 0.05  # paper eq. 5
    coordinate_cap: float = 0.15  # paper eq. 5 (a cap: see components.coordinate_score)
    out_of_frame_penalty: float = -0.2  # phi, paper eq. 5
    grounding_weight: float = 0.0  # beyond the paper: opt-in IoU grounding against MS-CXR boxes
    grounding_iou: float = 0.5  # IoU a predicted box needs to match a ground-truth box
    default_frame: int = 512  # square frame for plain-string ground truths (the released constant)
    extra_components: dict[str, float] = field(default_factory=dict)  # spec -> weight

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> "RewardConfig":
        """Build from reward kwargs, rejecting unknown names, wrong types and unusable values."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise RewardConfigError(f"unknown reward kwargs {unknown}; known: {sorted(known)}")
        values = dict(kwargs)
        for name, value in values.items():
            if name in ("preset", "extra_components", "default_frame"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RewardConfigError(f"reward kwarg {name} must be a finite number, got {value!r}")
            values[name] = float(value)
        config = cls(**values)
        config._check()
        return config

    def _check(self) -> None:
        if self.preset not in PRESETS:
            raise RewardConfigError(f"preset must be one of {list(PRESETS)}, got {self.preset!r}")
        if not 0.0 <= self.format_weight <= 1.0:
            raise RewardConfigError(f"format_weight (lambda) must lie in [0, 1], got {self.format_weight}")
        if not 0.0 < self.grounding_iou <= 1.0:
            raise RewardConfigError(f"grounding_iou must lie in (0, 1], got {self.grounding_iou}")
        if isinstance(self.default_frame, bool) or not isinstance(self.default_frame, int) or self.default_frame <= 0:
            raise RewardConfigError(f"default_frame must be a positive integer, got {self.default_frame!r}")
        if not isinstance(self.extra_components, Mapping):
            raise RewardConfigError("extra_components must map component specs to weights")
        if self.preset == "upstream":
            changed = sorted(
                f.name
                for f in fields(self)
                if f.name not in ("preset", "format_weight") and getattr(self, f.name) != getattr(RewardConfig(), f.name)
            )
            if changed:
                raise RewardConfigError(f"preset 'upstream' reproduces the released reward and takes only "
                                        f"format_weight; also given: {changed}")
        for spec, weight in self.extra_components.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise RewardConfigError(f"weight of extra component {spec!r} must be a finite number")
            try:
                resolve_component(spec)
            except RewardResolutionError as error:
                raise RewardConfigError(str(error)) from error

    def overall_range(self) -> tuple[float, float]:
        """The least and most ``overall`` can be: what filter bounds (EasyR1's ``online_filtering``)
        must be set against. Paper preset: answer in [0, answer_weight], format in [0, 1], coordinate in
        [min(phi, 0), cap], grounding in [0, 1]. The released reward's coordinate term has no lower
        bound (each box outside the image costs 0.2), and extra components have no known range."""
        weights = (1 - self.format_weight) * self.answer_weight, self.format_weight, self.grounding_weight
        most = sum(max(weight, 0.0) for weight in weights) + max(self.coordinate_cap, 0.0)
        least = sum(min(weight, 0.0) for weight in weights) + min(self.out_of_frame_penalty, 0.0)
        if self.preset == "upstream":
            least = -math.inf
        if self.extra_components:
            least, most = -math.inf, math.inf
        return least, most

    def components(self) -> list[tuple[str, ComponentFn, float]]:
        """Resolved extra components as (logged key, function, weight); the key is
        ``extra_`` + the spec with every non-alphanumeric character replaced by ``_``."""
        return [
            ("extra_" + re.sub(r"[^0-9A-Za-z]+", "_", spec).strip("_"), resolve_component(spec), float(weight))
            for spec, weight in self.extra_components.items()
        ]


SCORE_KEYS = ("overall", "answer", "format", "coordinate", "grounding", "boxes", "out_of_frame", "invalid_ground_truth")


def _finite(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def score_batch(
    responses: list[Any],
    ground_truths: list[Any],
    config: RewardConfig,
    extras: list[tuple[str, ComponentFn, float]] | None = None,
) -> list[dict[str, float]]:
    """All reward terms for each (response, ground truth). Our terms never raise, whatever the
    responses or ground truths; an exception from a user's extra component propagates (a bug to
    see, not to hide).

    Scored as a batch: a GRPO batch holds n rollouts per prompt, so an identical (response, ground
    truth) is scored once and each distinct ground truth read once; the batch's boxes are judged
    and its report n-grams counted all at once. What is shared lives for this call only: no memory
    grows over a run. Extra components are called for every response.
    """
    extras = config.components() if extras is None else extras
    keys = SCORE_KEYS + tuple(key for key, _, _ in extras)
    if len(responses) != len(ground_truths):
        raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
    pairs, slots = _distinct_pairs(responses, ground_truths)
    texts = [response if isinstance(response, str) else "" for response, _ in pairs]
    truths = _read_ground_truths([raw_truth for _, raw_truth in pairs])
    readable = [slot for slot, truth in enumerate(truths) if truth is not None]
    shared: list[dict[str, float]] = [{}] * len(pairs)  # per distinct pair, every key in SCORE_KEYS order
    if config.preset == "upstream":
        from rewards import upstream  # nltk and rouge-score load only for this preset

        for slot in readable:
            shared[slot] = dict.fromkeys(keys, 0.0)
            shared[slot].update(upstream.score(texts[slot], truths[slot], config.format_weight))
    else:
        terms = _paper_batch([texts[slot] for slot in readable], [truths[slot] for slot in readable], config)
        for slot, response_terms in zip(readable, terms):
            shared[slot] = response_terms
            if extras:
                response_terms.update(dict.fromkeys(keys[len(SCORE_KEYS) :], 0.0))
    for slot, truth in enumerate(truths):
        if truth is None:
            shared[slot] = dict.fromkeys(keys, 0.0)
            shared[slot]["invalid_ground_truth"] = 1.0
    if not extras:
        _guard_overall(shared)
        return [shared[slot].copy() for slot in slots]
    results = [shared[slot].copy() for slot in slots]
    for result, slot in zip(results, slots):
        if truths[slot] is not None:
            for key, function, weight in extras:
                value = _finite(function(texts[slot], truths[slot]))
                result[key] = value
                result["overall"] += weight * value
    _guard_overall(results)
    return results


def _guard_overall(results: list[dict[str, float]]) -> None:
    """Each term is finite by construction (bounded scores, finite weights); a user's component may
    not be, and huge weights could overflow the sum, so ``overall`` is guarded before EasyR1 logs it."""
    for result in results:
        overall = result["overall"]
        if type(overall) is not float or not math.isfinite(overall):
            result["overall"] = _finite(overall)


def _distinct_pairs(responses: list[Any], ground_truths: list[Any]) -> tuple[list[tuple[Any, Any]], list[int]]:
    """(the distinct (response, ground truth) pairs, first seen first; each input's pair index),
    found in C by a dict. Unhashable inputs (never valid, but possible) are each their own pair."""
    try:
        index_of = dict.fromkeys(zip(responses, ground_truths))
    except TypeError:
        return list(zip(responses, ground_truths)), list(range(len(responses)))
    pairs = list(index_of)
    index_of.update(zip(pairs, range(len(pairs))))
    return pairs, list(map(index_of.__getitem__, zip(responses, ground_truths)))


def _read_ground_truths(raw_truths: list[Any]) -> list[GroundTruth | None]:
    """Each ground truth read, None where unreadable; each distinct one read once (n rollouts of a
    prompt share it)."""
    try:
        truth_of = dict.fromkeys(raw_truths)
    except TypeError:  # unhashable: not a string, so unreadable
        return [_read_ground_truth(raw_truth) for raw_truth in raw_truths]
    for raw_truth in truth_of:
        truth_of[raw_truth] = _read_ground_truth(raw_truth)
    return list(map(truth_of.__getitem__, raw_truths))


def _read_ground_truth(raw_truth: Any) -> GroundTruth | None:
    try:
        return parse_ground_truth(raw_truth)  # not a string: GroundTruthError too
    except GroundTruthError:
        return None


def score_response(response: Any, ground_truth: Any, config: RewardConfig, extras=None) -> dict[str, float]:
    return score_batch([response], [ground_truth], config, extras)[0]


def _paper_batch(texts: list[str], truths: list[GroundTruth], config: RewardConfig) -> list[dict[str, float]]:
    """The paper's terms for each (response, ground truth) of a batch (distinct pairs).

    ``answer_scores`` scores each distinct (answer, reference) once, since short VQA answers
    repeat across a group. The terms are combined with numpy, the same IEEE operations in the same
    order as for one response.
    """
    parts = [parse_response(text) for text in texts]
    raw_answers = np.array(answer_scores([part.answer for part in parts], truths), dtype=np.float64)
    default_frame = Frame(config.default_frame, config.default_frame)
    frames = [truth.frame or default_frame for truth in truths]
    box_counts, left_frame = count_reasoning_boxes([part.reasoning for part in parts], frames)
    form = np.array([0.0 if part.format_problem else 1.0 for part in parts])  # eq. 6, as components.format_score
    coordinate = [
        coordinate_score(count, left, config.coordinate_per_box, config.coordinate_cap, config.out_of_frame_penalty)
        for count, left in zip(box_counts, left_frame)
    ]
    if config.grounding_weight:
        grounding = np.array([
            grounding_score(judge_reasoning_boxes(part.reasoning, frame)[0], truth.boxes, config.grounding_iou)
            for part, frame, truth in zip(parts, frames, truths)
        ], dtype=np.float64)
    else:
        grounding = np.zeros(len(texts))
    with np.errstate(over="ignore", invalid="ignore"):  # huge weights: inf, guarded by score_batch
        answer = config.answer_weight * raw_answers
        overall = ((1 - config.format_weight) * answer + config.format_weight * form
                   + np.array(coordinate, dtype=np.float64) + config.grounding_weight * grounding)
    return [
        {"overall": o, "answer": a, "format": f, "coordinate": c, "grounding": g, "boxes": float(b),
         "out_of_frame": float(left), "invalid_ground_truth": 0.0}  # SCORE_KEYS, in order
        for o, a, f, c, g, b, left in zip(overall.tolist(), answer.tolist(), form.tolist(), coordinate,
                                          grounding.tolist(), box_counts, left_frame)
    ]


def compute_score(reward_inputs: list[dict[str, Any]], *legacy_args: Any, **kwargs: Any) -> list[dict[str, float]]:
    """EasyR1 batch reward: one dict per ``{"response", "response_length", "ground_truth"}`` input."""
    if legacy_args or not isinstance(reward_inputs, list) or not all(isinstance(i, dict) for i in reward_inputs):
        raise TypeError(
            "compute_score expects EasyR1's batch input, a list of dicts with 'response' and 'ground_truth' "
            "(EasyR1 after mid-2025). The old (predicts, ground_truths) signature is not supported."
        )
    config = RewardConfig.from_kwargs(kwargs)
    return score_batch(
        [item.get("response", "") for item in reward_inputs],
        [item.get("ground_truth") for item in reward_inputs],
        config,
    )


def make_scorer(**kwargs: Any) -> Callable[[str, str], dict[str, float]]:
    """A configured single-response scorer (validates ``kwargs`` once)."""
    config = RewardConfig.from_kwargs(kwargs)
    extras = config.components()
    return lambda response, ground_truth: score_response(response, ground_truth, config, extras)
