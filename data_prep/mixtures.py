"""Deterministic draws: a weighted task mixture of a given size, and XrayBench's fixed composition.

Each (purpose, task) pair has its own random stream derived from the seed, so changing one task's
weight or pool does not reshuffle the others. A pool smaller than its target is taken whole and
the shortfall reported; nothing is drawn twice. With ``fill``, what a short pool cannot give is
spread over the other tasks in proportion to their weights (as far as their pools go), so the set
keeps its size; ``plan_mixture`` computes that plan from pool sizes alone, which is also how the
sizes on the real releases are worked out (``data_prep.release_sizes``).
"""

from __future__ import annotations

import random
from typing import Callable, Sequence, TypeVar

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


def equalize(
    pool: Sequence[T], label: Callable[[T], str | None], classes: tuple[str, ...], seed: int, purpose: str
) -> tuple[list[T], dict[str, int]]:
    """``pool`` with each of ``classes`` drawn down to the smallest one's count (items whose label is
    None or not in ``classes`` kept whole), in pool order, and per class how many were set aside. A
    class with no item sets the others aside whole: the caller asked for balance, and says so."""
    members = {name: [i for i, item in enumerate(pool) if label(item) == name] for name in classes}
    keep = min(len(indices) for indices in members.values())
    dropped = {name: set(indices) - set(draw(indices, keep, seed, f"{purpose}/{name}"))
               for name, indices in members.items()}
    set_aside = set().union(*dropped.values())
    return [item for i, item in enumerate(pool) if i not in set_aside], {name: len(d) for name, d in dropped.items()}


def plan_mixture(
    size: int, weights: dict[str, float], available: dict[str, int], fill: bool,
    ties: tuple[tuple[str, ...], ...] = (),
) -> dict[str, dict]:
    """Per task: its ``target`` by weight, its ``available`` pool and the ``planned`` count drawn.

    Tasks of one tie (e.g. presence questions answered "yes" and "no") keep the ratio of their
    targets: when one is short, the others are cut to match, and none of them takes part in ``fill``.
    """
    targets = integer_targets(size, weights)
    planned = {task: min(targets[task], available.get(task, 0)) for task in weights}
    tied = set()
    for tie in ties:
        members = [task for task in tie if task in weights and targets[task] > 0]
        if not members:
            continue
        scale = min(planned[task] / targets[task] for task in members)
        for task in members:
            planned[task] = int(targets[task] * scale + 1e-9)
        tied.update(members)
    remaining = size - sum(planned.values())
    while fill and remaining > 0:
        room = {task: weights[task] for task in weights
                if weights[task] > 0 and task not in tied and planned[task] < available.get(task, 0)}
        if not room:
            break
        for task, extra in integer_targets(remaining, room).items():  # each round fills a pool or ends
            take = min(extra, available.get(task, 0) - planned[task])
            planned[task] += take
            remaining -= take
    return {task: {"weight": float(weights[task]), "target": targets[task], "available": available.get(task, 0),
                   "planned": planned[task]} for task in weights}


def draw_planned(
    pools: dict[str, Sequence[T]], size: int, weights: dict[str, float], seed: int, purpose: str,
    fill: bool = False, ties: tuple[tuple[str, ...], ...] = (),
) -> tuple[list[tuple[str, T]], dict[str, dict]]:
    """(task, item) pairs following ``plan_mixture``, and that plan."""
    unknown = sorted(set(weights) - set(pools))
    if unknown:
        raise ValueError(f"{purpose}: weights name unknown tasks {unknown}; tasks are {sorted(pools)}")
    plan = plan_mixture(size, weights, {task: len(pools[task]) for task in weights}, fill, ties)
    drawn = []
    for task in sorted(plan):
        drawn.extend((task, item) for item in draw(pools[task], plan[task]["planned"], seed, f"{purpose}/{task}"))
    return drawn, plan


def draw_mixture(
    pools: dict[str, Sequence[T]], size: int, weights: dict[str, float], seed: int, purpose: str
) -> tuple[list[tuple[str, T]], dict[str, dict[str, int]]]:
    """(task, item) pairs following ``weights``, and per task {target, drawn} where it fell short:
    ``draw_planned`` without fill or ties, its plan reduced to the shortfalls."""
    drawn, plan = draw_planned(pools, size, weights, seed, purpose)
    return drawn, {task: {"target": row["target"], "drawn": row["planned"]}
                   for task, row in sorted(plan.items()) if row["planned"] < row["target"]}
