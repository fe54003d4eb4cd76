"""Cold-start synthesis against a local chat-completions server on 127.0.0.1, and offline."""

import json
import re
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from data_prep.cold_start import Candidate, load_candidates, offline_trace, parse_verdict, synthesize, trace_problem
from data_prep.endpoint import EndpointConfig, RemoteEndpointRefused, check_endpoint_policy
from rewards.boxes import parse_boxes
from rewards.frame import Frame
from rewards.ground_truth import GroundTruth
from tests.chat_server import FakeChatServer, completion

SECRET = "sk-test-never-written-0123456789"


def teacher_fields(prompt: str) -> tuple[str, int, int]:
    width, height = map(int, re.search(r"(\d+) pixels wide and (\d+) pixels high", prompt).groups())
    answer = re.search(r"The correct final answer \(do not contradict it\):\n(.*)\n", prompt).group(1)
    return answer, width, height


def good_trace(prompt: str) -> str:
    answer, width, height = teacher_fields(prompt)
    return (f"<think>Step 1: the left lower zone [{width // 2}, {height // 2}, {width - 5}, {height - 5}] is examined "
            f"closely. Step 2: findings there support the answer.</think> The answer is: \\boxed{{{answer}}}")


@pytest.fixture
def data_dir(built, tmp_path) -> Path:
    """A private copy of the built datasets (synthesis writes into it)."""
    source, _ = built
    target = tmp_path / "data"
    shutil.copytree(source, target)
    return target


def config(data_dir: Path, url: str, **overrides):
    base = OmegaConf.load(Path(__file__).resolve().parents[2] / "recipes" / "data" / "cold_start.yaml")
    base.pop("hydra")
    cfg = OmegaConf.merge(base, {
        "data_dir": str(data_dir), "size": 1000, "batch_size": 16,
        "teacher": {"base_url": url, "model": "fake-teacher", "timeout_s": 2.0, "max_retries": 2, "concurrency": 4},
        "verifier": {"base_url": url, "model": "fake-verifier", "timeout_s": 2.0, "max_retries": 1},
    })
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist([f"{k}={v}" for k, v in overrides.items()]))


