"""eval.score and eval.report on damaged or non-comparable inputs: no silent loss, no silent wrong numbers."""

import json

import pytest

from eval.report import NotComparable, build_report
from eval.report import main as report_main
from eval.score import main as score_main


def vqa(i: int, **change) -> dict:
    return {"id": f"q{i}", "dataset": "mimic-ext-vqa", "task": "vqa", "question_type": "presence",
            "prediction": "yes", "reference": "yes" if i % 2 else "no", **change}


def score(tmp_path, lines: list[bytes], name="run") -> dict:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "predictions.jsonl").write_bytes(b"".join(lines))
    assert score_main([str(folder / "predictions.jsonl"), "--out", str(folder), "--bootstrap", "0", "--no-meteor"]) == 0
    return json.loads((folder / "metrics.json").read_text())


def encoded(rows) -> list[bytes]:
    return [json.dumps(row).encode() + b"\n" for row in rows]


def test_a_bad_line_is_counted_and_nothing_after_it_is_lost(tmp_path, capsys):
    """Issue 16.2: "rows": 10 of 100, 0 malformed reported."""
    lines = encoded(vqa(i) for i in range(100))
    lines[10] = b'{"id": "q10", "dataset": "mimic-ext-vqa", "task"\n'
    lines.insert(20, b"\n")
    lines[-1] = lines[-1].rstrip(b"\n")  # a valid last line without its newline
    metrics = score(tmp_path, lines)
    assert metrics["rows"] == 99 and metrics["vqa"]["mimic-ext-vqa"]["n"] == 99
    assert len(metrics["malformed_rows"]) == 1 and ":11: not valid JSON" in metrics["malformed_rows"][0]
    assert "1 line(s) left out of the scores" in capsys.readouterr().err


def test_invalid_rows_are_counted_with_their_reason_not_raised(tmp_path):
    lines = encoded([vqa(0), vqa(1, reference=None), vqa(2, id=3), vqa(3, task="report"), vqa(4, prediction=None),
                     vqa(5, reference=[None])])
    lines += [b"null\n", b'{"id": "q6", "dataset": "d", "task": "vqa", "prediction": "yes", "reference": NaN}\n']
    metrics = score(tmp_path, lines)
    assert metrics["rows"] == 1
    reasons = "\n".join(metrics["malformed_rows"])
    for expected in (":2: reference must be a string", ":3: id must be a non-empty string, got 3",
                     ":4: unknown task 'report'", ":5: prediction must be a string", ":6: reference must be",
                     ":7: not a JSON object (a JSON null)", ":8: not valid JSON (NaN is not standard JSON)"):
        assert expected in reasons


def test_duplicate_vqa_ids_are_refused_like_report_ids(tmp_path):
    """Issue 16.4: duplicate VQA ids were counted twice."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "predictions.jsonl").write_bytes(b"".join(encoded([vqa(0), vqa(1), vqa(0, prediction="no")])))
    with pytest.raises(SystemExit, match=r"predictions.jsonl:3: duplicate id 'q0' \(first on line 1\)"):
        score_main([str(folder / "predictions.jsonl"), "--out", str(folder), "--bootstrap", "0"])
    assert not (folder / "metrics.json").exists()


def test_task_names_are_case_normalised_before_grouping(tmp_path):
    """Issue 16.4: a report row with task "Findings" was scored as VQA exact match."""
    rows = [{"id": "r1", "dataset": "mimic-cxr", "task": "Findings", "prediction": "Lungs clear.",
             "reference": "Lungs clear."}, vqa(1)]
    metrics = score(tmp_path, encoded(rows))
    assert set(metrics["reports"]) == {"mimic-cxr/findings"} and set(metrics["vqa"]) == {"mimic-ext-vqa"}
    assert metrics["reports"]["mimic-cxr/findings"]["n"] == 1 and not metrics["malformed_rows"]


def test_report_refuses_runs_scored_on_different_items(tmp_path, capsys):
    """Issue 16.5: a run with 2 items "won" against one with 100, side by side, no warning."""
    score(tmp_path, encoded(vqa(i) for i in range(100)), "full")
    score(tmp_path, encoded([vqa(1), vqa(3)]), "partial")
    score(tmp_path, encoded(vqa(i) for i in range(100)), "same")
    runs = {"full": tmp_path / "full", "partial": tmp_path / "partial"}
    with pytest.raises(NotComparable, match=r"mimic-ext-vqa: different items: full n=100, partial n=2"):
        build_report(runs, tmp_path / "report")
    assert report_main(["--run", f"full={tmp_path / 'full'}", "--run", f"same={tmp_path / 'same'}",
                        "--out", str(tmp_path / "same_report")]) == 0
    table = (tmp_path / "same_report" / "vqa.md").read_text()
    assert "| mimic-ext-vqa | overall | same | 0.5000 | 100 |" in table and "not comparable" not in table
    with pytest.raises(SystemExit) as exit_info:
        report_main(["--run", f"full={tmp_path / 'full'}", "--run", f"partial={tmp_path / 'partial'}",
                     "--out", str(tmp_path / "refused")])
    assert exit_info.value.code == 2 and "not scored on the same items" in capsys.readouterr().err
    build_report(runs, tmp_path / "flagged", allow_different_items=True)
    table = (tmp_path / "flagged" / "vqa.md").read_text()
    assert "| mimic-ext-vqa [not comparable] | overall | partial | 1.0000 | 2 |" in table
    assert "mimic-ext-vqa: different items" in (tmp_path / "flagged" / "README.md").read_text()


def test_report_table_shows_n_and_marks_a_split_some_runs_lack(tmp_path):
    report = {"id": "r1", "dataset": "openi", "task": "impression", "prediction": "Normal.", "reference": "Normal."}
    score(tmp_path, encoded([report, vqa(1)]), "with_reports")
    score(tmp_path, encoded([vqa(1)]), "vqa_only")
    build_report({"a": tmp_path / "with_reports", "b": tmp_path / "vqa_only"}, tmp_path / "report")
    table = (tmp_path / "report" / "report_generation.md").read_text()
    assert table.splitlines()[0].startswith("| split | model | n | BLEU-1")
    assert "| openi/impression [not comparable] | a | 1 |" in table and "| openi/impression [not comparable] | b | 0 |" in table
    assert "| weighted average [not comparable] | a | 1 |" in table
