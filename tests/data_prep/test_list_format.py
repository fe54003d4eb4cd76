"""One list format: what the build writes as a reference answer earns the full answer score under
both reward presets, and prompts, SFT targets and teacher traces write lists the same way."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_prep.cold_start import Candidate, offline_trace
from rewards.deepmedix import compute_score
from rewards.ground_truth import parse_ground_truth
from rewards.normalize import written_answer


def well_formed(answer: str) -> str:
    return f"<think>Step 1: the region [10, 10, 50, 50] is examined.</think> The answer is: \\boxed{{{answer}}}"


def test_every_reference_answer_earns_the_full_answer_score_under_both_presets(built):
    out, _ = built
    rows = [row for split in ("grpo/train.parquet", "grpo/val.parquet", "cold_start/candidates.parquet")
            for row in pq.read_table(out / split).to_pylist()]
    truths = [parse_ground_truth(row["answer"]) for row in rows]
    assert any(t.task == "multi_object" and len(t.answer) > 1 for t in truths), "no list answer to check"
    inputs = [{"response": well_formed(written_answer(t.answer)), "response_length": 1, "ground_truth": row["answer"]}
              for t, row in zip(truths, rows)]
    for preset in ("paper", "upstream"):
        scores = compute_score(inputs, preset=preset)
        # Reports under `paper`: word-level BLEU-4 with nltk's method2 smoothing gives a verbatim
        # reference shorter than four words less than 1 (a 3-word one: 0.84), so only BLEU-1 and
        # ROUGE-L are sure to be 1 there. Every other answer must earn the full 1.5.
        full = [1.0 if preset == "paper" and t.task == "open_ended" else 1.5 for t in truths]
        wrong = [(row["sample_id"], written_answer(t.answer), s["answer"])
                 for row, t, s, f in zip(rows, truths, scores, full) if s["answer"] < f - 1e-6]
        assert not wrong, f"{preset}: {len(wrong)} reference answers not scored in full, e.g. {wrong[:3]}"


def test_lists_are_written_with_the_released_separator(built):
    out, _ = built
    stage1 = [json.loads(line) for line in (out / "stage1/train.jsonl").read_text().splitlines()]
    list_rows = [row for row in stage1 if "separated by \"|\"" in row["messages"][0]["content"]]
    assert list_rows, "no multi-object VQA row in stage 1"
    assert any("|" in row["messages"][1]["content"] for row in list_rows)
    assert not any(", " in row["messages"][1]["content"] for row in list_rows)
    candidates = pq.read_table(out / "cold_start/candidates.parquet").to_pylist()
    for row in candidates:
        truth = parse_ground_truth(row["answer"])
        if truth.task == "multi_object" and len(truth.answer) > 1:
            trace = offline_trace(Candidate(row["sample_id"], row["prompt"], Path("unused.jpg"), truth))
            assert trace.endswith("\\boxed{" + "|".join(truth.answer) + "}")


def test_edge_cases_of_the_list_format():
    # The empty list, one item of several words, items with "/" and parentheses, a list over 20 words.
    from rewards.frame import Frame
    from rewards.ground_truth import encode_ground_truth

    frame = Frame(448, 448)
    long_list = [f"finding number {n}" for n in range(9)]
    cases = [[], ["left lower lung zone"], ["pulmonary edema/hazy opacity", "mass/nodule (not otherwise specified)"],
             long_list]
    for answer in cases:
        gt = encode_ground_truth("multi_object", answer, frame)
        for preset in ("paper", "upstream"):
            score = compute_score([{"response": well_formed(written_answer(answer)), "response_length": 1,
                                    "ground_truth": gt}], preset=preset)[0]["answer"]
            assert score == pytest.approx(1.5), (preset, answer)
    # A report with spaces around "/": the released code rewrites the response, so the reference is too.
    gt = encode_ground_truth("open_ended", "Heart size is normal. Lungs clear, PA / lateral views.", frame)
    score = compute_score([{"response": well_formed("Heart size is normal. Lungs clear, PA / lateral views."),
                            "response_length": 1, "ground_truth": gt}], preset="upstream")[0]["answer"]
    assert score == pytest.approx(1.5)
