import pytest

from rewards.response import first_reasoning, format_problem, last_boxed

GOOD = "<think>The left costophrenic angle [10, 20, 100, 200] is blunted.</think> The answer is: \\boxed{yes}."


@pytest.mark.parametrize(
    "response",
    [
        GOOD,
        "  <think>r</think>\\boxed{yes}",
        "<think>r</think>\n\\boxed{\\frac{1}{2}}\n",
        "<think>multi\nline</think>The answer is: \\boxed{left lung, right lung}",
    ],
)
def test_conforming_responses(response):
    assert format_problem(response) is None


@pytest.mark.parametrize(
    "response, reason",
    [
        ("", "missing_think"),
        ("\\boxed{yes}", "missing_think"),
        ("<think>r \\boxed{yes}", "missing_think"),
        ("<think>a</think><think>b</think>\\boxed{yes}", "several_think_blocks"),
        ("<think>a<think>b</think></think>\\boxed{yes}", "several_think_blocks"),
        ("</think>r<think>\\boxed{yes}", "think_tags_out_of_order"),
        ("Sure! <think>r</think>\\boxed{yes}", "text_before_think"),
        ("<think>  \n </think>\\boxed{yes}", "empty_think"),
        ("<think>r</think> yes", "missing_boxed"),
        ("<think>r</think>\\boxed{yes} or \\boxed{no}", "several_boxed"),
        ("<think>r</think>\\boxed{\\boxed{yes}}", "several_boxed"),
        ("<think>r \\boxed{no}</think>\\boxed{yes}", "several_boxed"),
        ("<think>r \\boxed{yes}</think> yes", "boxed_inside_think"),
        ("<think>r</think>\\boxed{yes", "unbalanced_boxed"),
        ("<think>r</think>\\boxed{{yes}", "unbalanced_boxed"),
        ("<think>r</think>\\boxed{ }", "empty_boxed"),
        ("<think>r</think>\\boxed{}", "empty_boxed"),
    ],
)
def test_nonconforming_responses_name_their_reason(response, reason):
    assert format_problem(response) == reason


def test_last_boxed_is_brace_balanced_and_stripped():
    assert last_boxed("\\boxed{a} then \\boxed{ {b} c }") == "{b} c"
    assert last_boxed("\\boxed{x}}}") == "x"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{never closed") is None


def test_first_reasoning_needs_a_closed_block():
    assert first_reasoning("<think>a</think><think>b</think>") == "a"
    assert first_reasoning("<think>unclosed") == ""
    assert first_reasoning("</think><think>x</think>") == "x"


def test_huge_and_odd_inputs_do_not_raise():
    for text in ["{" * 100_000, "}" * 100_000, "\\boxed{" * 10_000, "<think>" * 10_000, "é漢字🙂\x00" * 1000]:
        format_problem(text)
        last_boxed(text)
        first_reasoning(text)
