"""Bradley-Terry scores from battles, weighted by inverse propensity (paper eq. 8), with intervals.

Battle t compares models i_t and j_t with outcome h_t in [0, 1] (1: i_t's report is better, 0.5: a
tie, counted as half a win each way; Report Arena averages the two presentation orders of one
drawn pair into one battle, so the battles are independent draws) and weight w_t = 1 / P(A_t), the inverse of the
probability with which the pair was sampled. The fit minimises sum_t w_t * CE(h_t, sigmoid(xi_i -
xi_j)) (written here: a dozen lines of numpy/scipy; no library fits weighted, tie-aware BT with
sandwich errors) with the scores centred (sum zero: BT is shift invariant). Intervals:
- sandwich (Huber-White, as LMArena): V = H^-1 G H^-1 from the per-battle gradients;
- bootstrap: battles resampled with replacement, refit, percentile interval.
Scores are also given on [0, 1] as the paper reports them ("normalized to the [0, 1] range using
max-absolute scaling"; ``normalized``), and on the Elo scale (400 / ln 10 * s + 1000).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

ELO_SCALE, ELO_BASE = 400 / np.log(10), 1000.0


@dataclass
class Battles:
    first: np.ndarray  # model index shown as A
    second: np.ndarray  # model index shown as B
    outcome: np.ndarray  # 1: A better, 0.5: tie, 0: B better
    propensity: np.ndarray  # probability with which the pair was sampled (1 for uniform designs)

    def __len__(self) -> int:
        return len(self.outcome)

    def subset(self, rows: np.ndarray) -> "Battles":
        return Battles(self.first[rows], self.second[rows], self.outcome[rows], self.propensity[rows])


def _loss_and_gradient(free: np.ndarray, battles: Battles, weights: np.ndarray, models: int):
    scores = np.append(free, -free.sum())  # centred: the last score is minus the others' sum
    p = expit(scores[battles.first] - scores[battles.second])
    eps = 1e-12
    loss = -np.sum(weights * (battles.outcome * np.log(p + eps) + (1 - battles.outcome) * np.log(1 - p + eps)))
    residual = weights * (p - battles.outcome)
    gradient = np.bincount(battles.first, residual, models) - np.bincount(battles.second, residual, models)
    return loss, gradient[:-1] - gradient[-1]


def battle_weights(battles: Battles, weighted: bool, clip: float | None) -> np.ndarray:
    """Inverse-propensity weights (eq. 8), optionally clipped at ``clip``, scaled to mean 1 (only
    their ratios matter); all ones when unweighted."""
    weights = 1.0 / battles.propensity if weighted else np.ones(len(battles))
    if clip is not None:
        weights = np.minimum(weights, clip)
    return weights / weights.mean()


def fit(battles: Battles, models: int, weighted: bool = True, clip: float | None = None) -> np.ndarray:
    """Centred BT scores; ``weighted``: inverse-propensity weights (eq. 8), optionally clipped at ``clip``."""
    weights = battle_weights(battles, weighted, clip)
    result = minimize(_loss_and_gradient, np.zeros(models - 1), args=(battles, weights, models), jac=True,
                      method="L-BFGS-B")
    return np.append(result.x, -result.x.sum())


def sandwich_intervals(scores: np.ndarray, battles: Battles, weighted: bool = True, clip: float | None = None,
                       z: float = 1.959964) -> np.ndarray:
    """``[models, 2]`` Huber-White 95% intervals around ``scores`` (centred parametrisation)."""
    models = len(scores)
    weights = battle_weights(battles, weighted, clip)
    design = np.zeros((len(battles), models))
    rows = np.arange(len(battles))
    design[rows, battles.first] += 1
    design[rows, battles.second] -= 1
    design = design[:, :-1] - design[:, -1:]  # the centred parametrisation
    p = expit(scores[battles.first] - scores[battles.second])
    hessian = (design * (weights * p * (1 - p))[:, None]).T @ design
    scores_per_battle = design * (weights * (p - battles.outcome))[:, None]
    meat = scores_per_battle.T @ scores_per_battle
    bread = np.linalg.pinv(hessian)
    covariance_free = bread @ meat @ bread
    lift = np.vstack([np.eye(models - 1), -np.ones((1, models - 1))])  # free -> all scores
    variance = np.clip(np.diag(lift @ covariance_free @ lift.T), 0, None)
    half = z * np.sqrt(variance)
    return np.stack([scores - half, scores + half], axis=1)


def bootstrap_intervals(battles: Battles, models: int, rounds: int, seed: int, weighted: bool = True,
                        clip: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    samples = np.array([fit(battles.subset(rng.integers(0, len(battles), len(battles))), models, weighted, clip)
                        for _ in range(rounds)])
    return np.stack([np.percentile(samples, 2.5, axis=0), np.percentile(samples, 97.5, axis=0)], axis=1)


def normalised(scores: np.ndarray) -> np.ndarray:
    """Max-absolute scaling, s / max|s|, in [-1, 1] (the centred scores' sign is kept)."""
    peak = np.abs(scores).max()
    return scores / peak if peak else scores


def normalized(scores: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] as the paper reports them: max-absolute scaling of the centred scores, then the
    affine map of [-1, 1] onto [0, 1]: (1 + s / max|s|) / 2. The paper names max-absolute scaling and
    the [0, 1] range but not how one gives the other; this map keeps score differences proportional,
    puts the average model (score 0) at 0.5 and the model farthest from it at 0 or 1. All scores
    equal: 0.5 each."""
    return (1.0 + normalised(scores)) / 2.0


def elo(scores: np.ndarray) -> np.ndarray:
    return ELO_SCALE * scores + ELO_BASE


def ranks(scores: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Rank = 1 + number of models whose interval lies entirely above this model's (ties share a rank)."""
    return np.array([1 + int(np.sum(intervals[:, 0] > intervals[i, 1])) for i in range(len(scores))])
