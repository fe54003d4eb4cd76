"""eval.baselines (make eval-baselines): cards -> inference against a local chat server -> scores ->
one report side by side; external predictions; failures reported, the others still scored."""

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from eval.baselines import infer_config, main
from eval.model_cards import load_card
from tests.chat_server import FakeChatServer, completion
from tests.eval.test_endpoint_backend import items  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]


def behave(prompt, attempt):
    number = prompt.split("number ")[1].split(".")[0]
    if "\\boxed{}" in prompt:  # the (think) row got the reasoning-format prompt
        return 200, completion(f"<think>At [1, 2, 3, 4].</think> \\boxed{{yes {number}}}"), 0, {}
    if "findings" in prompt:
        return 200, completion("Findings: Clear lungs."), 0, {}
    return 200, completion("yes"), 0, {}


def external_predictions(items_file: Path, path: Path) -> Path:
    rows = []
    for line in items_file.read_text().splitlines():
        item = json.loads(line)
        rows.append({"id": item["id"], "dataset": item["source"], "task": item["task"], "reference": item["answer"],
                     "question_type": item["subtype"], "prediction": "Clear lungs." if item["task"] == "findings" else "no"})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_cards_run_scored_and_reported_side_by_side(items, tmp_path):  # noqa: F811
    server = FakeChatServer(behave, models=["qwen2.5-vl-7b"])
    out = tmp_path / "baselines"
    args = ["--models", "qwen2.5-vl-7b,qwen2.5-vl-7b-think", "llava-rad", "--items-file", str(items),
            "--out", str(out), "--score-args", "--bootstrap 0 --no-meteor",
            "--predictions", f"llava-rad={external_predictions(items, tmp_path / 'llava.jsonl')}",
            "--set", f"qwen2.5-vl-7b:endpoint.base_url={server.url}",
            "--set", f"qwen2.5-vl-7b-think:endpoint.base_url={server.url}"]
    try:
        assert main(args) == 0
        sent = len(server.requests)
        assert main(args) == 0  # a rerun: everything resumed, nothing sent
    finally:
        server.close()
    assert sent == 24 and len(server.requests) == 24
    plain = [json.loads(line) for line in (out / "qwen2.5-vl-7b" / "predictions.jsonl").read_text().splitlines()]
    think = [json.loads(line) for line in (out / "qwen2.5-vl-7b-think" / "predictions.jsonl").read_text().splitlines()]
    assert {row["prediction"] for row in plain if row["task"] == "findings"} == {"Clear lungs."}  # header stripped
    assert {row["prediction"] for row in think if row["id"] == "item-1"} == {"yes 1"}
    assert all(row["model"] == "Qwen/Qwen2.5-VL-7B-Instruct" for row in plain + think)
    for name in ("qwen2.5-vl-7b", "qwen2.5-vl-7b-think", "llava-rad"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["rows"] == 12
    table = (out / "report" / "vqa.md").read_text()
    assert all(name in table for name in ("qwen2.5-vl-7b", "qwen2.5-vl-7b-think", "llava-rad"))
    summary = (out / "baselines.md").read_text()
    assert "Qwen2.5-VL-7B (think)" in summary and "task prompt + reasoning-format prompt" in summary
    status = {row["card"]: row["status"] for row in json.loads((out / "baselines.json").read_text())["models"]}
    assert status == {"qwen2.5-vl-7b": "scored", "qwen2.5-vl-7b-think": "scored", "llava-rad": "scored"}


def test_a_failing_model_is_reported_and_the_others_still_scored(items, tmp_path):  # noqa: F811
    server = FakeChatServer(behave)
    out = tmp_path / "baselines"
    try:
        code = main(["--models", "qwen2.5-vl-7b", "chexagent", "medgemma", "--items-file", str(items),
                     "--out", str(out), "--score-args", "--bootstrap 0 --no-meteor", "--limit", "3",
                     "--set", f"qwen2.5-vl-7b:endpoint.base_url={server.url}",
                     "--set", "medgemma:endpoint.base_url=http://127.0.0.1:9/v1",  # nothing serves it
                     "--set", "medgemma:endpoint.max_retries=0"])
    finally:
        server.close()
    assert code == 1
    results = {row["card"]: row for row in json.loads((out / "baselines.json").read_text())["models"]}
    assert results["qwen2.5-vl-7b"]["status"] == "scored"
    assert "--predictions chexagent=FILE" in results["chexagent"]["error"]
    assert "EndpointUnavailable" in results["medgemma"]["error"] and "serve" in results["medgemma"]["error"]
    assert (out / "report" / "vqa.md").exists() and "medgemma" not in (out / "report" / "vqa.md").read_text()


def test_remote_endpoints_in_baselines_need_the_flag(items, tmp_path):  # noqa: F811
    out = tmp_path / "b"
    code = main(["--models", "qwen2.5-vl-7b", "--items-file", str(items), "--out", str(out),
                 "--set", "qwen2.5-vl-7b:endpoint.base_url=https://api.example.org/v1"])
    assert code == 1
    error = json.loads((out / "baselines.json").read_text())["models"][0]["error"]
    assert error.startswith("RemoteEndpointRefused")
    args = argparse.Namespace(items_file=items, image_root=None, limit=None, allow_remote_endpoint=True)
    cfg = infer_config(load_card("qwen2.5-vl-7b"), args, out / "p.jsonl", ["endpoint.base_url=https://x.org/v1"])
    assert cfg.endpoint.allow_remote_endpoint is True


def test_card_configs_for_in_process_backends(items, tmp_path):  # noqa: F811
    args = argparse.Namespace(items_file=items, image_root=None, limit=5, allow_remote_endpoint=False)
    cfg = infer_config(load_card("deepseek-vl-7b"), args, tmp_path / "p.jsonl", ["sampling.seed=7"])
    assert cfg.backend == "hf" and cfg.model == "deepseek-community/deepseek-vl-7b-chat"
    assert cfg.reasoning_format is False and cfg.parsing.answer == "plain" and cfg.sampling.seed == 7
    assert cfg.limit == 5 and cfg.endpoint.model is None  # the recipe's endpoint section, unused
    cfg = infer_config(load_card("deepmedix-r1"), args, tmp_path / "p.jsonl", [])
    assert cfg.backend == "endpoint" and cfg.reasoning_format is True and cfg.batch_size == 128
    assert cfg.endpoint.model == "deepmedix-r1" and cfg.endpoint.timeout_s == 600  # recipe defaults kept


@pytest.mark.parametrize("bad, message", [
    (["--models", "qwen2.5-vl-7b", "qwen2.5-vl-7b"], "listed twice"),
    (["--models", "gpt-4v"], "no model card"),
    (["--models", "qwen2.5-vl-7b", "--set", "medgemma:x=1"], "not among --models"),
    (["--models", "qwen2.5-vl-7b", "--set", "qwen2.5-vl-7b=x"], "expected NAME:key=value"),
    (["--models", "qwen2.5-vl-7b", "--run", "ours=/no/such/run"], "expected NAME=DIR with DIR/metrics.json"),
])
def test_bad_arguments_fail_before_any_run(bad, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*bad, "--items-file", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_make_eval_baselines_passes_the_models_and_arguments():
    quiet = ["TRAIN_DEPS=", "TRAIN_PYTHON=python"]  # no venv set-up in a test
    result = subprocess.run(["make", "-n", "eval-baselines", "MODELS=qwen2.5-vl-7b medgemma", *quiet,
                             "BASELINES_ARGS=--limit 5"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "-m eval.baselines --models qwen2.5-vl-7b medgemma" in result.stdout and "--limit 5" in result.stdout
    assert "make eval-baselines: set MODELS" in subprocess.run(
        ["make", "eval-baselines", *quiet], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False).stderr
