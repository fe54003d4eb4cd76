"""Word-level sentence BLEU and ROUGE-L for the open-ended (report) answer score.

Definitions, chosen so results equal the field's reference implementations on the same tokens,
bit for bit (tests/rewards/test_text_overlap.py checks both on random reports):
- tokens: lower-cased runs of ``[a-z0-9]``, exactly rouge-score's tokenizer without stemming;
- BLEU-n: nltk ``sentence_bleu`` with one reference, uniform weights up to n and Lin & Och's
  add-one smoothing (``SmoothingFunction().method2``, the smoothing the released reward uses),
  combined with nltk's own floating-point steps (``math.log``, ``math.fsum``, ``math.exp``);
- ROUGE-L: LCS F1 (precision = LCS / candidate length, recall = LCS / reference length), as
  rouge-score's ``rougeL`` ``fmeasure``.

Written here rather than calling nltk and rouge-score per response because a GRPO step scores
thousands of responses: nltk builds Fractions and Counters per n-gram order per call and
rouge-score fills an O(n*m) Python table. Here a batch is aligned with its references once
(``OverlapBatch``): n-grams are counted for the whole batch at once with numpy, only where they can
still match, and the LCS uses the bit-parallel algorithm (Allison & Dix 1986; Hyyro 2004), run for
all candidates at once on 64-bit lanes when the reference fits one, on Python integers otherwise,
so a 100 KB response costs milliseconds. ``benchmarks/reward_throughput.py`` measures the difference.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+")
# Every ASCII character that is not part of a token becomes a space: on ASCII text,
# ``translate`` + ``split`` finds exactly the runs ``_TOKEN`` finds, in one pass each, in C. Token
# characters map to themselves: a character missing from the table costs ``translate`` a KeyError.
_ASCII_SEPARATORS = str.maketrans(
    {chr(c): chr(c) if chr(c).isdigit() or "a" <= chr(c) <= "z" else " " for c in range(128)}
)
MAX_ORDER = 4
LANE_BITS = 64  # a reference of at most this many tokens gets the vectorised LCS


def word_tokens(text: str) -> tuple[str, ...]:
    lowered = text.lower()
    if lowered.isascii():
        return tuple(lowered.translate(_ASCII_SEPARATORS).split())
    return tuple(_TOKEN.findall(lowered))


@dataclass(frozen=True)
class Reference:
    """A reference text prepared once (cached: a GRPO group shares it): its tokens."""

    tokens: tuple[str, ...]

    @property
    def length(self) -> int:
        return len(self.tokens)

    @cached_property
    def match_masks(self) -> dict[str, int]:
        """token -> bit mask of its positions (for the LCS on Python integers; built when first needed)."""
        return _match_masks(self.tokens)


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
    return Reference(tuple(tokens))


def _end_to_end(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The sequences of ``lengths`` laid out in ``values``, each followed by a -1."""
    spaced = np.full(values.size + lengths.size, -1, dtype=np.int64)
    spaced[np.arange(values.size) + np.repeat(np.arange(lengths.size), lengths)] = values
    return spaced


