import pytest

from rewards.frame import Frame
from rewards.ground_truth import encode_ground_truth
from rewards.trl_adapter import completion_text, make_trl_reward

GT = encode_ground_truth("closed", "yes", Frame(448, 448))
GOOD = "<think>[10,10,100,100]</think>\\boxed{yes}"


def test_called_the_way_grpo_trainer_calls_it():
    reward = make_trl_reward()
    assert reward.__name__ == "deepmedix_r1"  # TRL logs rewards/<__name__>
    conversational = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": "no"}]]
    scores = reward(prompts=[[], []], completions=conversational, completion_ids=[[1], [2]], answer=[GT, GT],
                    trainer_state=None)
    assert scores == [pytest.approx(0.9 * 1.5 + 0.1 + 0.05), 0.0]


def test_plain_text_completions_and_custom_column():
    reward = make_trl_reward(ground_truth_column="solution", format_weight=0.5)
    (value,) = reward(prompts=["p"], completions=[GOOD], solution=[GT])
    assert value == pytest.approx(0.5 * 1.5 + 0.5 + 0.05)


def test_missing_column_names_the_columns_seen():
    with pytest.raises(KeyError, match="no column 'answer'"):
        make_trl_reward()(prompts=["p"], completions=[GOOD], solution=[GT])


def test_completion_text_handles_content_parts():
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "<think>a</think>"}, {"type": "text", "text": "x"}]}]
    assert completion_text(parts) == "<think>a</think>x"
    assert completion_text(None) == ""
