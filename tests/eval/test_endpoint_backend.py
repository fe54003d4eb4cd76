"""eval.infer backend=endpoint against a local chat server: answers, bounded concurrency, the reply
cache (a rerun sends nothing), resume after a kill, failures retried, remote endpoints refused."""

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from data_prep.endpoint import EndpointUnavailable, RemoteEndpointRefused
from eval.infer import infer
from rewards.settings import ConfigValueError
from tests.chat_server import FakeChatServer, completion

ROOT = Path(__file__).resolve().parents[2]
SERVED = "served-model"


def reply_for(prompt: str) -> str:
    """A reasoning-format answer that names the item, so each row can be checked against its prompt."""
    number = prompt.split("number ")[1].split(".")[0]
    if "findings" in prompt:
        return f"<think>The lungs at [10, 20, 60, 80] look clear.</think> \\boxed{{Report {number}: no acute process.}}"
    return f"<think>Look at [1, 2, 3, 4].</think> \\boxed{{answer {number}}}"


def answering(delay=0.0):
    return lambda prompt, attempt: (200, completion(reply_for(prompt)), delay, {})


@pytest.fixture
def items(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "test").mkdir()
    rows = []
    for i in range(12):
        Image.effect_noise((40, 32), 20 + i).convert("RGB").save(data / "images" / f"{i}.jpg")
        task = "findings" if i % 3 == 0 else "vqa"
        rows.append({"id": f"item-{i}", "source": "mimic-cxr" if task == "findings" else "mimic-ext-vqa",
                     "task": task, "subtype": None if task == "findings" else "presence",
                     "images": [f"images/{i}.jpg"], "answer": "yes" if task == "vqa" else "Clear lungs.",
                     "answer_kind": "closed" if task == "vqa" else "open_ended",
                     "prompt": f"<image>Describe the findings, number {i}." if task == "findings"
                     else f"<image>Is there an effusion, number {i}."})
    path = data / "test" / "items.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def config(items_file, out, url, **extra):
    base = OmegaConf.load(ROOT / "recipes" / "eval" / "xraybench.yaml")
    base.pop("hydra")
    return OmegaConf.merge(base, {
        "model": "org/checkpoint", "items_file": str(items_file), "out": str(out), "backend": "endpoint",
        "batch_size": 4, "sampling": {"max_new_tokens": 64, "seed": 3},
        "endpoint": {"base_url": url, "model": SERVED, "max_retries": 0, "timeout_s": 10, "concurrency": 4},
    }, extra)


def rows_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_answers_are_parsed_and_requests_carry_the_image_and_sampling(items, tmp_path, monkeypatch):
    monkeypatch.setenv("XRAY_TEST_KEY", "sk-secret-value-123")
    server = FakeChatServer(answering(), models=[SERVED])
    out = tmp_path / "run" / "predictions.jsonl"
    try:
        summary = infer(config(items, out, server.url, endpoint={"api_key_env": "XRAY_TEST_KEY"},
                               system_prompt="You are an expert radiologist."))
    finally:
        server.close()
    assert summary["generated"] == 12 and summary["failed"] == 0 and summary["requests_sent"] == 12
    rows = {row["id"]: row for row in rows_of(out)}
    assert rows["item-0"]["prediction"] == "Report 0: no acute process."
    assert rows["item-0"]["boxes"] == [[10, 20, 60, 80]] and "lungs" in rows["item-0"]["reasoning"]
    assert rows["item-4"]["prediction"] == "answer 4" and rows["item-4"]["reference"] == "yes"
    assert rows["item-4"]["model"] == "org/checkpoint" and rows["item-4"]["raw_output"].startswith("<think>")

    body = next(b for b in server.bodies if "number 4." in json.dumps(b))
    assert body["model"] == SERVED and body["temperature"] == 0.6 and body["top_p"] == 0.95
    assert body["seed"] == 3 and body["max_tokens"] == 64
    assert body["messages"][0] == {"role": "system", "content": "You are an expert radiologist."}
    image, text = body["messages"][1]["content"]
    expected = base64.b64encode((items.parent.parent / "images" / "4.jpg").read_bytes()).decode()
    assert image["image_url"]["url"] == f"data:image/jpeg;base64,{expected}"  # the file as it is on disk
    assert text["text"].startswith("Is there an effusion, number 4.") and "\\boxed{}" in text["text"]
    assert "<image>" not in text["text"]
    assert server.authorizations == {"Bearer sk-secret-value-123"}
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != items]
    assert written and not any(b"sk-secret-value-123" in p.read_bytes() for p in written)


