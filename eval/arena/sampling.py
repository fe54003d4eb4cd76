"""Which pair of models to judge next.

- ``uniform``: every pair equally often.
- ``active`` (paper eq. 7): P_t(a) proportional to sqrt(S_aa / n_a) - sqrt(S_aa / (n_a + 1)), the
  expected shrinkage of pair a's standard error if judged once more, where S is the covariance of
  the inverse-propensity win estimates X_t(a) = H_t 1{A_t = a} / P_t(a) and n_a the pair's battles
  so far. Pairs never judged come first.
- ``active_mixed`` (ours): (1 - epsilon) * active + epsilon * uniform. Pure active sampling can give a
  pair probability near zero, and then the one battle it gets carries a weight 1 / P that swamps
  the fit; mixing bounds every weight by K / epsilon (K pairs). ``benchmarks/arena_sampling.py``
  compares the three.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

STRATEGIES = ("uniform", "active", "active_mixed")


class PairSampler:
    def __init__(self, models: int, strategy: str, seed: int, epsilon: float = 0.2):
        if strategy not in STRATEGIES:
            raise ValueError(f"sampling strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.pairs = list(combinations(range(models), 2))
        self.strategy, self.epsilon = strategy, epsilon
        self.rng = np.random.default_rng(seed)
        self.count = np.zeros(len(self.pairs))  # n_a
        self.sum_x = np.zeros(len(self.pairs))  # sum of X_t(a) over t
        self.sum_x2 = np.zeros(len(self.pairs))  # sum of X_t(a)^2
        self.total = 0  # battles so far (T)

    def probabilities(self) -> np.ndarray:
        k = len(self.pairs)
        uniform = np.full(k, 1.0 / k)
        if self.strategy == "uniform":
            return uniform
        unseen = self.count == 0
        if unseen.any():
            active = unseen / unseen.sum()
        else:
            theta = self.sum_x / self.total
            variance = np.maximum(self.sum_x2 / self.total - theta**2, 0.0)
            gain = np.sqrt(variance / self.count) - np.sqrt(variance / (self.count + 1))
            active = gain / gain.sum() if gain.sum() > 0 else uniform
        if self.strategy == "active_mixed":
            return (1 - self.epsilon) * active + self.epsilon * uniform
        return active

    def sample(self, batch: int) -> list[tuple[int, float]]:
        """``batch`` pair indices drawn from the current probabilities, with their propensities."""
        p = self.probabilities()
        chosen = self.rng.choice(len(self.pairs), size=batch, p=p)
        return [(int(a), float(p[a])) for a in chosen]

    def update(self, pair: int, outcome: float, propensity: float) -> None:
        """Record one battle of ``pair`` (outcome from the lower-index model's side)."""
        x = outcome / propensity
        self.count[pair] += 1
        self.sum_x[pair] += x
        self.sum_x2[pair] += x * x
        self.total += 1
