"""The reward CLI's JSON Lines readers (score, validate) on lines that are not UTF-8 or not JSON rows:
counted and named, every line after them still read, never a traceback (issue 16: the same reader
class everywhere)."""

import json

from rewards.__main__ import main
from rewards.frame import Frame
from rewards.ground_truth import encode_ground_truth

GOOD = {"response": "<think>[1,1,50,50]</think>\\boxed{yes}", "ground_truth": "yes"}


def test_score_counts_a_non_utf8_line_and_scores_the_rows_after_it(tmp_path, capsys):
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_bytes(b"\n".join([json.dumps(GOOD).encode(), b"\xff\xfe broken", b'"a JSON string"',
                                     json.dumps(GOOD).encode()]) + b"\n")
    assert main(["score", str(rollouts)]) == 0
    captured = capsys.readouterr()
    assert "scored 2 rollouts, skipped 2 malformed lines" in captured.out
    assert "line 2: not UTF-8" in captured.err and "line 3: needs" in captured.err


def test_validate_names_a_non_utf8_line_and_checks_the_rows_after_it(tmp_path, capsys):
    truth = encode_ground_truth("closed", "yes", Frame(448, 448))
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(b"\n".join([json.dumps({"answer": truth}).encode(), b"\xff", b'"a JSON string"',
                                    json.dumps({"answer": truth}).encode()]))
    assert main(["validate", str(dataset)]) == 1
    captured = capsys.readouterr()
    assert "train.jsonl:2: not UTF-8" in captured.err and "train.jsonl:3: no 'answer' field" in captured.err
    assert "2 of 4 rows have a valid ground truth" in captured.out
