"""Report Arena with a judge that gives no reply: a clear refusal, never a traceback deep inside the
Bradley-Terry fit; failed calls are counted apart from unparseable verdicts and retried on a rerun."""

import json

import pytest

from eval.arena.run import main as arena_main
from tests.chat_server import FakeChatServer, completion
from tests.eval.test_arena import write_models


def arguments(paths, url, out):
    return [f"--model={n}={p}" for n, p in paths.items()] + [
        "--judge", "endpoint", "--base-url", url, "--budget", "30", "--out", str(out),
        "--bootstrap", "0", "--max-retries", "0", "--timeout", "5"]


def test_a_judge_that_is_down_is_one_message_and_exit_status_2(tmp_path, capsys):
    server = FakeChatServer(lambda prompt, attempt: (500, {"error": {"message": "model not loaded"}}, 0, {}))
    try:
        with pytest.raises(SystemExit) as stopped:
            arena_main(arguments(write_models(tmp_path), server.url, tmp_path / "out"))
    finally:
        server.close()
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert "the judge answered none of the" in message and "model not loaded" in message
    assert not (tmp_path / "out" / "ranking.csv").exists()


def test_failed_judgments_are_counted_apart_and_retried_on_a_rerun(tmp_path):
    calls = {"failing": True}

    def behave(prompt, attempt):
        a = prompt.split("Report A:\n")[1].split("\n\nReport B:")[0]
        b = prompt.split("Report B:\n")[1].split("\n\nWhich report")[0]
        if calls["failing"] and "number 3." in a:
            return 500, {"error": {"message": "overloaded"}}, 0, {}
        return 200, completion("A" if len(a) > len(b) else "B" if len(b) > len(a) else "TIE"), 0, {}

    server = FakeChatServer(behave)
    paths = write_models(tmp_path)
    try:
        assert arena_main(arguments(paths, server.url, tmp_path / "out")) == 0
        first = json.loads((tmp_path / "out" / "summary.json").read_text())
        calls["failing"] = False
        assert arena_main(arguments(paths, server.url, tmp_path / "out")) == 0
        again = json.loads((tmp_path / "out" / "summary.json").read_text())
    finally:
        server.close()
    assert first["verdicts"]["failed"] > 0 and first["verdicts"]["unparseable"] == 0
    assert any("overloaded" in error for error in first["judge_errors"])
    assert again["verdicts"]["failed"] == 0 and again["requests_sent"] == first["verdicts"]["failed"]


@pytest.mark.parametrize("option, value", [("--round", "0"), ("--budget", "0"), ("--budget", "-3"), ("--concurrency", "0")])
def test_counts_out_of_range_are_refused_by_the_parser(tmp_path, capsys, option, value):
    """--round 0 drew nothing per round and looped forever."""
    paths = write_models(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        arena_main([f"--model={n}={p}" for n, p in paths.items()] + ["--judge", "reference", option, value,
                                                                      "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2 and "must be at least" in capsys.readouterr().err
