"""A batch shares the work of identical texts; the scores must be exactly those of scoring each
response alone (a batch of one shares nothing), whatever the responses."""

import gc
import random
import tracemalloc

import pytest

from rewards.components import answer_score, answer_scores
from rewards.deepmedix import RewardConfig, compute_score, score_batch, score_response
from rewards.frame import Frame
from rewards.ground_truth import encode_ground_truth, parse_ground_truth
from rewards.response import boxed_content, first_reasoning, format_problem, last_boxed, parse_response

FRAME = Frame(448, 532)
FRAGMENTS = ["<think>", "</think>", "\\boxed{", "{", "}", " yes", "No.", " left lung", ",", " and ", "|", " ",
             "\n", "[10, 20, 100, 200]", "[0,0,448,532]", "[-5, 1, 9, 9]", "[1e400, 0, 1e400, 5]", "[nan, 0, 1, 1]",
             "The answer is:", " none", "pleural effusion.", "\\boxed{}", "🙂", "\x00", "Yes"]
TRUTHS = [
    encode_ground_truth("closed", "yes", FRAME, sample_id="c"),
    encode_ground_truth("closed", "PA", FRAME),
    encode_ground_truth("multi_object", ["left lung", "right lung"], FRAME, boxes=[(10, 20, 100, 200)]),
    encode_ground_truth("multi_object", [], FRAME),
    encode_ground_truth("open_ended", "Small left pleural effusion. No pneumothorax.", FRAME),
    "yes", "left lung|heart", "a long plain report text without a frame",  # released-style plain answers
    '{"task": "closed"',  # unreadable: counted, scores 0
]


def adversarial_responses(count: int, seed: int) -> list[str]:
    """Random concatenations of the grammar's pieces: every way of breaking the format, repeated."""
    rng = random.Random(seed)
    return ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 12))) for _ in range(count)]


def test_parse_response_equals_the_three_readers():
    texts = adversarial_responses(4000, seed=0) + ["", "\\boxed{" * 50, "<think>" * 3, "}" * 9]
    for text in texts:
        assert parse_response(text) == (first_reasoning(text), last_boxed(text), format_problem(text)), text


def test_boxed_content_is_the_brace_balanced_content():
    def by_hand(text, start):  # walk the braces one by one
        depth, position = 0, start + len("\\boxed{")
        for index in range(position, len(text)):
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                if depth == 0:
                    return text[position:index]
                depth -= 1
        return None

    for text in adversarial_responses(3000, seed=3):
        start = text.find("\\boxed{")
        while start != -1:
            assert boxed_content(text, start) == by_hand(text, start), text
            start = text.find("\\boxed{", start + 1)


@pytest.mark.parametrize("config", [
    RewardConfig(),
    RewardConfig(grounding_weight=0.5, default_frame=300, format_weight=0.3),
    RewardConfig(extra_components={"answer": 0.5, "grounding": 0.2}),
    RewardConfig(preset="upstream"),
], ids=["paper", "grounding", "extra-component", "upstream"])
def test_a_batch_scores_exactly_as_each_response_alone(config):
    rng = random.Random(1)
    pool = adversarial_responses(60, seed=2) + [None, 7, "<think>[10, 20, 100, 200]</think>\\boxed{yes}"]
    # GRPO-like: groups of 8 rollouts of one ground truth, responses and answers repeating within
    # and across groups, and the same response under different ground truths.
    responses, truths = [], []
    for _ in range(40):
        truth = rng.choice(TRUTHS)
        for _ in range(8):
            responses.append(rng.choice(pool))
            truths.append(truth)
    batch = score_batch(responses, truths, config)
    alone = [score_response(response, truth, config) for response, truth in zip(responses, truths)]
    assert batch == alone  # exact, every key
    assert len(set(map(str, responses))) < len(responses) / 3  # sharing did happen


def test_answer_scores_share_identical_pairs_without_changing_them():
    truths = [parse_ground_truth(t) for t in TRUTHS[:5]]
    answers = [None, "", "yes", " Yes.", "yes", "PA", "left lung, right lung", "right lung and left lung",
               "none", "Small left pleural effusion.", "Small left pleural effusion."]
    pairs = [(a, t) for a in answers for t in truths] * 3
    shared = answer_scores([a for a, _ in pairs], [t for _, t in pairs])
    assert shared == [answer_score(a, t) for a, t in pairs]


def test_nothing_outlives_a_batch():
    """Shared work lives for one batch: an EasyR1 run scoring new long answers does not grow memory."""
    truth = encode_ground_truth("closed", "yes", FRAME)

    def batch(seed: int) -> list[dict]:
        return [{"response": f"<think>r</think>\\boxed{{{seed} {i} {'Word ' * 5000}}}", "response_length": 1,
                 "ground_truth": truth} for i in range(10)]  # 10 answers of 25 KB

    compute_score(batch(0))  # imports and lazily built tables are not growth
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for seed in range(1, 4):
            compute_score(batch(seed))
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 300_000, f"{kept} bytes kept after 3 batches of 250 KB of answers"
