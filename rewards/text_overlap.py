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
rouge-score fills an O(n*m) Python table. Here BLEU counts the n-grams of a whole batch at once
with numpy, the reference is tokenised once (cached: a GRPO group shares it), and the LCS uses the
bit-parallel algorithm (Allison & Dix 1986; Hyyro 2004) on Python integers, so a 100 KB response
costs milliseconds. ``benchmarks/reward_throughput.py`` measures the difference.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+")
MAX_ORDER = 4


def word_tokens(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(text.lower()))


@dataclass(frozen=True)
class Reference:
    """A reference text prepared once (cached: a GRPO group shares it): tokens and LCS masks."""

    tokens: tuple[str, ...]
    match_masks: dict[str, int]  # token -> bit mask of its positions in the reference

    @property
    def length(self) -> int:
        return len(self.tokens)


def _match_masks(tokens: tuple[str, ...]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for position, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << position)
    return masks


@lru_cache(maxsize=4096)
def prepare_reference(text: str) -> Reference:
    return reference_from_tokens(word_tokens(text))


def reference_from_tokens(tokens: tuple[str, ...]) -> Reference:
    """A reference from tokens produced elsewhere (evaluation uses the PTB tokenizer)."""
    return Reference(tuple(tokens), _match_masks(tuple(tokens)))


def clipped_ngram_matches(
    candidates: list[tuple[str, ...]], references: list[Reference], max_order: int = MAX_ORDER
) -> np.ndarray:
    """``[len(candidates), max_order]`` clipped n-gram matches of each candidate against its reference.

    The whole batch at once: tokens become integer ids, n-grams of every order become integer
    ids by pairing (n-1)-gram ids with the next token, and (segment, n-gram) pairs are
    counted with ``np.unique``; each candidate's count is clipped by its reference's count of the
    same n-gram, found by binary search. Exact (no hashing), and linear in the batch's tokens
    apart from the sorts.
    """
    count = len(candidates)
    reference_slot: dict[int, int] = {}
    unique_references: list[Reference] = []
    candidate_reference = []
    for reference in references:
        slot = reference_slot.setdefault(id(reference), len(unique_references))
        if slot == len(unique_references):
            unique_references.append(reference)
        candidate_reference.append(count + slot)
    sequences = list(candidates) + [reference.tokens for reference in unique_references]
    lengths = np.fromiter((len(sequence) for sequence in sequences), dtype=np.int64, count=len(sequences))
    total = int(lengths.sum())
    matches = np.zeros((count, max_order), dtype=np.float64)
    if total == 0 or count == 0:
        return matches

    vocabulary: defaultdict[str, int] = defaultdict(itertools.count().__next__)  # token -> id, in C
    token_ids = np.fromiter(
        map(vocabulary.__getitem__, itertools.chain.from_iterable(sequences)), dtype=np.int64, count=total
    )
    segment = np.repeat(np.arange(len(sequences), dtype=np.int64), lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    remaining = np.repeat(lengths, lengths) - (np.arange(total) - np.repeat(starts, lengths))
    candidate_reference = np.asarray(candidate_reference, dtype=np.int64)

    # An n-gram's id is (its (n-1)-gram id) * vocabulary + (its last token id), so ids stay exact
    # integers; they are renumbered densely (a sort) only when segment * id could overflow int64.
    vocabulary_size, segments = len(vocabulary) + 1, len(sequences)
    gram_ids, gram_count = token_ids, vocabulary_size
    for order in range(1, max_order + 1):
        if order > 1:
            if segments * gram_count * vocabulary_size >= 2**62:
                _, gram_ids = np.unique(gram_ids, return_inverse=True)
                gram_ids, gram_count = gram_ids.reshape(-1).astype(np.int64), int(gram_ids.max()) + 1
            following = np.zeros(total, dtype=np.int64)
            following[: total - order + 1] = token_ids[order - 1 :]
            gram_ids, gram_count = gram_ids * vocabulary_size + following, gram_count * vocabulary_size
        valid = remaining >= order
        if not valid.any():
            break
        pairs, pair_counts = np.unique(segment[valid] * gram_count + gram_ids[valid], return_counts=True)
        pair_segment, pair_gram = pairs // gram_count, pairs % gram_count
        in_candidate = pair_segment < count
        reference_pairs, reference_counts = pairs[~in_candidate], pair_counts[~in_candidate]
        if reference_pairs.size == 0:
            continue
        wanted = candidate_reference[pair_segment[in_candidate]] * gram_count + pair_gram[in_candidate]
        position = np.minimum(np.searchsorted(reference_pairs, wanted), reference_pairs.size - 1)
        found = np.where(reference_pairs[position] == wanted, reference_counts[position], 0)
        clipped = np.minimum(pair_counts[in_candidate], found)
        matches[:, order - 1] = np.bincount(pair_segment[in_candidate], weights=clipped, minlength=count)
    return matches


def bleu_scores(
    candidates: list[tuple[str, ...]], references: list[Reference], orders: tuple[int, ...] = (1, 4)
) -> np.ndarray:
    """``[len(candidates), len(orders)]`` sentence BLEU-n (uniform weights, add-one smoothing above
    unigrams, nltk's brevity penalty), each candidate against its own reference."""
    top = max(orders)
    matches = clipped_ngram_matches(candidates, references, top)
    hyp_len = np.array([len(c) for c in candidates], dtype=np.float64)
    ref_len = np.array([r.length for r in references], dtype=np.float64)
    totals = np.maximum(hyp_len[:, None] - np.arange(top)[None, :], 0)
    denominators = np.maximum(totals, 1)
    matches[:, 1:] += 1  # Lin & Och add-one smoothing, orders above 1 only
    denominators[:, 1:] += 1
    scores = np.zeros((len(candidates), len(orders)))
    scorable = matches[:, 0] > 0  # no unigram in common: 0 whatever the smoothing
    if not scorable.any():
        return scores
    log_precision = np.log(matches[scorable] / denominators[scorable])
    h, r = hyp_len[scorable], ref_len[scorable]
    log_brevity = np.where(h > r, 0.0, 1 - r / np.maximum(h, 1))
    for column, order in enumerate(orders):
        scores[scorable, column] = np.exp(log_brevity + log_precision[:, :order].mean(axis=1))
    return scores


def lcs_length(a: tuple[str, ...], b: tuple[str, ...], a_masks: dict[str, int] | None = None) -> int:
    """Length of the longest common subsequence of ``a`` and ``b``.

    Bit-parallel: bit i of ``row`` tracks column i of the classic DP table for ``a``, and each token
    of ``b`` updates all of them with a few integer operations. ``a_masks`` (from
    ``_match_masks(a)``) may be passed in when ``a`` is scored against many sequences.
    """
    if not a or not b:
        return 0
    masks = _match_masks(a) if a_masks is None else a_masks
    all_ones = (1 << len(a)) - 1
    row = all_ones
    get = masks.get
    for token in b:
        matches = row & get(token, 0)
        row = ((row + matches) | (row - matches)) & all_ones
    return len(a) - row.bit_count()


def rouge_l_f1(candidate: tuple[str, ...], reference: Reference) -> float:
    if not candidate or not reference.tokens:
        return 0.0
    lcs = lcs_length(reference.tokens, candidate, reference.match_masks)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / reference.length
    return 2 * precision * recall / (precision + recall)