def test_requests_run_concurrently_but_never_above_the_bound(items, tmp_path):
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def behave(prompt, attempt):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return 200, completion(reply_for(prompt)), 0, {}

    server = FakeChatServer(behave)
    try:
        summary = infer(config(items, tmp_path / "p.jsonl", server.url, batch_size=12, endpoint={"concurrency": 3}))
    finally:
        server.close()
    assert summary["generated"] == 12
    assert state["peak"] == 3  # in flight together, and never more than endpoint.concurrency


def test_a_rerun_from_the_cache_sends_no_request(items, tmp_path):
    server = FakeChatServer(answering())
    cache = tmp_path / "cache"
    first_out, second_out = tmp_path / "a" / "predictions.jsonl", tmp_path / "b" / "predictions.jsonl"
    try:
        first = infer(config(items, first_out, server.url, endpoint={"cache_dir": str(cache)}))
        sent = len(server.requests)
        again = infer(config(items, first_out, server.url, endpoint={"cache_dir": str(cache)}))
        fresh = infer(config(items, second_out, server.url, endpoint={"cache_dir": str(cache)}))  # file lost
        other_model = infer(config(items, tmp_path / "c.jsonl", server.url, model="org/another",
                                   endpoint={"cache_dir": str(cache)}, limit=2))
    finally:
        server.close()
    assert first["requests_sent"] == sent == 12
    assert again["generated"] == 0 and again["requests_sent"] == 0
    assert fresh["generated"] == 12 and fresh["requests_sent"] == 0
    assert [r["prediction"] for r in rows_of(first_out)] == [r["prediction"] for r in rows_of(second_out)]
    # another checkpoint behind the same served name never gets this one's cached replies
    assert other_model["requests_sent"] == 2 and len(server.requests) == 14


def test_a_killed_run_resumes_without_duplicates_or_repeated_requests(items, tmp_path):
    server = FakeChatServer(answering(delay=0.2))
    out = tmp_path / "predictions.jsonl"
    command = [sys.executable, "-m", "eval.infer", "model=org/checkpoint", f"items_file={items}", f"out={out}",
               "backend=endpoint", f"endpoint.base_url={server.url}", f"endpoint.model={SERVED}",
               "endpoint.concurrency=2", "batch_size=2", "endpoint.max_retries=0",
               "sampling.max_new_tokens=64", "sampling.seed=3"]  # the resumed run's setup (its provenance)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 4):
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        done_before = {row["id"] for row in rows_of(out)}
        assert 4 <= len(done_before) < 12
        requests_before = len(server.requests)
        summary = infer(config(items, out, server.url))
    finally:
        if process.poll() is None:
            process.kill()
        server.close()
    ids = [row["id"] for row in rows_of(out)]
    assert sorted(ids) == sorted(f"item-{i}" for i in range(12)) and len(ids) == len(set(ids))
    assert summary["already_done"] == len(done_before)
    repeated = [text for text in server.requests[requests_before:] if any(
        f"number {i}." in text for i in (int(x.split("-")[1]) for x in done_before))]
    assert repeated == []  # finished items are neither regenerated nor re-requested
    assert summary["requests_sent"] <= 12 - len(done_before)  # replies that arrived before the kill are cached


