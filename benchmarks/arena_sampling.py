"""Report Arena sampling: judgments needed to rank 10 simulated models, uniform vs active sampling.

Ten models with known Bradley-Terry strengths (evenly spaced over [-1.5, 1.5]); each battle's
outcome is drawn from the BT probability of the pair's true strengths. For every strategy and seed,
battles arrive in rounds of 50; after each round we fit BT (inverse-propensity weighted for the
active strategies; with the weights clipped at ``--clip`` where given) and record the first budget at
which (a) Kendall's tau with the true order is >= 0.9 and (b) the mean 95% sandwich-CI half-width
of the scores is <= 0.1. Prints the median and interquartile range over seeds, side by side, and
the largest inverse-propensity weight each strategy produced.

    python benchmarks/arena_sampling.py [--seeds 20] [--budget 20000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.arena.bradley_terry import Battles, fit, sandwich_intervals  # noqa: E402
from eval.arena.sampling import PairSampler  # noqa: E402

MODELS = 10
TRUTH = np.linspace(-1.5, 1.5, MODELS)


def simulate(strategy: str, seed: int, budget: int, clip: float | None, round_size: int = 50, check_every: int = 200):
    sampler = PairSampler(MODELS, strategy, seed)
    rng = np.random.default_rng(seed + 10_000)
    first, second, outcome, propensity = [], [], [], []
    reached_tau = reached_ci = None
    while len(outcome) < budget and (reached_tau is None or reached_ci is None):
        for pair, p in sampler.sample(round_size):
            i, j = sampler.pairs[pair]
            h = float(rng.random() < expit(TRUTH[i] - TRUTH[j]))
            sampler.update(pair, h, p)
            first.append(i), second.append(j), outcome.append(h), propensity.append(p)
        if len(outcome) % check_every:
            continue
        battles = Battles(np.array(first), np.array(second), np.array(outcome), np.array(propensity))
        weighted = strategy != "uniform"
        scores = fit(battles, MODELS, weighted, clip)
        if reached_tau is None and kendalltau(scores, TRUTH).statistic >= 0.9:
            reached_tau = len(outcome)
        if reached_ci is None:
            intervals = sandwich_intervals(scores, battles, weighted, clip)
            if np.mean((intervals[:, 1] - intervals[:, 0]) / 2) <= 0.1:
                reached_ci = len(outcome)
    return reached_tau, reached_ci, float(np.max(1 / np.array(propensity)))


def summary(values: list[int | None], budget: int) -> str:
    reached = [v for v in values if v is not None]
    if not reached:
        return f"{'not reached':>22s}"
    q1, median, q3 = np.percentile(reached, [25, 50, 75])
    missing = len(values) - len(reached)
    return f"{median:7.0f} [{q1:5.0f}, {q3:5.0f}]" + (f" ({missing} >{budget})" if missing else "      ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=20_000)
    args = parser.parse_args()
    settings = [("uniform", None), ("active", None), ("active", 50.0), ("active_mixed", None)]
    print(f"{MODELS} models, {args.seeds} seeds; judgments to reach a target: median [IQR]\n")
    print(f"{'strategy':32s} {'Kendall tau >= 0.9':>24s} {'mean CI half-width <= 0.1':>30s} {'max weight':>11s}")
    for strategy, clip in settings:
        runs = [simulate(strategy, seed, args.budget, clip) for seed in range(args.seeds)]
        label = strategy + (f" (weights clipped at {clip:g})" if clip else "")
        print(f"{label:32s} {summary([r[0] for r in runs], args.budget):>24s} "
              f"{summary([r[1] for r in runs], args.budget):>30s} {max(r[2] for r in runs):11.1f}")


if __name__ == "__main__":
    main()
