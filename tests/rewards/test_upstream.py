"""The upstream preset reproduces the released reward's documented behaviour, quirks included."""

import pytest

from rewards.deepmedix import compute_score
from rewards.frame import Frame
from rewards.ground_truth import encode_ground_truth


def upstream(response, ground_truth, **kwargs):
    return compute_score([{"response": response, "response_length": 1, "ground_truth": ground_truth}],
                         preset="upstream", **kwargs)[0]


def test_format_is_loose():
    assert upstream("<think>r</think>\\boxed{}", "yes")["format"] == 1.0
    assert upstream("<think>a</think><think>b</think>\\boxed{a}\\boxed{b}", "yes")["format"] == 1.0
    assert upstream("< think > r </ think > \\boxed{yes}", "yes")["format"] == 1.0  # spaces around <, >, / removed
    assert upstream("\\boxed{yes}", "yes")["format"] == 0.0


def test_closed_answers_compare_lower_cased_strings_only():
    assert upstream("<think>r</think>\\boxed{Yes}", "yes")["answer"] == 1.5
    assert upstream("<think>r</think>\\boxed{yes.}", "yes")["answer"] == 0.0
    assert upstream("no box at all", "None")["answer"] == 1.5  # no box reads as "None"


def test_multi_object_duplicates_lower_precision():
    assert upstream("<think>r</think>\\boxed{a|b}", "a|b")["answer"] == pytest.approx(1.5)
    assert upstream("<think>r</think>\\boxed{a|a|b}", "a|b")["answer"] == pytest.approx(1.5 * 0.8)


def test_open_ended_uses_character_bleu_and_rouge_1():
    reference = "no acute cardiopulmonary process seen today"
    reordered = "today seen process cardiopulmonary acute no"
    result = upstream(f"<think>r</think>\\boxed{{{reordered}}}", reference)["answer"]
    # ROUGE-1 ignores order (1.0); character BLEU still finds many n-grams; word ROUGE-L would not.
    assert result > 1.5 * (1.0 + 0.3) / 3


def test_coordinates_against_the_constant_512_with_no_lower_bound():
    valid, outside = "[10,10,50,50]", "[10,10,50,600]"
    assert upstream(f"<think>{valid}</think>\\boxed{{x}}", "yes")["coordinate"] == pytest.approx(0.05)
    assert upstream(f"<think>{valid} {outside}</think>\\boxed{{x}}", "yes")["coordinate"] == pytest.approx(-0.15)
    assert upstream(f"<think>{valid * 9}</think>\\boxed{{x}}", "yes")["coordinate"] == pytest.approx(0.15)
    assert upstream(f"<think>{outside * 3}</think>\\boxed{{x}}", "yes")["coordinate"] == pytest.approx(-0.6)
    assert upstream("<think>[ 10, 10, 50, 50 ]</think>\\boxed{x}", "yes")["coordinate"] == 0.0  # no spaces allowed
    assert upstream(f"<think>a</think><think>{valid}</think>\\boxed{{x}}", "yes")["coordinate"] == 0.0


def test_overall_combination_and_json_ground_truths():
    gt = encode_ground_truth("multi_object", ["left lung", "right lung"], Frame(448, 448))
    result = upstream("<think>[1,1,20,20]</think>\\boxed{left lung|right lung}", gt, format_weight=0.2)
    assert result["answer"] == pytest.approx(1.5)
    assert result["overall"] == pytest.approx(0.8 * 1.5 + 0.2 * 1.0 + 0.05)


def test_upstream_rejects_paper_only_weights():
    from rewards.deepmedix import RewardConfigError

    with pytest.raises(RewardConfigError, match="takes only format_weight"):
        upstream("x", "yes", coordinate_cap=0.3)
