"""A predictions path that does not exist or is not a file: one message naming it (eval.score, the
arena), never "no scorable rows" / "nothing in common" as if it were an empty file, nor an OSError."""

import pytest

from eval.arena.run import main as arena_main
from eval.jsonl import JsonlError, read_jsonl
from eval.score import main as score_main
from tests.eval.test_arena import write_models


def test_score_names_a_missing_or_non_file_predictions_path(tmp_path):
    with pytest.raises(SystemExit, match="gone.jsonl: the predictions file does not exist"):
        score_main([str(tmp_path / "gone.jsonl"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="is not a regular file"):
        score_main([str(tmp_path), "--out", str(tmp_path / "out")])


def test_the_arena_names_a_missing_predictions_file(tmp_path):
    paths = write_models(tmp_path)
    with pytest.raises(SystemExit, match="gone.jsonl: the predictions file does not exist"):
        arena_main([f"--model=strong={paths['strong']}", f"--model=gone={tmp_path / 'gone.jsonl'}", "--judge",
                    "reference", "--out", str(tmp_path / "out")])


def test_the_reader_refuses_a_directory_and_reads_a_missing_file_as_empty(tmp_path):
    with pytest.raises(JsonlError, match="is not a regular file"):
        read_jsonl(tmp_path)
    assert read_jsonl(tmp_path / "not-yet-written.jsonl").rows == []  # a first eval.infer run's out


@pytest.mark.parametrize("content, message", [
    (b'{"reports": {', "not a readable metrics.json"),
    (b'{"rows": 3}', "lacks ['reports', 'vqa'"),
    (b"[]", "lacks ['reports'"),
])
def test_the_report_names_a_broken_metrics_file(tmp_path, capsys, content, message):
    from eval.report import main as report_main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_bytes(content)
    with pytest.raises(SystemExit) as stopped:
        report_main(["--run", f"a={tmp_path / 'run'}", "--out", str(tmp_path / "report")])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
