"""The annotation server against hostile or broken clients and configs (issue 16.14): every bad
request gets a 4xx, never a dropped connection or a held thread; a bad config stops it at start."""

import json
import socket
import time
from urllib.parse import urlparse

import pytest

from eval.viewer.server import ViewerConfigError, start_server
from tests.eval.test_viewer import call, full_labels, make_world


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("CAROL_TOKEN", "tok-carol")
    return make_world(tmp_path)


@pytest.fixture
def server(world):
    running = start_server({**world, "request_timeout_s": 1})
    yield running
    running.close()


def raw(url: str, head: str, body: bytes = b"", wait: float = 10.0) -> tuple[int | None, dict, float]:
    """Send bytes as they are (no client library fixes the headers); (status, JSON body, seconds)."""
    address = urlparse(url)
    start = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=wait) as connection:
        connection.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    elapsed = time.monotonic() - start
    if not received:
        return None, {}, elapsed
    header, _, payload = received.partition(b"\r\n\r\n")
    return int(header.split()[1]), json.loads(payload or b"{}"), elapsed


def post(path: str, length: str | None, token: str = "tok-alice") -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: x", f"Authorization: Bearer {token}", "Content-Type: application/json"]
    return "\n".join(lines + ([f"Content-Length: {length}"] if length is not None else [])) + "\n"


@pytest.mark.parametrize("length, status", [("-1", 400), (None, 411), ("12abc", 400), ("2000000", 413),
                                            ("99999999999999999999", 400)])
def test_content_length_must_be_a_byte_count_within_the_limit(server, length, status, capfd):
    code, reply, _ = raw(server.url, post("/api/labels/0", length), b'{"labels": []}')
    assert code == status and reply["error"]
    assert "Traceback" not in capfd.readouterr().err


def test_a_body_shorter_than_its_length_does_not_hold_a_thread(server):
    started = time.monotonic()
    code, _, elapsed = raw(server.url, post("/api/labels/0", "500"), b'{"labels": [')  # then silence
    assert code is None and elapsed < 5  # the server hung up after request_timeout_s (1 s here)
    assert time.monotonic() - started < 5
    assert call(f"{server.url}/api/labels/0", "tok-alice", {"labels": full_labels()})[0] == 200


@pytest.mark.parametrize("body, reason", [
    (b'{"labels": "\xff\xfe"}', "not UTF-8"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b"null", "not a JSON object"),
    (b'{"labels": NaN}', "not valid JSON"),
    (b'{"labels": [', "not valid JSON"),
])
def test_undecodable_bodies_answer_400(server, body, reason, capfd):
    code, reply, _ = raw(server.url, post("/api/labels/0", str(len(body))), body)
    assert code == 400 and reason in reply["error"]
    assert "Traceback" not in capfd.readouterr().err


def test_any_token_text_is_compared_safely(server, capfd):
    code, reply, _ = raw(server.url, "GET /api/me HTTP/1.1\nHost: x\nAuthorization: Bearer t\u00e9k\u00ff\n")
    assert code == 401
    assert call(f"{server.url}/api/me", "tok-bob")[1]["annotator"] == "bob"
    assert "Traceback" not in capfd.readouterr().err


def test_tokens_are_validated_at_start(world, monkeypatch):
    """An integer token broke authentication for everyone (TypeError); two annotators sharing a token
    had their labels merged."""
    annotators = world["annotators"]
    with pytest.raises(ViewerConfigError, match="annotator 'bob': the token must be a string, got a int"):
        start_server({**world, "annotators": {**annotators, "bob": {"token": 12345, "group": "2"}}})
    monkeypatch.setenv("CAROL_TOKEN", "tok-alice")
    with pytest.raises(ViewerConfigError, match="annotators 'alice' and 'carol' have the same token"):
        start_server(world)
    for change, message in (({"mode": "annotating"}, "mode must be one of"), ({"port": "8765"}, "port must be"),
                            ({"port": True}, "port must be"), ({"request_timeout_s": 0}, "request_timeout_s"),
                            ({"predictions": {}}, "one or two")):
        with pytest.raises(ViewerConfigError, match=message):
            start_server({**world, **change})


def test_bad_lines_of_the_inputs_are_listed_and_the_rest_is_shown(world, tmp_path):
    predictions = tmp_path / "a.jsonl"
    lines = predictions.read_text().splitlines(keepends=True)
    predictions.write_text(lines[0] + "{broken\n\n" + "".join(lines[1:]).rstrip("\n"))  # and no final newline
    running = start_server(world)
    try:
        assert len(running.items) == 4
        assert running.problems == [f"{predictions}:2: not valid JSON (Expecting property name enclosed in double "
                                    "quotes: line 1 column 2 (char 1))"]
    finally:
        running.close()
