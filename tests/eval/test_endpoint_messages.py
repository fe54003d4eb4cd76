"""What eval.infer says when the endpoint cannot be used: never the URL's credentials, and one clear
message with exit status 2 on the command line, not a traceback (issue 16 items 13 and the CLI rule)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.endpoint import EndpointUnavailable
from eval.infer import infer
from tests.chat_server import FakeChatServer
from tests.eval.test_endpoint_backend import SERVED, answering, config, items  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-9f8e7d6c5b"


def with_credentials(url: str) -> str:
    return url.replace("://", f"://annotator:{PASSWORD}@", 1)


def test_an_unusable_endpoint_is_named_without_its_credentials(items, tmp_path):  # noqa: F811
    server = FakeChatServer(answering(), models=["some-other-model"])
    url = with_credentials(server.url)
    try:
        with pytest.raises(EndpointUnavailable) as serves_another:
            infer(config(items, tmp_path / "a.jsonl", url))
    finally:
        server.close()
    with pytest.raises(EndpointUnavailable) as down:
        infer(config(items, tmp_path / "b.jsonl", url))  # closed now
    for error in (serves_another, down):
        assert PASSWORD not in str(error.value) and "***@" in str(error.value)


@pytest.mark.parametrize("endpoint, expected", [
    ("http://annotator:{pw}@127.0.0.1:9/v1", "no OpenAI-compatible server answers"),  # nothing listens on port 9
    ("https://annotator:{pw}@api.example.org/v1", "not a local endpoint"),
])
def test_the_cli_refuses_in_one_message_without_credentials(items, tmp_path, endpoint, expected):  # noqa: F811
    result = subprocess.run([sys.executable, "-m", "eval.infer", "model=m", f"items_file={items}",
                             f"out={tmp_path / 'p.jsonl'}", "backend=endpoint",
                             f"endpoint.base_url={endpoint.format(pw=PASSWORD)}", f"endpoint.model={SERVED}",
                             "endpoint.max_retries=0", "limit=2"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode != 0, result.stderr[-2000:]
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert not any(PASSWORD.encode() in path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())


@pytest.mark.parametrize("overrides, expected", [
    (["backend=endpoint"], "endpoint.model: set the served model name"),
    (["system_prompt=Be brief."], "system_prompt is sent by backend=endpoint only"),
    (["parsing.answer=json"], "parsing.answer must be one of"),
])
def test_a_setting_to_fix_is_one_message(items, tmp_path, overrides, expected):  # noqa: F811
    result = subprocess.run([sys.executable, "-m", "eval.infer", "model=m", f"items_file={items}",
                             f"out={tmp_path / 'p.jsonl'}", *overrides],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode != 0 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr[-1500:]
