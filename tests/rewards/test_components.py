import pytest

from rewards.components import (
    closed_answer_score,
    coordinate_score,
    grounding_score,
    judge_reasoning_boxes,
    multi_object_f1,
    open_ended_overlap,
)
from rewards.frame import Frame

FRAME = Frame(448, 448)


def test_closed_answer_normalised_exact_match():
    assert closed_answer_score("Yes.", "yes") == 1.0
    assert closed_answer_score("PA", "pa") == 1.0
    assert closed_answer_score("yes or no", "yes") == 0.0
    assert closed_answer_score("no", "yes") == 0.0
    assert closed_answer_score(None, "yes") == 0.0


def test_multi_object_f1():
    assert multi_object_f1("left lung, right lung", ("left lung", "right lung")) == 1.0
    assert multi_object_f1("left lung", ("left lung", "right lung")) == pytest.approx(2 / 3)
    assert multi_object_f1("left lung, heart", ("left lung", "right lung")) == pytest.approx(0.5)
    assert multi_object_f1("heart", ("left lung",)) == 0.0
    assert multi_object_f1("none", ()) == 1.0
    assert multi_object_f1("heart", ()) == 0.0
    assert multi_object_f1(None, ("left lung",)) == 0.0


def test_multi_object_duplicates_earn_nothing():
    single = multi_object_f1("left lung", ("left lung", "right lung"))
    assert multi_object_f1("left lung | left lung | Left lung.", ("left lung", "right lung")) == single


def test_open_ended_overlap_is_one_for_the_reference_and_falls_with_noise():
    reference = "No acute cardiopulmonary process. Heart size is normal."
    assert open_ended_overlap(reference, reference) == pytest.approx(1.0)
    partial = open_ended_overlap("Heart size is normal.", reference)
    assert 0.0 < partial < 1.0
    assert open_ended_overlap(reference + " " + reference, reference) < 1.0
    assert open_ended_overlap("", reference) == 0.0
    assert open_ended_overlap(None, reference) == 0.0


def test_coordinate_score_per_box_cap_and_penalty():
    assert coordinate_score(0, False) == 0.0
    assert coordinate_score(2, False) == pytest.approx(0.10)
    assert coordinate_score(3, False) == pytest.approx(0.15)
    assert coordinate_score(50, False) == pytest.approx(0.15)
    assert coordinate_score(1, True) == pytest.approx(0.05 - 0.2)
    # More valid boxes cannot cancel the penalty for a box outside the image.
    assert coordinate_score(50, True) == pytest.approx(0.15 - 0.2)
    assert coordinate_score(1, False, per_box=0.1, cap=0.3, out_of_frame_penalty=-1) == pytest.approx(0.1)


def test_reasoning_boxes_are_distinct_valid_boxes_of_the_frame():
    reasoning = "[10,10,50,50] again [10, 10, 50, 50], [60,60,100,100], bad [50,50,10,10], whole [0,0,448,448]"
    boxes, left = judge_reasoning_boxes(reasoning, FRAME)
    assert boxes == ((10.0, 10.0, 50.0, 50.0), (60.0, 60.0, 100.0, 100.0)) and not left
    _, left = judge_reasoning_boxes("[10,10,50,500]", FRAME)
    assert left
    _, left = judge_reasoning_boxes("[10,10,50,500]", Frame(448, 532))
    assert not left  # the frame comes from the ground truth, not a constant


def test_grounding_matches_one_to_one():
    truth = ((10.0, 10.0, 50.0, 50.0), (100.0, 100.0, 200.0, 200.0))
    assert grounding_score(truth, truth) == pytest.approx(1.0)
    assert grounding_score((truth[0],), truth) == pytest.approx(0.5)
    assert grounding_score((truth[0], truth[0]), truth) == pytest.approx(0.5)  # a repeat finds nothing new
    assert grounding_score(((10.0, 10.0, 50.0, 50.0), (11.0, 11.0, 51.0, 51.0)), (truth[0],)) == pytest.approx(0.5)
    assert grounding_score(((300.0, 300.0, 400.0, 400.0),), truth) == 0.0
    assert grounding_score((), truth) == 0.0 and grounding_score(truth, ()) == 0.0