class OverlapBatch:
    """Candidates aligned once with their references, for the batch's BLEU and ROUGE-L.

    Each distinct (reference, word) is a unigram row, each distinct (reference, n-gram) a row of
    that order's table, keyed by its (n-1)-gram's row and its last word's unigram row. A
    candidate's words are looked up in its own reference's words only (one dict per reference, in
    C), and its n-grams only where the (n-1)-gram prefix and the last word were both found there:
    an n-gram holding an unmatched word cannot match, so the work shrinks with each order. The
    sequences are laid end to end with a -1 ("not found") after each, so that no n-gram runs from
    one into the next. Exact (no hashing). References are told apart by identity: pass one
    ``Reference`` object for a shared reference (``prepare_reference`` does).
    """

    def __init__(self, candidates: list[tuple[str, ...]], references: list[Reference]) -> None:
        if len(candidates) != len(references):
            raise ValueError(f"{len(candidates)} candidates but {len(references)} references")
        self.candidates, self.references = candidates, references
        slot_of: dict[int, int] = {}
        distinct: list[Reference] = []
        for reference in references:
            if slot_of.setdefault(id(reference), len(distinct)) == len(distinct):
                distinct.append(reference)
        slots = list(map(slot_of.__getitem__, map(id, references)))
        row_of: list[dict[str, int]] = []  # per distinct reference: word -> unigram row
        rows = 0
        for reference in distinct:
            words = dict.fromkeys(reference.tokens)
            row_of.append(dict(zip(words, range(rows, rows + len(words)))))
            rows += len(words)
        self.unigram_rows = rows
        self.reference_lengths = np.fromiter(map(len, (r.tokens for r in distinct)), np.int64, len(distinct))
        self._reference_unigrams = _end_to_end(np.fromiter(
            itertools.chain.from_iterable(map(words.__getitem__, r.tokens) for words, r in zip(row_of, distinct)),
            np.int64, int(self.reference_lengths.sum())), self.reference_lengths)
        self.lengths = np.fromiter(map(len, candidates), np.int64, len(candidates))
        self._unigrams = _end_to_end(np.fromiter(  # -1 too: a word the candidate's reference does not have
            itertools.chain.from_iterable(
                map(row_of[slot].get, candidate, itertools.repeat(-1)) for slot, candidate in zip(slots, candidates)),
            np.int64, int(self.lengths.sum())), self.lengths)
        self.segment = np.repeat(np.arange(len(candidates)), self.lengths + 1)  # candidate of each position
        self.reference_length_of = self.reference_lengths[np.array(slots, dtype=np.int64)]
        self._reference_rows = self._reference_unigrams  # each reference n-gram's row (-1: none), last order
        self._found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def found(self, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions, ascending, of the candidates' n-grams of ``order`` that occur in their
        reference; each one's row; every row's count in its reference). Positions count the -1
        after each candidate: ``segment`` maps them to candidates."""
        while len(self._found) < order:
            if not self._found:
                positions = np.flatnonzero(self._unigrams >= 0)
                found = (positions, self._unigrams[positions],
                         np.bincount(self._reference_unigrams[self._reference_unigrams >= 0], minlength=self.unigram_rows))
            else:
                found = self._next_order(len(self._found) + 1)
            self._found.append(found)
        return self._found[order - 1]

    def _next_order(self, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        previous, previous_rows, previous_counts = self._found[-1]
        # The reference side: key (prefix row, last word's unigram row), rows numbered in key order.
        starts = np.flatnonzero(self._reference_rows >= 0)
        last = self._reference_unigrams[starts + order - 1]  # a -1 ends each reference: in bounds
        starts, last = starts[last >= 0], last[last >= 0]
        keys = self._reference_rows[starts] * self.unigram_rows + last
        table, rows, counts = np.unique(keys, return_inverse=True, return_counts=True)
        self._reference_rows = np.full(self._reference_unigrams.size, -1, dtype=np.int64)
        self._reference_rows[starts] = rows.reshape(-1)
        # The candidate side: n-grams whose prefix and last word were found.
        last = self._unigrams[previous + order - 1]
        extendable = last >= 0
        positions, prefixes, last = previous[extendable], previous_rows[extendable], last[extendable]
        keys = prefixes * self.unigram_rows + last
        # A prefix's rows are consecutive in the table; most prefixes have one continuation, so the
        # prefix's first row is tried first and only the others are searched. The table ends with
        # -1, which no key equals, for a prefix without rows after the last one.
        continuations = np.bincount(table // self.unigram_rows, minlength=previous_counts.size)
        rows = (np.cumsum(continuations) - continuations)[prefixes]
        hit = np.append(table, -1)[rows] == keys
        missed = np.flatnonzero(~hit)
        others = missed[continuations[prefixes[missed]] > 1]
        if others.size:
            searched = np.minimum(np.searchsorted(table, keys[others]), table.size - 1)
            rows[others] = searched
            hit[others] = table[searched] == keys[others]
        return positions[hit], rows[hit], counts

    def clipped_matches(self, max_order: int = MAX_ORDER) -> np.ndarray:
        """``[candidates, max_order]`` int64: per candidate and order, the sum over its distinct
        n-grams of min(count in the candidate, count in its reference), as BLEU clips them."""
        count = len(self.candidates)
        matches = np.zeros((count, max_order), dtype=np.int64)
        repeating = np.ones(count, dtype=bool)  # candidates that may repeat an n-gram of this order
        for order in range(1, max_order + 1):
            positions, rows, counts = self.found(order)
            if positions.size == 0:
                break
            segments = self.segment[positions]
            matches[:, order - 1] = np.bincount(segments, minlength=count)
            # An n-gram repeated in a candidate matches at most as often as its reference has it.
            # Only a candidate that repeated an (n-1)-gram can repeat an n-gram (its prefix).
            if not repeating.any():
                continue
            suspects = repeating[segments]
            keys = np.sort(segments[suspects] * counts.size + rows[suspects])
            repeated = keys[1:] == keys[:-1]
            repeating[:] = False
            if not repeated.any():
                continue
            run_starts = np.flatnonzero(np.concatenate(([True], ~repeated)))
            run_lengths = np.diff(np.append(run_starts, keys.size))
            heads = keys[run_starts[run_lengths > 1]]
            repeating[heads // counts.size] = True
            excess = run_lengths[run_lengths > 1] - counts[heads % counts.size]
            over = excess > 0
            matches[:, order - 1] -= np.bincount(
                heads[over] // counts.size, weights=excess[over], minlength=count).astype(np.int64)
        return matches

    def bleu(self, orders: tuple[int, ...] = (1, 4)) -> np.ndarray:
        """``[candidates, len(orders)]``: nltk's sentence BLEU-n for each n in ``orders`` (uniform
        weights 1/n, method2 smoothing: add one above unigrams, nltk's brevity penalty), bit for
        bit: the same float operations in the same order (``math.log`` of each precision,
        ``math.fsum`` of the weighted logs, the penalty times ``math.exp`` of the sum); the
        elementwise steps are IEEE operations, alike in numpy and Python."""
        top = max(orders)
        scores = np.zeros((len(self.candidates), len(orders)))
        matches = self.clipped_matches(top)
        scorable = np.flatnonzero(matches[:, 0] > 0)  # no unigram in common: 0 whatever the smoothing
        if scorable.size == 0:
            return scores
        matches = matches[scorable].astype(np.float64)
        hypothesis = self.lengths[scorable].astype(np.float64)
        reference = self.reference_length_of[scorable].astype(np.float64)
        precisions = np.empty_like(matches)
        precisions[:, 0] = matches[:, 0] / hypothesis
        for n in range(1, top):
            precisions[:, n] = (matches[:, n] + 1) / (np.maximum(hypothesis - n, 1) + 1)
        logs = np.fromiter(map(math.log, precisions.ravel().tolist()), np.float64, precisions.size)
        logs = logs.reshape(precisions.shape)
        penalty = np.ones(scorable.size)
        short = np.flatnonzero(hypothesis <= reference)
        penalty[short] = np.fromiter(map(math.exp, (1 - reference[short] / hypothesis[short]).tolist()), np.float64,
                                     short.size)
        for column, order in enumerate(orders):
            if order == 1:  # fsum of one term is the term
                sums = map(math.exp, logs[:, 0].tolist())
            else:
                sums = map(math.exp, map(math.fsum, zip(*(logs[:, :order] * (1 / order)).T.tolist())))
            scores[scorable, column] = penalty * np.fromiter(sums, np.float64, scorable.size)
        return scores

    def lcs_lengths(self) -> np.ndarray:
        """Per candidate, the length of its longest common subsequence with its reference."""
        lcs = np.zeros(len(self.candidates), dtype=np.int64)
        positions, rows, _ = self.found(1)
        if positions.size == 0:
            return lcs
        # A word's mask has bit i set where it is the reference's i-th word: one uint64 lane per
        # candidate whose reference fits in one, Python integers for the others.
        segments = self.segment[positions]
        in_lane = self.reference_length_of[segments] <= LANE_BITS
        for index in np.unique(segments[~in_lane]).tolist():
            reference = self.references[index]
            lcs[index] = lcs_length(reference.tokens, self.candidates[index], reference.match_masks)
        if not in_lane.any():
            return lcs
        spans = self.reference_lengths + 1  # each reference and its -1
        bit = np.arange(self._reference_unigrams.size) - np.repeat(np.cumsum(spans) - spans, spans)
        fits = (bit < LANE_BITS) & (self._reference_unigrams >= 0)
        masks = np.zeros(self.unigram_rows, dtype=np.uint64)
        np.bitwise_or.at(masks, self._reference_unigrams[fits], np.left_shift(np.uint64(1), bit[fits].astype(np.uint64)))
        _lanes_lcs(segments[in_lane], masks[rows[in_lane]], self.reference_length_of, lcs)
        return lcs

    def rouge_l_f1(self) -> np.ndarray:
        """Per candidate, ROUGE-L F1 against its reference (rouge-score's ``fmeasure``, bit for bit)."""
        lcs = self.lcs_lengths().astype(np.float64)
        scores = np.zeros(lcs.size)
        some = lcs > 0
        precision, recall = lcs[some] / self.lengths[some], lcs[some] / self.reference_length_of[some]
        scores[some] = 2 * precision * recall / (precision + recall)
        return scores


TAIL_LANES = 32  # fewer lanes still running than this: finish them on Python integers


def _lanes_lcs(segments: np.ndarray, masks: np.ndarray, reference_lengths: np.ndarray, lcs: np.ndarray) -> None:
    """Bit-parallel LCS of many candidates at once, one uint64 lane each (the reference has at most
    64 words). ``segments``, ``masks``: the candidate and reference mask of each of the candidates'
    words found in their reference, in order (a word the reference lacks leaves the row as it is,
    so it is left out). Writes ``lcs[candidate]``. Lanes run longest first, so that step j works
    on a prefix of them; the last few long lanes finish on Python integers."""
    starts = np.flatnonzero(np.concatenate(([True], segments[1:] != segments[:-1])))  # segments ascend
    candidates, lengths = segments[starts], np.diff(np.append(starts, segments.size))
    lane = np.repeat(np.arange(starts.size), lengths)
    step = np.arange(segments.size) - starts[lane]  # word's index in its lane
    order = np.argsort(-lengths, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    candidates, lengths = candidates[order], lengths[order]
    alive = np.bincount(lengths - 1)[::-1].cumsum()[::-1]  # lanes still running at step j
    column_start = np.cumsum(alive) - alive
    columns = np.empty(masks.size, dtype=np.uint64)
    columns[column_start[step] + rank[lane]] = masks
    width = reference_lengths[candidates].astype(np.uint64)
    ones = (np.uint64(2) << (width - np.uint64(1))) - np.uint64(1)  # width 64: wraps to 2**64 - 1
    row = ones.copy()
    j = 0
    while j < alive.size and alive[j] >= TAIL_LANES:
        lanes = int(alive[j])
        current = row[:lanes]
        matched = current & columns[column_start[j] : column_start[j] + lanes]
        row[:lanes] = ((current + matched) | (current - matched)) & ones[:lanes]
        j += 1
    values, all_ones = row.tolist(), ones.tolist()
    for lane_rank in range(int(alive[j]) if j < alive.size else 0):
        value, full = values[lane_rank], all_ones[lane_rank]
        for mask in columns[column_start[j : lengths[lane_rank]] + lane_rank].tolist():
            matched = value & mask
            value = ((value + matched) | (value - matched)) & full
        values[lane_rank] = value
    lcs[candidates] = width.astype(np.int64) - np.array([value.bit_count() for value in values], dtype=np.int64)


def clipped_ngram_matches(
    candidates: list[tuple[str, ...]], references: list[Reference], max_order: int = MAX_ORDER
) -> np.ndarray:
    """``[len(candidates), max_order]`` clipped n-gram matches of each candidate against its
    reference (``OverlapBatch.clipped_matches``, as floats)."""
    return OverlapBatch(candidates, references).clipped_matches(max_order).astype(np.float64)


def bleu_scores(
    candidates: list[tuple[str, ...]], references: list[Reference], orders: tuple[int, ...] = (1, 4)
) -> np.ndarray:
    """``[len(candidates), len(orders)]`` sentence BLEU-n, each candidate against its own reference,
    equal to nltk's bit for bit (``OverlapBatch.bleu``)."""
    return OverlapBatch(candidates, references).bleu(orders)


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
