"""An OpenAI-compatible chat endpoint that keeps credentialed data on site, and a call cache.

MIMIC-CXR and its derivatives are credentialed (PhysioNet's data use agreement forbids sending
them to third-party services). So an endpoint must be local (``localhost``, ``127.0.0.0/8``,
``::1``), such as a ``vllm serve`` of an open model, unless the user opts in explicitly with
``allow_remote_endpoint: true``. The API key comes only from the environment variable named in
the config; it is never logged, cached or written.

Calls go through the ``openai`` client (retries with exponential backoff on connection errors,
timeouts, 429 and 5xx, honouring ``Retry-After``), spread over a bounded thread pool. Every answer
is cached on disk under the sha256 of the whole request (model, messages with the image,
sampling parameters; never the key), so a rerun or a resumed run repeats no call.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

log = logging.getLogger(__name__)


class RemoteEndpointRefused(ValueError):
    """A non-local endpoint without the explicit opt-in."""


class EndpointUnavailable(RuntimeError):
    """The endpoint does not answer (pre-flight), or stopped answering (consecutive connection failures)."""


@dataclass(frozen=True)
class EndpointConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen2.5-VL-32B-Instruct"
    api_key_env: str = "OPENAI_API_KEY"  # the variable's name; its value is read, never stored
    allow_remote_endpoint: bool = False
    temperature: float = 0.7
    max_tokens: int = 1024
    timeout_s: float = 120.0
    max_retries: int = 4
    concurrency: int = 8
    max_consecutive_failures: int = 16  # connection failures in a row (after retries) that stop the run


def is_local(base_url: str) -> bool:
    host = urlparse(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_policy(config: EndpointConfig) -> None:
    if urlparse(config.base_url).scheme not in ("http", "https"):
        raise ValueError(f"endpoint base_url must be http(s)://..., got {config.base_url!r}")
    if not is_local(config.base_url) and not config.allow_remote_endpoint:
        raise RemoteEndpointRefused(
            f"refusing to send images and reports to {config.base_url}: it is not a local endpoint. "
            "MIMIC-CXR data are credentialed and must not leave your site by accident. Serve a model "
            "locally (e.g. `vllm serve ... --host 127.0.0.1`), or, if your data use agreement allows "
            "this endpoint, set allow_remote_endpoint=true explicitly."
        )


def preflight(config: EndpointConfig, timeout_s: float = 10.0) -> list[str]:
    """Ask ``<base_url>/models`` once: fail in seconds, naming the URL, instead of after thousands of
    retried requests; and check that the configured model is the one served. Returns the served ids."""
    check_endpoint_policy(config)
    import httpx

    url = config.base_url.rstrip("/") + "/models"
    key = os.environ.get(config.api_key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(trust_env=not is_local(config.base_url), timeout=timeout_s) as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as error:
        raise EndpointUnavailable(
            f"no OpenAI-compatible server answers at {url} ({type(error).__name__}). Start one (e.g. `make serve-teacher` "
            f"or `vllm serve {config.model} --host 127.0.0.1 --port 8000`), or let the cold-start stage serve it: "
            "SERVE_TEACHER=1 (cold_start.serve.enabled=true)") from None
    if response.status_code != 200:
        raise EndpointUnavailable(f"{url} answered HTTP {response.status_code}; expected the list of served models")
    try:
        served = [str(item["id"]) for item in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise EndpointUnavailable(f"{url} did not answer with an OpenAI model list") from None
    if config.model not in served:
        raise EndpointUnavailable(f"{url} serves {served}, not the configured model {config.model!r}")
    return served


def image_part(path: Path) -> dict[str, Any]:
    """An image as an OpenAI chat content part (inline data URL: a local server needs no file access)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def request_key(payload: dict[str, Any]) -> str:
    """Cache key: sha256 of the canonical request (no credentials are part of a payload)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CallCache:
    """One JSON file per request key, written atomically; safe across threads and reruns."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))["content"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def put(self, key: str, content: str, model: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")  # unique per writer
        temporary.write_text(json.dumps({"model": model, "content": content}, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)


@dataclass
class CallResult:
    content: str | None  # None when the call failed after its retries
    cached: bool
    error: str | None = None


class ChatEndpoint:
    """Cached, bounded-concurrency chat completions against one endpoint."""

    def __init__(self, config: EndpointConfig, cache: CallCache):
        check_endpoint_policy(config)
        from openai import OpenAI  # imported here: only runs that call an endpoint need it

        from openai import DefaultHttpxClient

        self.config, self.cache = config, cache
        # A local endpoint is reached directly: HTTP(S)_PROXY variables (common on clusters) would
        # otherwise route images and reports through a proxy, off the machine.
        http_client = DefaultHttpxClient(trust_env=False) if is_local(config.base_url) else None
        self.client = OpenAI(
            base_url=config.base_url,
            api_key=os.environ.get(config.api_key_env) or "EMPTY",  # local servers accept any key
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            http_client=http_client,
        )
        self.calls_made = 0  # requests sent (cache misses), for reports and tests
        self.consecutive_failures = 0  # connection failures in a row, reset by any answer
        self._count_lock = threading.Lock()

    def payload(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }

    def complete(self, messages: list[dict[str, Any]]) -> CallResult:
        payload = self.payload(messages)
        key = request_key(payload)
        cached = self.cache.get(key)
        if cached is not None:
            return CallResult(cached, cached=True)
        import openai

        with self._count_lock:
            if self.consecutive_failures >= self.config.max_consecutive_failures:
                raise EndpointUnavailable(self._down_message())
            self.calls_made += 1
        try:
            response = self.client.chat.completions.create(**payload)
            content = response.choices[0].message.content if response.choices else None
        except openai.APIConnectionError as error:  # unreachable or timed out, after the client's own retries
            with self._count_lock:
                self.consecutive_failures += 1
            return CallResult(None, cached=False, error=f"{type(error).__name__}: {str(error)[:200]}")
        except openai.OpenAIError as error:  # after the client's own retries
            with self._count_lock:
                self.consecutive_failures = 0  # the server answered
            return CallResult(None, cached=False, error=f"{type(error).__name__}: {str(error)[:200]}")
        except (AttributeError, IndexError, TypeError, ValueError) as error:  # a malformed reply
            return CallResult(None, cached=False, error=f"malformed_reply: {error}")
        with self._count_lock:
            self.consecutive_failures = 0
        if not isinstance(content, str):
            return CallResult(None, cached=False, error="malformed_reply: no message content")
        self.cache.put(key, content, self.config.model)
        return CallResult(content, cached=False)

    def _down_message(self) -> str:
        return (f"{self.config.base_url} failed {self.consecutive_failures} requests in a row with connection errors "
                f"(max_consecutive_failures={self.config.max_consecutive_failures}): the server is down; stopping. "
                "Answers so far are cached: a rerun resumes")

    def complete_all(
        self, conversations: list[list[dict[str, Any]]], progress: Callable[[], None] | None = None
    ) -> list[CallResult]:
        """``complete`` for each conversation, ``concurrency`` at a time, results in input order;
        identical requests in one call are sent once."""
        def one(messages):
            result = self.complete(messages)
            if progress is not None:
                progress()
            return result

        keys = [request_key(self.payload(messages)) for messages in conversations]
        unique = {key: messages for key, messages in zip(keys, conversations)}
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
            results = dict(zip(unique, pool.map(one, unique.values())))
        return [results[key] for key in keys]
