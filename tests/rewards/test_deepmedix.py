import json
import math

import pytest

from rewards.deepmedix import SCORE_KEYS, RewardConfigError, compute_score, make_scorer
from rewards.frame import Frame
from rewards.ground_truth import encode_ground_truth

FRAME = Frame(448, 448)
CLOSED = encode_ground_truth("closed", "yes", FRAME, sample_id="q1")
MULTI = encode_ground_truth("multi_object", ["left lung", "right lung"], FRAME)
REPORT = encode_ground_truth("open_ended", "Small left pleural effusion. No pneumothorax.", FRAME)
GROUNDED = encode_ground_truth("closed", "yes", FRAME, boxes=[(10, 10, 110, 110)])


def score(response, ground_truth=CLOSED, **kwargs):
    return compute_score([{"response": response, "response_length": 1, "ground_truth": ground_truth}], **kwargs)[0]


def test_paper_combination():
    result = score("<think>Effusion at [10,10,100,100] and [200,200,300,300].</think> The answer is: \\boxed{Yes}.")
    assert result["answer"] == pytest.approx(1.5)
    assert result["format"] == 1.0
    assert result["coordinate"] == pytest.approx(0.10)
    assert result["overall"] == pytest.approx(0.9 * 1.5 + 0.1 * 1.0 + 0.10)
    assert set(result) == set(SCORE_KEYS)


def test_weights_come_from_kwargs():
    response = "<think>[10,10,100,100]</think>\\boxed{yes}"
    result = score(response, answer_weight=1.0, format_weight=0.5, coordinate_per_box=0.2, coordinate_cap=1.0)
    assert result["overall"] == pytest.approx(0.5 * 1.0 + 0.5 * 1.0 + 0.2)


def test_grounding_is_opt_in():
    response = "<think>[10,10,110,110]</think>\\boxed{yes}"
    off = score(response, GROUNDED)
    on = score(response, GROUNDED, grounding_weight=0.5)
    assert off["grounding"] == 0.0
    assert on["grounding"] == pytest.approx(1.0)
    assert on["overall"] == pytest.approx(off["overall"] + 0.5)


def test_multi_object_and_report_tasks():
    assert score("<think>r</think>\\boxed{right lung, left lung}", MULTI)["answer"] == pytest.approx(1.5)
    report = score("<think>r</think>\\boxed{Small left pleural effusion. No pneumothorax.}", REPORT)
    assert report["answer"] == pytest.approx(1.5)


@pytest.mark.parametrize(
    "ground_truth",
    ['{"task": "closed"', json.dumps({"task": "closed", "answer": "yes"}), None, ["yes"], 3],
)
def test_unreadable_ground_truth_scores_zero_and_is_counted(ground_truth):
    result = score("<think>r</think>\\boxed{yes}", ground_truth)
    assert result["invalid_ground_truth"] == 1.0
    assert all(value == 0.0 for key, value in result.items() if key != "invalid_ground_truth")


def test_plain_string_ground_truth_uses_the_default_frame():
    inside_512 = "<think>[10,10,500,500]</think>\\boxed{yes}"
    assert score(inside_512, "yes")["out_of_frame"] == 0.0
    assert score(inside_512, "yes", default_frame=448)["out_of_frame"] == 1.0
    assert score(inside_512, CLOSED)["out_of_frame"] == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format_wieght": 0.1}, "unknown reward kwargs"),
        ({"format_weight": 1.5}, r"\[0, 1\]"),
        ({"answer_weight": "1.5"}, "finite number"),
        ({"coordinate_cap": float("nan")}, "finite number"),
        ({"preset": "paperr"}, "preset must be one of"),
        ({"default_frame": 0}, "positive integer"),
        ({"extra_components": {"no_such_component": 1.0}}, "unknown reward component"),
        ({"extra_components": {"no.such.module:fn": 1.0}}, "cannot import module"),
    ],
)
def test_bad_kwargs_fail_at_config_time(kwargs, message):
    with pytest.raises(RewardConfigError, match=message):
        make_scorer(**kwargs)