def test_good_teacher_rerun_makes_no_call_and_secret_stays_out(data_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = FakeChatServer(lambda prompt, attempt: (200, completion(good_trace(prompt)), 0, {}))
    try:
        report = synthesize(config(data_dir, server.url))
        first_requests = len(server.requests)
        first = (data_dir / "cold_start" / "train.jsonl").read_bytes()
        again = synthesize(config(data_dir, server.url))
    finally:
        server.close()
    candidates = len(load_candidates(data_dir))
    assert report["kept"] == candidates and report["requests_sent"]["teacher"] == first_requests == candidates
    assert again["requests_sent"] == {"teacher": 0, "verifier": 0} and len(server.requests) == first_requests
    assert (data_dir / "cold_start" / "train.jsonl").read_bytes() == first
    assert server.authorizations == {f"Bearer {SECRET}"}  # the key is used...
    for path in data_dir.rglob("*"):  # ...and written nowhere
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    info = json.loads((data_dir / "dataset_info.json").read_text())
    assert {"deepmedix_stage1", "deepmedix_cold_start"} <= set(info)


def test_every_rejection_reason_is_counted(data_dir):
    def behave(prompt, attempt):
        answer, width, height = teacher_fields(prompt)
        digest = sum(map(ord, prompt)) % 7
        replies = {
            0: good_trace(prompt),
            1: f"no think block \\boxed{{{answer}}}",
            2: f"<think>Step 1: region [0, 0, {width + 50}, {height}] looks abnormal here.</think> \\boxed{{{answer}}}",
            3: "<think>Step 1: the lung [10, 10, 60, 60] is examined carefully today.</think> \\boxed{zebra}",
            4: f"<think>No regions are cited in this reasoning at all, sadly.</think> \\boxed{{{answer}}}",
            5: f"<think>short [1, 1, 9, 9]</think> \\boxed{{{answer}}}",
        }
        if digest == 6:
            return 200, b"{this is not json", 0, {}
        return 200, completion(replies[digest]), 0, {}

    server = FakeChatServer(behave)
    try:
        report = synthesize(config(data_dir, server.url))
    finally:
        server.close()
    assert set(report["rejected"]) == {
        "format_missing_think", "box_outside_frame", "answer_disagrees_with_ground_truth", "too_few_boxes",
        "reasoning_too_short", "teacher_call_failed",
    }
    rejected = [json.loads(line) for line in (data_dir / "cold_start" / "rejected.jsonl").read_text().splitlines()]
    assert sum(report["rejected"].values()) == len(rejected) and report["kept"] + len(rejected) == report["considered"]


def test_rate_limits_are_retried_and_timeouts_are_counted(data_dir):
    def behave(prompt, attempt):
        answer, _, _ = teacher_fields(prompt)
        if answer == "yes":
            return 200, completion(good_trace(prompt)), 5.0, {}  # longer than the 2 s timeout, every time
        if attempt == 1:
            return 429, {"error": {"message": "slow down", "type": "rate_limit"}}, 0, {"Retry-After": "0"}
        return 200, completion(good_trace(prompt)), 0, {}

    server = FakeChatServer(behave)
    try:
        report = synthesize(config(data_dir, server.url, **{"teacher.max_retries": 1, "teacher.timeout_s": 0.5}))
    finally:
        server.close()
    yes = sum(1 for c in load_candidates(data_dir) if c.truth.answer == "yes")
    assert yes and report["rejected"] == {"teacher_call_failed": yes}
    assert report["kept"] == report["candidates"] - yes  # each 429 was retried and then answered


def test_a_resumed_run_only_asks_for_what_is_missing(data_dir):
    server = FakeChatServer(lambda prompt, attempt: (200, completion(good_trace(prompt)), 0, {}))
    try:
        partial = synthesize(config(data_dir, server.url, size=5, batch_size=5))
        after_partial = len(server.requests)
        full = synthesize(config(data_dir, server.url))
    finally:
        server.close()
    assert partial["kept"] == 5 and after_partial == 5
    assert full["requests_sent"]["teacher"] == full["candidates"] - 5 == len(server.requests) - 5


def test_verifier_verdicts(data_dir):
    def behave(prompt, attempt):
        if "Reply with exactly one word" in prompt:
            answer = re.search(r"Correct answer: (.*)\n", prompt).group(1)
            verdict = {"yes": "VALID", "no": "INVALID\nthe box is on the wrong side"}.get(answer, "maybe?")
            return 200, completion(verdict), 0, {}
        return 200, completion(good_trace(prompt)), 0, {}

    server = FakeChatServer(behave)
    try:
        report = synthesize(config(data_dir, server.url, **{"verifier.enabled": True}))
    finally:
        server.close()
    answers = [c.truth.answer for c in load_candidates(data_dir)]
    assert report["kept"] == answers.count("yes")
    assert report["rejected"].get("verifier_rejected", 0) == answers.count("no")
    assert report["rejected"]["verifier_unparseable"] == len(answers) - answers.count("yes") - answers.count("no")
    assert parse_verdict("**VALID**") == "valid" and parse_verdict("") is None


def test_remote_endpoints_need_an_explicit_opt_in(data_dir):
    for url in ("https://api.openai.com/v1", "http://10.0.0.5:8000/v1", "http://example.org/v1"):
        with pytest.raises(RemoteEndpointRefused, match="credentialed"):
            synthesize(config(data_dir, url))
    check_endpoint_policy(EndpointConfig(base_url="https://api.example.org/v1", allow_remote_endpoint=True))
    for url in ("http://localhost:8000/v1", "http://127.0.0.2:1/v1", "http://[::1]:8000/v1"):
        check_endpoint_policy(EndpointConfig(base_url=url))


def test_offline_teacher_traces_pass_validation_and_are_labelled(data_dir):
    report = synthesize(config(data_dir, "http://127.0.0.1:9/v1", **{"teacher.kind": "offline"}))
    rows = [json.loads(line) for line in (data_dir / "cold_start" / "train.jsonl").read_text().splitlines()]
    assert report["kept"] == report["candidates"] == len(rows) and report["requests_sent"]["teacher"] == 0
    assert all("not a model" in row["teacher"] for row in rows)
    assert all(row["messages"][0]["content"].startswith("<image>") and "\\boxed{}" in row["messages"][0]["content"]
               for row in rows)
    assert all((data_dir / row["images"][0]).is_file() for row in rows)

    from datasets import load_dataset
    from llamafactory.data.converter import align_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments
    from transformers import Seq2SeqTrainingArguments

    (attr,) = get_dataset_list(["deepmedix_cold_start"], str(data_dir))
    raw = load_dataset("json", data_files=str(data_dir / attr.dataset_name), split="train")
    aligned = align_dataset(raw, attr, DataArguments(dataset_dir=str(data_dir), template="qwen2_vl"),
                            Seq2SeqTrainingArguments(output_dir=str(data_dir / "tmp"), report_to=[]))
    assert len(aligned) == len(rows) and all(Path(example["_images"][0]).is_file() for example in aligned)


def test_trace_rules():
    rules = OmegaConf.create({"min_boxes": 1, "min_reasoning_chars": 20, "max_reasoning_chars": 300,
                              "open_ended_min_overlap": 0.5, "multi_object_min_f1": 1.0})
    truth = GroundTruth("multi_object", ("left lung", "heart"), Frame(448, 448))
    think = "<think>The left lung [300, 60, 420, 380] and the heart [150, 200, 330, 380] are involved.</think>"
    assert trace_problem(f"{think} \\boxed{{heart|left lung}}", truth, rules) is None
    # One list format: a list written with commas would score 0 under the upstream preset.
    assert trace_problem(f"{think} \\boxed{{heart, left lung}}", truth, rules) == "answer_list_not_separated_by_pipe"
    assert trace_problem(f"{think} \\boxed{{heart}}", truth, rules) == "answer_disagrees_with_ground_truth"
    assert trace_problem(f"{think} \\boxed{{}}", truth, rules) == "format_empty_boxed"
    assert trace_problem(think.replace("[150, 200, 330, 380]", "[0, 0, 448, 448]") + "\\boxed{heart|left lung}",
                         truth, rules) == "box_whole_image"
    assert trace_problem("<think>" + "x" * 400 + " [1, 1, 50, 50]</think>\\boxed{heart|left lung}", truth,
                         rules) == "reasoning_too_long"
    report = GroundTruth("open_ended", "Small left pleural effusion. No pneumothorax.", Frame(448, 448))
    trace = offline_trace(Candidate("s1", "Describe the findings.", Path("unused.jpg"), report))
    assert trace_problem(trace, report, OmegaConf.merge(rules, {"max_reasoning_chars": 6000})) is None
    # each sentence once in the reasoning and once in the answer (a third copy taught loops)
    assert trace.count("Small left pleural effusion.") == 2 and trace.count("No pneumothorax.") == 2


def test_originals_kept_in_place_still_give_traces(releases, make_config, tmp_path):
    from data_prep.build import build

    data = tmp_path / "data"
    build(make_config(releases[0], data, "images.resize=false"))
    report = synthesize(config(data, "http://127.0.0.1:9/v1", **{"teacher.kind": "offline"}))
    rows = [json.loads(line) for line in (data / "cold_start" / "train.jsonl").read_text().splitlines()]
    assert report["kept"] == len(rows) > 0
    assert all(Path(row["images"][0]).is_absolute() and Path(row["images"][0]).is_file() for row in rows)


def test_a_string_boolean_never_opts_in_to_a_remote_endpoint(data_dir):
    """Issue 16.11: ``teacher.allow_remote_endpoint=no`` (a string) let a remote teacher through."""
    from rewards.settings import ConfigValueError

    remote = {"teacher": {"base_url": "http://example.org/v1", "allow_remote_endpoint": "no"}}
    with pytest.raises(ConfigValueError, match="teacher.allow_remote_endpoint must be true or false, got 'no'"):
        synthesize(OmegaConf.merge(config(data_dir, "http://127.0.0.1:9/v1"), remote))
    for key in ("verifier.enabled", "verifier.allow_remote_endpoint"):
        section, name = key.split(".")
        with pytest.raises(ConfigValueError, match=key):
            synthesize(OmegaConf.merge(config(data_dir, "http://127.0.0.1:9/v1"), {section: {name: "false"}}))
    for value in ("no", "false", 0, 1, None):  # every client of the endpoint, whatever built its config
        with pytest.raises(ConfigValueError, match="allow_remote_endpoint must be true or false"):
            EndpointConfig(base_url="http://example.org/v1", allow_remote_endpoint=value)


def test_the_command_line_refuses_a_string_boolean(tmp_path):
    """The same through Hydra's own parser, where ``=no`` arrives as the string "no"."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-m", "data_prep.cold_start", f"data_dir={tmp_path}",
                             "teacher.base_url=http://example.org/v1", "teacher.allow_remote_endpoint=no"],
                            cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "teacher.allow_remote_endpoint must be true or false, got 'no'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_redirect_to_another_origin_is_never_followed(data_dir):
    """Issue 16.12: a local server answering 307 made the client re-send image and report elsewhere."""
    elsewhere = FakeChatServer(lambda prompt, attempt: (200, completion(good_trace(prompt)), 0, {}))
    target = f"{elsewhere.url}/chat/completions"
    redirecting = FakeChatServer(lambda prompt, attempt: (307, {}, 0, {"Location": target}))
    try:
        report = synthesize(config(data_dir, redirecting.url))
    finally:
        redirecting.close()
        elsewhere.close()
    assert elsewhere.requests == [] and redirecting.requests
    assert report["kept"] == 0 and report["rejected"] == {"teacher_call_failed": report["candidates"]}
    rejected = [json.loads(line) for line in (data_dir / "cold_start" / "rejected.jsonl").read_text().splitlines()]
    assert all(row["error"].startswith("redirect_refused: the endpoint answered 307") for row in rejected)


def test_secrets_echoed_by_the_server_reach_no_file_and_no_log(data_dir, monkeypatch, caplog):
    """Issue 16.13: an error echoing the key landed in rejected.jsonl; user:pw@ in report.json and the log."""
    import base64
    import logging

    caplog.set_level(logging.DEBUG)  # every logger, the HTTP clients' included
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    password = "pw-also-never-written-42"
    pair = f"alice:{password}"

    def echo(prompt, attempt, request):
        heard = request["headers"].get("Authorization", "")
        if "Basic" in heard:  # the URL's credentials: echo them decoded, and in the answer too
            heard += " = " + base64.b64decode(heard.split()[-1]).decode()
        if sum(map(ord, prompt)) % 2:
            return 401, {"error": {"message": f"Incorrect API key provided: {heard} ({SECRET})", "type": "auth"}}, 0, {}
        return 200, completion(good_trace(prompt).replace("</think>", f" {heard} {SECRET}</think>")), 0, {}

    server = FakeChatServer(echo, with_request=True)
    try:
        with_key = synthesize(config(data_dir, server.url))
        with_password = synthesize(config(data_dir, server.url.replace("://", f"://{pair}@"), cache_dir=str(data_dir / "c2")))
    finally:
        server.close()
    assert with_key["rejected"].get("teacher_call_failed") and with_password["rejected"].get("teacher_call_failed")
    assert server.authorizations == {f"Bearer {SECRET}", "Basic " + base64.b64encode(pair.encode()).decode()}
    report = json.loads((data_dir / "cold_start" / "report.json").read_text())
    assert report["teacher"] == f"fake-teacher at {server.url.replace('://', '://***@')}"
    rejected = (data_dir / "cold_start" / "rejected.jsonl").read_text()
    assert "[REDACTED]" in rejected and "Incorrect API key provided" in rejected
    forms = [SECRET, password, pair, base64.b64encode(pair.encode()).decode()]
    for path in data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(form.encode() in data for form in forms), path
    assert not any(form in caplog.text for form in forms)


def test_url_credentials_are_split_shown_masked_and_redacted(monkeypatch):
    from data_prep.endpoint import public_url, redact, secrets_of, url_credentials

    assert url_credentials("http://u:p%40ss@[::1]:8000/v1") == ("http://[::1]:8000/v1", ("u", "p%40ss"))
    assert url_credentials("http://127.0.0.1:8000/v1") == ("http://127.0.0.1:8000/v1", None)
    assert public_url("https://bob:hunter22@api.example.org/v1") == "https://***@api.example.org/v1"
    monkeypatch.setenv("MY_KEY", SECRET)
    secrets = secrets_of(EndpointConfig(base_url="https://bob:hunter22@api.example.org/v1", api_key_env="MY_KEY",
                                        allow_remote_endpoint=True))
    text = (f"401: key {SECRET} / {SECRET[:10]}... at https://bob:hunter22@api.example.org/v1, "
            f"password hunter22, header Basic Ym9iOmh1bnRlcjIy, json {json.dumps(SECRET)}")
    cleaned = redact(text, secrets)
    assert all(secret not in cleaned for secret in (SECRET, "hunter22", "Ym9iOmh1bnRlcjIy"))
    assert "https://***@api.example.org/v1" in cleaned and cleaned.count("[REDACTED]") == 4
    with pytest.raises(RemoteEndpointRefused) as refused:
        check_endpoint_policy(EndpointConfig(base_url="https://bob:hunter22@api.example.org/v1"))
    assert "hunter22" not in str(refused.value) and "***@api.example.org" in str(refused.value)


# ------------------------------------------------------------------ pre-flight and a dead endpoint


def closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there once the socket is closed


def test_no_teacher_listening_fails_in_seconds_naming_the_url(data_dir):
    import time

    from data_prep.endpoint import EndpointUnavailable

    url = closed_port_url()
    started = time.monotonic()
    with pytest.raises(EndpointUnavailable, match=re.escape(f"{url}/models")):
        synthesize(config(data_dir, url))
    assert time.monotonic() - started < 10
    assert not (data_dir / "cold_start" / "train.jsonl").exists()


def test_preflight_names_what_is_served_when_the_model_is_another():
    from data_prep.endpoint import EndpointUnavailable, preflight

    server = FakeChatServer(lambda prompt, attempt: (200, completion("x"), 0, {}), models=["Qwen/Qwen2.5-VL-7B"])
    try:
        with pytest.raises(EndpointUnavailable, match=r"serves \['Qwen/Qwen2.5-VL-7B'\], not 'fake-teacher'"):
            preflight(EndpointConfig(base_url=server.url, model="fake-teacher"))
        assert preflight(EndpointConfig(base_url=server.url, model="Qwen/Qwen2.5-VL-7B")) == ["Qwen/Qwen2.5-VL-7B"]
    finally:
        server.close()


def test_a_teacher_that_goes_down_stops_the_run_after_consecutive_failures(tmp_path):
    from data_prep.endpoint import CallCache, ChatEndpoint, EndpointUnavailable

    endpoint = ChatEndpoint(EndpointConfig(base_url=closed_port_url(), model="m", max_retries=0, timeout_s=1.0,
                                           concurrency=2, max_consecutive_failures=5), CallCache(tmp_path))
    conversations = [[{"role": "user", "content": f"question {i}"}] for i in range(400)]
    with pytest.raises(EndpointUnavailable, match=r"max_consecutive_failures=5\)") as stopped:
        endpoint.complete_all(conversations)
    # With 2 requests in flight, the one already sent when the 5th failure lands also fails and is
    # counted: the message names the true run of failures, 5 or 6, never fewer than the limit.
    failures = int(re.search(r"failed (\d+) requests in a row", str(stopped.value)).group(1))
    assert 5 <= failures <= 5 + 2 - 1
    assert failures <= endpoint.calls_made <= 5 + 2 - 1  # stopped after the run of failures, not after 400


def test_answers_reset_the_failure_count(tmp_path):
    from data_prep.endpoint import CallCache, ChatEndpoint

    server = FakeChatServer(lambda prompt, attempt: (500, {"error": "overloaded"}, 0, {}) if "bad" in prompt
                            else (200, completion("ok"), 0, {}))
    try:
        endpoint = ChatEndpoint(EndpointConfig(base_url=server.url, model="m", max_retries=0, concurrency=1,
                                               max_consecutive_failures=2), CallCache(tmp_path))
        results = endpoint.complete_all([[{"role": "user", "content": [{"type": "text", "text": t}]}]
                                         for t in ("bad 1", "ok 1", "bad 2", "bad 3", "ok 2")])
        assert [r.content for r in results] == [None, "ok", None, None, "ok"]  # HTTP errors are answers, not outages
    finally:
        server.close()


@pytest.mark.parametrize("question, region", [
    ("Is there evidence of cardiomegaly in this image?", "cardiac silhouette"),
    ("Is there evidence of pleural effusion in this image?", "right costophrenic angle"),
    ("Is there evidence of endotracheal tube in this image?", "mediastinum"),
    ("Is there an abnormality?", "right lung"),
])
def test_the_template_examines_where_the_named_finding_is_seen(question, region):
    """The offline teacher's regions follow the finding a question names (a fixed pair of lungs for
    every question would make the trace the same whatever is asked)."""
    from data_prep.cold_start import anatomy_regions

    truth = GroundTruth("closed", "no", Frame(448, 448))
    trace = offline_trace(Candidate("s1", question, Path("unused.jpg"), truth))
    assert f"Step 1: I examine the {region} {list(anatomy_regions(448, 448)[region])}." in trace
    assert trace.endswith("this supports the answer: no.</think> The answer is: \\boxed{no}")


@pytest.mark.parametrize("boxes", [[(61.33, 60.67, 98.33, 94.33)], [(8.0, 78.0, 33.0, 100.0), (78.0, 78.0, 103.0, 100.0)]])
def test_a_locate_trace_ends_with_the_finding_boxes_its_answer_repeats(boxes):
    """The finding's boxes are the reasoning's last steps, right before the answer that repeats them,
    and the summary names those steps (written first, a small model's answer box did not copy them)."""
    answer = ", ".join(f"[{', '.join(str(int(round(v))) for v in box)}]" for box in boxes)
    truth = GroundTruth("open_ended", answer, Frame(112, 112), boxes=tuple(boxes))
    trace = offline_trace(Candidate("s1", 'Locate the finding "Left basilar opacity."', Path("unused.jpg"), truth))
    reasoning, boxed = trace.split("</think>")
    steps = [step.strip() for step in re.split(r"Step \d+: ", reasoning.removeprefix("<think>")) if step.strip()]
    finding_steps = steps[-1 - len(boxes):-1]
    assert all(step.startswith("The phrase points to [") and step.endswith("].") for step in finding_steps)
    assert [parse_boxes(step)[0] for step in finding_steps] == [tuple(float(int(round(v))) for v in box) for box in boxes]
    first = len(steps) - len(boxes)
    assert steps[-1] == (f"So the box of step {first} is the answer." if len(boxes) == 1 else
                         f"So the boxes of steps {first} to {len(steps) - 1} are the answer.")
    assert "shows the finding" not in reasoning  # a presence verdict's wording (next test)
    assert boxed == f" The answer is: \\boxed{{{answer}}}"


def test_a_presence_verdict_is_worded_apart_from_a_locate_answer():
    """A "yes" with the finding's box cites it as the finding, then the verdict; nothing of the
    "locate" wording, whose GRPO rewards would otherwise carry over to presence verdicts."""
    truth = GroundTruth("closed", "yes", Frame(112, 112), boxes=((61.33, 60.67, 98.33, 94.33),))
    trace = offline_trace(Candidate("s1", "Is there pleural effusion in this chest X-ray?", Path("unused.jpg"), truth))
    assert "The region [61, 61, 98, 94] shows the finding in question." in trace
    assert "points to" not in trace and "is the answer" not in trace
    assert trace.endswith("Taken together, this supports the answer: yes.</think> The answer is: \\boxed{yes}")
