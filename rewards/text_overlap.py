"""Word-level sentence BLEU and ROUGE-L for the open-ended (report) answer score.

Definitions, chosen so results equal the field's reference implementations on the same tokens
(tests/rewards/test_text_overlap.py checks both on random reports):
- tokens: lower-cased runs of ``[a-z0-9]``, exactly rouge-score's tokenizer without stemming;
- BLEU-n: nltk ``sentence_bleu`` with one reference, uniform weights up to n and Lin & Och's
  add-one smoothing (``SmoothingFunction().method2``, the smoothing the released reward uses);
- ROUGE-L: LCS F1 (precision = LCS / candidate length, recall = LCS / reference length), as
  rouge-score's ``rougeL`` ``fmeasure``.

Written here rather than calling nltk and rouge-score per response because a GRPO step scores
thousands of responses: nltk builds Fractions and Counters per n-gram order per call and
rouge-score fills an O(n*m) Python table. Here the reference's n-gram counts are computed once per
reference (cached: a GRPO group shares it), both BLEU orders share one pass, and the LCS uses the
bit-parallel algorithm (Allison & Dix 1986; Hyyro 2004) on Python integers, so a 100 KB response
costs milliseconds. ``benchmarks/reward_throughput.py`` measures the difference.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

_TOKEN = re.compile(r"[a-z0-9]+")
MAX_ORDER = 4


def word_tokens(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(text.lower()))


def _ngram_counts(tokens: tuple[str, ...], order: int) -> Counter:
    if order == 1:
        return Counter(tokens)
    return Counter(zip(*(tokens[i:] for i in range(order))))


@dataclass(frozen=True)
class Reference:
    """A reference text prepared once: its tokens, n-gram counts and LCS match masks."""

    tokens: tuple[str, ...]
    ngram_counts: tuple[Counter, ...]  # index k holds the (k+1)-gram counts

    @property
    def length(self) -> int:
        return len(self.tokens)


@lru_cache(maxsize=4096)
def prepare_reference(text: str) -> Reference:
    tokens = word_tokens(text)
    return Reference(tokens, tuple(_ngram_counts(tokens, n) for n in range(1, MAX_ORDER + 1)))


def _clipped_matches(candidate: tuple[str, ...], reference: Reference, order: int) -> tuple[int, int]:
    """(clipped n-gram matches, candidate n-gram count) for one order."""
    if len(candidate) < order:
        return 0, 0
    counts = _ngram_counts(candidate, order)
    reference_counts = reference.ngram_counts[order - 1]
    matches = sum(min(count, reference_counts[gram]) for gram, count in counts.items() if gram in reference_counts)
    return matches, len(candidate) - order + 1


def sentence_bleu_scores(candidate: tuple[str, ...], reference: Reference, orders=(1, 4)) -> tuple[float, ...]:
    """BLEU-n for each n in ``orders`` (uniform weights), add-one smoothed for orders above 1."""
    top = max(orders)
    matched = [_clipped_matches(candidate, reference, n) for n in range(1, top + 1)]
    if matched[0][0] == 0:  # no unigram in common: BLEU is 0 whatever the smoothing
        return tuple(0.0 for _ in orders)
    log_precisions = []
    for n, (matches, total) in enumerate(matched, start=1):
        denominator = max(1, total)
        if n > 1:  # add-one smoothing leaves unigrams alone
            matches, denominator = matches + 1, denominator + 1
        log_precisions.append(math.log(matches / denominator) if matches else None)
    hyp_len, ref_len = len(candidate), reference.length
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    scores = []
    for order in orders:
        terms = [lp / order for lp in log_precisions[:order] if lp is not None]
        scores.append(brevity * math.exp(math.fsum(terms)))
    return tuple(scores)


def lcs_length(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """Length of the longest common subsequence, bit-parallel over the longer sequence."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for position, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << position)
    all_ones = (1 << len(a)) - 1
    row = all_ones
    for token in b:
        matches = row & masks.get(token, 0)
        row = ((row + matches) | (row - matches)) & all_ones
    return len(a) - row.bit_count()


def rouge_l_f1(candidate: tuple[str, ...], reference: Reference) -> float:
    if not candidate or not reference.tokens:
        return 0.0
    lcs = lcs_length(candidate, reference.tokens)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / reference.length
    return 2 * precision * recall / (precision + recall)
