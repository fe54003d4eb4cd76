import json

import pytest

from rewards.frame import Frame
from rewards.ground_truth import GroundTruthError, encode_ground_truth, legacy_ground_truth, parse_ground_truth

FRAME = Frame(448, 532)


def test_encode_then_parse_round_trips():
    raw = encode_ground_truth("multi_object", ["left lung", "right lung"], FRAME, boxes=[(1, 2, 30, 40)],
                              source="ms-cxr", sample_id="s1")
    truth = parse_ground_truth(raw)
    assert truth.task == "multi_object" and truth.answer == ("left lung", "right lung")
    assert truth.frame == FRAME and truth.boxes == ((1.0, 2.0, 30.0, 40.0),)
    assert parse_ground_truth(truth.to_json()) == truth


def test_empty_list_answer_is_allowed_for_multi_object():
    assert parse_ground_truth(encode_ground_truth("multi_object", [], FRAME)).answer == ()


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"task": "vqa", "answer": "yes"}, "'task' must be one of"),
        ({"task": "closed", "answer": "", "frame": {"width": 1, "height": 1}}, "non-empty string"),
        ({"task": "closed", "answer": ["yes"], "frame": {"width": 1, "height": 1}}, "non-empty string"),
        ({"task": "multi_object", "answer": "a|b", "frame": {"width": 1, "height": 1}}, "list of strings"),
        ({"task": "closed", "answer": "yes"}, "'frame' must be"),
        ({"task": "closed", "answer": "yes", "frame": {"width": 0, "height": 5}}, "positive integer"),
        ({"task": "closed", "answer": "yes", "frame": {"width": 10, "height": 10}, "boxes": [[1, 2, 3]]}, "box 0"),
        ({"task": "closed", "answer": "yes", "frame": {"width": 10, "height": 10}, "boxes": [[1, 2, 30, 4]]},
         "not a box inside the 10x10 frame"),
        ({"task": "closed", "answer": "yes", "frame": {"width": 10, "height": 10}, "boxes": [[1, 2, "3", 4]]}, "box 0"),
        ({"task": "closed", "answer": "yes", "frame": {"width": 10, "height": 10}, "question": "?"}, "unknown keys"),
    ],
)
def test_invalid_ground_truths_are_rejected_with_the_sample_named(payload, message):
    payload = {**payload, "sample_id": "mimic-50414267"}
    with pytest.raises(GroundTruthError, match=message) as raised:
        parse_ground_truth(json.dumps(payload))
    assert "mimic-50414267" in str(raised.value)


def test_broken_json_and_non_strings_are_errors():
    with pytest.raises(GroundTruthError, match="does not parse"):
        parse_ground_truth('{"task": "closed", ')
    with pytest.raises(GroundTruthError, match="must be a string"):
        parse_ground_truth(["yes"])


@pytest.mark.parametrize(
    "text, task",
    [
        ("yes", "closed"),
        ("left lung", "closed"),
        ("left lung|right lung", "multi_object"),
        ("No acute cardiopulmonary process.", "open_ended"),
        ("42", "closed"),  # JSON but not an object: a plain answer
        ("[1, 2]", "closed"),
    ],
)
def test_plain_strings_are_typed_like_the_released_reward(text, task):
    truth = parse_ground_truth(text)
    assert truth.task == task and truth.frame is None
    assert truth == legacy_ground_truth(text)
