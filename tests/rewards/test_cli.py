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