def test_extra_components_are_weighted_and_logged():
    result = score("<think>r</think>\\boxed{yes}", extra_components={"format": 2.0})
    base = score("<think>r</think>\\boxed{yes}")
    assert result["extra_format"] == 1.0
    assert result["overall"] == pytest.approx(base["overall"] + 2.0)


def test_old_easyr1_signature_is_a_clear_error():
    with pytest.raises(TypeError, match="list of dicts"):
        compute_score(["<think>r</think>\\boxed{yes}"], ["yes"])


def test_same_inputs_give_same_scores():
    batch = [{"response": f"<think>[1,1,{i + 10},20]</think>\\boxed{{yes}}", "response_length": 1,
              "ground_truth": CLOSED} for i in range(20)]
    assert compute_score(batch) == compute_score(list(reversed(batch)))[::-1]


# Reward hacking: none of these may beat an honest, correct, well-formatted answer citing three
# regions (the most the coordinate cap pays for).
HONEST = (
    "<think>The left costophrenic angle [20, 300, 120, 400] is blunted; the heart [150, 180, 330, 360] is normal; "
    "the right lung [250, 40, 420, 380] is clear.</think> The answer is: \\boxed{yes}"
)
HACKS = {
    "empty box": "<think>look [20, 300, 120, 400]</think>\\boxed{}",
    "A or B answer": "<think>[20, 300, 120, 400]</think>\\boxed{yes or no}",
    "both answers boxed": "<think>[20, 300, 120, 400]</think>\\boxed{no} \\boxed{yes}",
    "boxed answers inside reasoning": "<think>\\boxed{no} [20, 300, 120, 400]</think>\\boxed{yes}",
    "repeated think blocks": "<think>[20,300,120,400]</think><think>[1,1,50,50][2,2,60,60]</think>\\boxed{yes}",
    "coordinate spam": "<think>" + " ".join(f"[{i}, {i}, {i + 40}, {i + 40}]" for i in range(300)) + "</think>\\boxed{yes}",
    "same box repeated": "<think>" + "[20, 300, 120, 400] " * 50 + "</think>\\boxed{yes}",
    "boxes outside the frame": "<think>[20, 300, 120, 400] [0, 0, 900, 900] [10,10,20,20] [30,30,40,40]</think>\\boxed{yes}",
    "whole-image boxes": "<think>[0, 0, 448, 448] [1, 1, 447, 447] [0, 0, 448, 440]</think>\\boxed{yes}",
    "negative boxes": "<think>[-10, -10, 50, 50]</think>\\boxed{yes}",
    "giant output": "<think>" + "[20, 300, 120, 400] yes " * 5000 + "</think>\\boxed{yes " + "yes " * 20000 + "}",
    "tags inside the answer": "<think>[20, 300, 120, 400]</think>\\boxed{<think>yes</think>}",
}


@pytest.mark.parametrize("name", sorted(HACKS))
def test_reward_hacks_do_not_pay(name):
    honest = score(HONEST)["overall"]
    assert honest == pytest.approx(0.9 * 1.5 + 0.1 + 0.15)
    hacked = score(HACKS[name])
    assert hacked["overall"] <= honest, f"{name} scores {hacked['overall']} > honest {honest}"
    assert all(isinstance(v, float) and math.isfinite(v) for v in hacked.values())


@pytest.mark.parametrize(
    "response",
    ["", " ", "\x00", "{" * 5000, "\\boxed{" * 5000, "}}}{{{", "<think>" * 3000, "🙂" * 20000,
     "<think>" + "[" * 10000 + "</think>", "<think>[1e400, 0, 1e400, 5]</think>\\boxed{yes}",
     "<think>[nan, 0, 10, 10]</think>\\boxed{yes}", None, 12345],
)
@pytest.mark.parametrize("ground_truth", [CLOSED, MULTI, REPORT, "yes", "a|b", "a long plain report text here"])
def test_any_response_scores_without_raising(response, ground_truth):
    for preset in ("paper", "upstream"):
        result = score(response, ground_truth, preset=preset)
        assert all(isinstance(v, float) and math.isfinite(v) for v in result.values())