def test_failed_calls_are_left_out_and_retried_on_the_next_run(items, tmp_path):
    broken = {"on": True}

    def behave(prompt, attempt):
        if broken["on"] and "number 5." in prompt:
            return 500, {"error": {"message": "overloaded"}}, 0, {}
        return 200, completion(reply_for(prompt)), 0, {}

    server = FakeChatServer(behave)
    out = tmp_path / "predictions.jsonl"
    try:
        first = infer(config(items, out, server.url))
        broken["on"] = False
        second = infer(config(items, out, server.url))
    finally:
        server.close()
    assert first["failed"] == 1 and first["generated"] == 11 and "InternalServerError" in first["errors"][0]
    assert "item-5" not in {row["id"] for row in rows_of(tmp_path / "predictions.jsonl")[:11]}
    assert second["already_done"] == 11 and second["generated"] == 1 and second["requests_sent"] == 1
    assert len(rows_of(out)) == 12


def test_the_cli_exits_non_zero_when_items_got_no_reply(items, tmp_path):
    server = FakeChatServer(lambda prompt, attempt: (500, {"error": {"message": "down"}}, 0, {}))
    try:
        result = subprocess.run([sys.executable, "-m", "eval.infer", "model=m", f"items_file={items}",
                                 f"out={tmp_path / 'p.jsonl'}", "backend=endpoint", f"endpoint.base_url={server.url}",
                                 f"endpoint.model={SERVED}", "endpoint.max_retries=0", "limit=2"],
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                                text=True, timeout=120, check=False)
    finally:
        server.close()
    assert result.returncode != 0 and "2 items got no reply" in result.stderr


def test_an_endpoint_that_is_down_or_serves_another_model_is_a_clear_error(items, tmp_path):
    server = FakeChatServer(answering(), models=["some-other-model"])
    try:
        with pytest.raises(EndpointUnavailable, match="not 'served-model'"):
            infer(config(items, tmp_path / "a.jsonl", server.url))
    finally:
        server.close()
    with pytest.raises(EndpointUnavailable, match="no OpenAI-compatible server answers"):
        infer(config(items, tmp_path / "b.jsonl", server.url))  # closed now


def test_remote_endpoints_need_the_boolean_opt_in(items, tmp_path):
    remote = "https://api.example.org/v1"
    with pytest.raises(RemoteEndpointRefused):
        infer(config(items, tmp_path / "p.jsonl", remote))
    for text in ("true", "yes", 1):
        with pytest.raises(ConfigValueError, match="allow_remote_endpoint must be true or false"):
            infer(config(items, tmp_path / "p.jsonl", remote, endpoint={"allow_remote_endpoint": text}))
    assert not (tmp_path / "p.jsonl").exists()

    from eval.endpoint_backend import EndpointGenerator

    cfg = config(items, tmp_path / "p.jsonl", remote, endpoint={"allow_remote_endpoint": True})
    assert EndpointGenerator(cfg, tmp_path / "p.jsonl").endpoint.config.base_url == remote  # built, nothing sent


def test_card_parsing_is_applied_to_endpoint_outputs(items, tmp_path):
    server = FakeChatServer(lambda prompt, attempt: (200, completion("**Findings:** Heart size normal. \\boxed{x}"), 0, {}))
    try:
        infer(config(items, tmp_path / "p.jsonl", server.url, reasoning_format=False, limit=2,
                     parsing={"answer": "plain", "strip_report_header": True}))
    finally:
        server.close()
    rows = {row["id"]: row for row in rows_of(tmp_path / "p.jsonl")}
    assert rows["item-0"]["prediction"] == "Heart size normal. \\boxed{x}"  # a report: header gone, text kept
    assert rows["item-1"]["prediction"] == "**Findings:** Heart size normal. \\boxed{x}"  # VQA: untouched
    assert "\\boxed{}" not in " ".join(server.requests)  # no reasoning-format prompt


def test_a_system_prompt_is_refused_by_the_in_process_backends(items, tmp_path):
    with pytest.raises(ValueError, match="backend=endpoint only"):
        infer(config(items, tmp_path / "p.jsonl", "http://127.0.0.1:9/v1", backend="hf", system_prompt="x"))
