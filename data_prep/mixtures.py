"""Deterministic draws: a weighted task mixture of a given size, and XrayBench's fixed composition.

Each (purpose, task) pair has its own random stream derived from the seed, so changing one task's
weight or pool does not reshuffle the others. A pool smaller than its target is taken whole and
the shortfall reported; nothing is drawn twice.
"""

from __future__ import annotations

import random
from typing import Sequence, TypeVar

T = TypeVar("T")


def integer_targets(size: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``size`` over the keys in proportion to their weights (largest remainder, exact sum)."""
    positive = {key: float(weight) for key, weight in weights.items() if weight > 0}
    if any(weight < 0 for weight in weights.values()):
        raise ValueError(f"mixture weights must not be negative: {weights}")
    if not positive or size <= 0:
        return {key: 0 for key in weights}
    total = sum(positive.values())
    exact = {key: size * weight / total for key, weight in positive.items()}
    targets = {key: int(value) for key, value in exact.items()}
    leftover = size - sum(targets.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - targets[k]), k))[:leftover]:
        targets[key] += 1
    return {key: targets.get(key, 0) for key in weights}


def draw(pool: Sequence[T], count: int, seed: int, purpose: str) -> list[T]:
    """``count`` items of ``pool`` (all of it if smaller), the same ones for the same seed."""
    if count >= len(pool):
        return list(pool)
    rng = random.Random(f"{seed}/{purpose}")
    chosen = sorted(rng.sample(range(len(pool)), count))
    return [pool[i] for i in chosen]


def draw_mixture(
    pools: dict[str, Sequence[T]], size: int, weights: dict[str, float], seed: int, purpose: str
) -> tuple[list[tuple[str, T]], dict[str, dict[str, int]]]:
    """(task, item) pairs following ``weights``, and per task {target, drawn} where it fell short."""
    unknown = sorted(set(weights) - set(pools))
    if unknown:
        raise ValueError(f"{purpose}: weights name unknown tasks {unknown}; tasks are {sorted(pools)}")
    targets = integer_targets(size, weights)
    drawn, shortfalls = [], {}
    for task in sorted(targets):
        items = draw(pools[task], targets[task], seed, f"{purpose}/{task}")
        if len(items) < targets[task]:
            shortfalls[task] = {"target": targets[task], "drawn": len(items)}
        drawn.extend((task, item) for item in items)
    return drawn, shortfalls
