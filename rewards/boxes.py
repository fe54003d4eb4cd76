"""The box grammar: how a reasoning trace cites an image region, and when a citation counts.

A box is written ``[x_min, y_min, x_max, y_max]`` in absolute pixels of the model's frame (the
paper's prompt asks for exactly this). Spaces, signs, decimals and exponents parse
(``[ 10, 20 , 30.5,40 ]``); anything else inside square brackets is not a box.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from enum import Enum

import numpy as np

from rewards.frame import Frame

Box = tuple[float, float, float, float]

# Possessive quantifiers (``++``, ``*+``, ``?+``): what a number or a run of spaces has taken,
# nothing after it could use, so a failed match stops there instead of trying shorter splits.
_NUMBER = r"[-+]?+(?:\d++(?:\.\d*+)?+|\.\d++)(?:[eE][-+]?+\d++)?+"
# One group, the four numbers with their commas and spaces: ``_numbers`` splits them in C.
BOX_PATTERN = re.compile(rf"\[(\s*+{_NUMBER}\s*+,\s*+{_NUMBER}\s*+,\s*+{_NUMBER}\s*+,\s*+{_NUMBER}\s*+)\]")

# A box narrower or shorter than this many pixels marks no region (sub-pixel or a line).
MIN_BOX_SIDE = 1.0
# A box covering at least this fraction of the frame says nothing about where to look.
MAX_BOX_AREA_FRACTION = 0.9


class BoxVerdict(str, Enum):
    """What a parsed box is worth. Only ``VALID`` boxes earn the coordinate score."""

    VALID = "valid"
    MALFORMED = "malformed"  # NaN, or x_min >= x_max / y_min >= y_max
    OUTSIDE_FRAME = "outside_frame"  # a coordinate is negative or beyond the frame (infinity too)
    DEGENERATE = "degenerate"  # a side shorter than MIN_BOX_SIDE
    WHOLE_IMAGE = "whole_image"  # covers MAX_BOX_AREA_FRACTION of the frame or more


def parse_boxes(text: str) -> list[Box]:
    """Every box written in ``text``, in order of appearance (duplicates kept)."""
    numbers = _numbers(BOX_PATTERN.findall(text))
    return list(zip(numbers, numbers, numbers, numbers))


# For ASCII text a loose pattern, number characters instead of the number grammar, matches
# faster. Over those characters ``float`` accepts exactly the number grammar, so when every number
# it took converts, it found exactly the strict pattern's boxes; when one does not, the batch is
# read again with the strict pattern.
_LOOSE = r"[-+.0-9eE]++"
_LOOSE_BOX = re.compile(rf"\[(\s*+{_LOOSE}\s*+,\s*+{_LOOSE}\s*+,\s*+{_LOOSE}\s*+,\s*+{_LOOSE}\s*+)\]")


def parse_boxes_batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``parse_boxes`` of every text of a batch: (every box, ``[n, 4]`` float64, in order; the
    index of the text each box comes from)."""
    for pattern in (_LOOSE_BOX, BOX_PATTERN) if all(map(str.isascii, texts)) else (BOX_PATTERN,):
        written = list(map(pattern.findall, texts))
        counts = np.fromiter(map(len, written), np.int64, len(texts))
        matches = list(itertools.chain.from_iterable(written))
        try:
            values = np.fromiter(_numbers(matches), np.float64, 4 * len(matches))
        except ValueError:  # the loose pattern took what is not a number
            continue
        return values.reshape(-1, 4), np.repeat(np.arange(len(texts)), counts)
    raise AssertionError("the strict pattern reads numbers only")


def _numbers(written: list[str]) -> Iterator[float]:
    """The four numbers of each ``BOX_PATTERN`` match (its group), in order: the matches joined and
    split at their commas, in C. ``str.strip`` removes exactly what ``\\s`` matched around each
    number (``float`` alone would refuse some of it, such as ``\\x1c``)."""
    return map(float, map(str.strip, ",".join(written).split(","))) if written else iter(())


def judge_box(box: Box, frame: Frame, max_area_fraction: float = MAX_BOX_AREA_FRACTION) -> BoxVerdict:
    x1, y1, x2, y2 = box
    if not (x1 < x2 and y1 < y2):  # also catches NaN, which compares false
        return BoxVerdict.MALFORMED
    if x1 < 0 or y1 < 0 or x2 > frame.width or y2 > frame.height:
        return BoxVerdict.OUTSIDE_FRAME
    if x2 - x1 < MIN_BOX_SIDE or y2 - y1 < MIN_BOX_SIDE:
        return BoxVerdict.DEGENERATE
    if (x2 - x1) * (y2 - y1) >= max_area_fraction * frame.area:
        return BoxVerdict.WHOLE_IMAGE
    return BoxVerdict.VALID


def judge_boxes(
    boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray, max_area_fraction: float = MAX_BOX_AREA_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """``judge_box`` for many boxes at once: ``boxes`` ``[n, 4]`` float64, each in the frame of the
    same row of ``widths`` and ``heights`` (int64). Returns (VALID, OUTSIDE_FRAME) as boolean
    arrays; the rules and float operations are ``judge_box``'s, in the same order."""
    x1, y1, x2, y2 = boxes.T
    well_formed = (x1 < x2) & (y1 < y2)  # also catches NaN, which compares false
    outside = well_formed & ((x1 < 0) | (y1 < 0) | (x2 > widths) | (y2 > heights))
    valid = well_formed & ~outside
    with np.errstate(all="ignore"):  # inf - inf of boxes already judged: no warning for them
        valid &= ~((x2 - x1 < MIN_BOX_SIDE) | (y2 - y1 < MIN_BOX_SIDE))
        valid &= ~((x2 - x1) * (y2 - y1) >= max_area_fraction * (widths * heights))
    return valid, outside


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two well-formed boxes."""
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    intersection = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union
