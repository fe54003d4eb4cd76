"""Lexical report metrics: BLEU-1..4, METEOR, ROUGE-L, in the pycocoevalcap lineage most CXR papers use.

One implementation, named in every table (``IMPLEMENTATION``): texts are tokenised by
pycocoevalcap's PTB tokenizer (Stanford CoreNLP, lower-cased, punctuation removed; Java), then
- BLEU-n is **corpus** BLEU as pycocoevalcap's ``BleuScorer`` computes it (clipped n-gram counts
  summed over the corpus, the "closest" reference length, its 1e-15 / 1e-9 smoothing constants);
- ROUGE-L is the LCS F-measure with beta = 1.2, averaged over reports, as pycocoevalcap's ``Rouge``;
- METEOR is pycocoevalcap's METEOR 1.5 (its Java jar).
BLEU and ROUGE-L are computed natively here (batched n-gram counting and a bit-parallel LCS from
``rewards.text_overlap``), which is what makes scoring fast; tests and
``benchmarks/nlg_metrics.py`` check them against pycocoevalcap's own scorers. Per-report
contributions are kept so bootstrap intervals resample reports without re-tokenising.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np

from rewards.text_overlap import clipped_ngram_matches, lcs_length, reference_from_tokens

IMPLEMENTATION = "pycocoevalcap 1.2 compatible (PTB tokenizer; corpus BLEU, closest ref length; ROUGE-L beta=1.2; METEOR 1.5)"
TINY, SMALL = 1e-15, 1e-9  # pycocoevalcap's BleuScorer constants
ROUGE_BETA = 1.2


class MetricUnavailable(RuntimeError):
    """A metric that cannot be computed here; the message says what is missing and how to get it."""


def ptb_tokenize(texts: list[str]) -> list[str]:
    """pycocoevalcap's PTB tokenisation of each text (space-joined tokens)."""
    if shutil.which("java") is None:
        raise MetricUnavailable("the PTB tokenizer and METEOR need Java: install a JRE (Debian: default-jre-headless; "
                                "conda: openjdk)")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenized = PTBTokenizer().tokenize({i: [{"caption": text}] for i, text in enumerate(texts)})
    return [tokenized[i][0] for i in range(len(texts))]


@dataclass
class BleuCounts:
    """Per-report sufficient statistics of corpus BLEU: summing any subset gives its corpus BLEU."""

    matches: np.ndarray  # [reports, 4] clipped n-gram matches
    guesses: np.ndarray  # [reports, 4] candidate n-grams
    test_lengths: np.ndarray  # [reports]
    reference_lengths: np.ndarray  # [reports] (one reference: the closest is it)

    def score(self, rows: np.ndarray | None = None) -> list[float]:
        pick = slice(None) if rows is None else rows
        matches, guesses = self.matches[pick].sum(axis=0), self.guesses[pick].sum(axis=0)
        test, reference = self.test_lengths[pick].sum(), self.reference_lengths[pick].sum()
        scores, product = [], 1.0
        for order in range(4):
            product *= (matches[order] + TINY) / (guesses[order] + SMALL)
            scores.append(product ** (1.0 / (order + 1)))
        ratio = (test + TINY) / (reference + SMALL)
        if ratio < 1:
            scores = [score * np.exp(1 - 1 / ratio) for score in scores]
        return [float(score) for score in scores]


def bleu_counts(hypotheses: list[str], references: list[str]) -> BleuCounts:
    candidates = [tuple(h.split()) for h in hypotheses]
    prepared = [reference_from_tokens(tuple(r.split())) for r in references]
    matches = clipped_ngram_matches(candidates, prepared, 4)
    lengths = np.array([len(c) for c in candidates], dtype=np.float64)
    guesses = np.maximum(lengths[:, None] - np.arange(4)[None, :], 0)
    return BleuCounts(matches, guesses, lengths, np.array([r.length for r in prepared], dtype=np.float64))


def rouge_l_scores(hypotheses: list[str], references: list[str], beta: float = ROUGE_BETA) -> np.ndarray:
    """Per-report ROUGE-L F-measure (beta 1.2) on space-split tokens, as pycocoevalcap's Rouge."""
    scores = np.zeros(len(hypotheses))
    for index, (hypothesis, reference) in enumerate(zip(hypotheses, references)):
        candidate, target = hypothesis.split(" "), reference.split(" ")
        lcs = lcs_length(tuple(target), tuple(candidate))
        precision, recall = lcs / len(candidate), lcs / len(target)
        if precision and recall:
            scores[index] = (1 + beta**2) * precision * recall / (recall + beta**2 * precision)
    return scores


def meteor_scores(hypotheses: list[str], references: list[str]) -> tuple[float, list[float]]:
    """pycocoevalcap's METEOR 1.5 (corpus score, per-report scores) on tokenised texts."""
    if shutil.which("java") is None:
        raise MetricUnavailable("METEOR needs Java: install a JRE (Debian: default-jre-headless; conda: openjdk)")
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, per_report = scorer.compute_score({i: [r] for i, r in enumerate(references)},
                                                 {i: [h] for i, h in enumerate(hypotheses)})
    finally:
        if hasattr(scorer, "close"):
            scorer.close()
    return float(score), [float(s) for s in per_report]
