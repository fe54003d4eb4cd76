import math

import pytest

from rewards.boxes import BoxVerdict, box_iou, judge_box, parse_boxes
from rewards.frame import Frame

FRAME = Frame(448, 504)


def test_parse_tolerates_spaces_decimals_signs_and_exponents():
    text = "region [ 10, 20 , 30.5,40 ] and [1e2,2E1,+300,.5e3] but not [1, 2, 3] or [a, b, c, d] or [1,2,3,4,5]"
    assert parse_boxes(text) == [(10.0, 20.0, 30.5, 40.0), (100.0, 20.0, 300.0, 500.0)]


def test_parse_keeps_duplicates_in_order():
    assert parse_boxes("[1,2,3,4][1,2,3,4]") == [(1.0, 2.0, 3.0, 4.0)] * 2


@pytest.mark.parametrize(
    "box, verdict",
    [
        ((10, 20, 100, 200), BoxVerdict.VALID),
        ((0, 0, 448, 504 * 0.8), BoxVerdict.VALID),
        ((100, 20, 10, 200), BoxVerdict.MALFORMED),
        ((10, 20, 10, 200), BoxVerdict.MALFORMED),
        ((10, 200, 100, 200), BoxVerdict.MALFORMED),
        ((math.nan, 20, 100, 200), BoxVerdict.MALFORMED),
        ((10, 20, math.inf, 200), BoxVerdict.OUTSIDE_FRAME),
        ((-math.inf, 20, 100, 200), BoxVerdict.OUTSIDE_FRAME),
        ((10, math.nan, 100, 200), BoxVerdict.MALFORMED),
        ((-1, 20, 100, 200), BoxVerdict.OUTSIDE_FRAME),
        ((10, 20, 449, 200), BoxVerdict.OUTSIDE_FRAME),
        ((10, 20, 100, 505), BoxVerdict.OUTSIDE_FRAME),
        ((10, 20, 10.5, 200), BoxVerdict.DEGENERATE),
        ((0, 0, 448, 504), BoxVerdict.WHOLE_IMAGE),
        ((2, 2, 446, 500), BoxVerdict.WHOLE_IMAGE),
    ],
)
def test_judge_box(box, verdict):
    assert judge_box(tuple(float(v) for v in box), FRAME) is verdict


def test_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
