import json

from rewards.__main__ import main

GOOD = {"response": "<think>[1,1,50,50]</think>\\boxed{yes}", "ground_truth": "yes"}


def test_score_counts_malformed_lines_and_writes_output(tmp_path, capsys):
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("\n".join([
        json.dumps(GOOD),
        "not json",
        json.dumps({"response": "x"}),
        json.dumps({"response": "<think>r</think>\\boxed{no}", "answer": "yes"}),
        json.dumps(["a list"]),
        "",
    ]))
    output = tmp_path / "out" / "scores.jsonl"
    assert main(["score", str(rollouts), "--output", str(output)]) == 0
    captured = capsys.readouterr()
    assert "scored 2 rollouts, skipped 3 malformed lines" in captured.out
    assert "line 2: not JSON" in captured.err and "line 3: needs" in captured.err and "line 5" in captured.err
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["reward"]["answer"] for row in rows] == [1.5, 0.0]
    assert not list(output.parent.glob(".*.tmp"))


def test_score_rejects_bad_kwargs_and_missing_files(tmp_path, capsys):
    rollouts = tmp_path / "r.jsonl"
    rollouts.write_text(json.dumps(GOOD) + "\n")
    assert main(["score", str(rollouts), "--kwargs", '{"format_wieght": 1}']) == 2
    assert main(["score", str(tmp_path / "missing.jsonl")]) == 2
    assert "unknown reward kwargs" in capsys.readouterr().err


def test_compare_shows_both_presets(capsys):
    assert main(["compare"]) == 0
    out = capsys.readouterr().out
    assert "correct, trailing period" in out and "upstream" in out


def test_validate_names_every_bad_row(tmp_path, capsys):
    from rewards.frame import Frame
    from rewards.ground_truth import encode_ground_truth

    good = encode_ground_truth("closed", "yes", Frame(448, 448), sample_id="ok-1")
    bad = json.dumps({"task": "closed", "answer": "yes", "frame": {"width": 448, "height": 448},
                      "boxes": [[0, 0, 900, 10]], "sample_id": "mscxr-42"})
    dataset = tmp_path / "train.jsonl"
    dataset.write_text("\n".join([
        json.dumps({"prompt": "<image>Q", "answer": good}),
        json.dumps({"prompt": "<image>Q", "answer": bad}),
        json.dumps({"prompt": "<image>Q", "answer": "yes"}),
        json.dumps({"prompt": "<image>Q", "answer": ["yes"]}),
        json.dumps({"prompt": "<image>Q"}),
        "{broken",
    ]) + "\n")
    assert main(["validate", str(dataset)]) == 1
    captured = capsys.readouterr()
    assert "1 of 6 rows have a valid ground truth" in captured.out
    assert "train.jsonl:2: ground truth of sample 'mscxr-42': box 0" in captured.err
    assert "train.jsonl:3: answer is not a ground-truth JSON object" in captured.err
    assert ":4: answer must be a string" in captured.err and ":5: no 'answer' field" in captured.err
    assert ":6: not JSON" in captured.err
    assert main(["validate", str(dataset), "--allow-plain"]) == 1
    assert "2 of 6 rows" in capsys.readouterr().out
