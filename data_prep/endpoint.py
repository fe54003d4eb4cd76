"""An OpenAI-compatible chat endpoint that keeps credentialed data on site, and a call cache.

MIMIC-CXR and its derivatives are credentialed (PhysioNet's data use agreement forbids sending
them to third-party services). So an endpoint must be local (``localhost``, ``127.0.0.0/8``,
``::1``), such as a ``vllm serve`` of an open model, unless the user opts in explicitly with
``allow_remote_endpoint: true`` (a real boolean: the string ``"no"`` is an error). Redirects are
never followed: a local server answering 307 cannot send the image and report to another origin.
The API key comes only from the environment variable named in the config; it is never logged,
cached or written, and ``redact`` removes it (and any ``user:password@`` of the URL, which is sent
as HTTP basic auth and shown as ``***@``) from every error text before that text is stored.

Calls go through the ``openai`` client (retries with exponential backoff on connection errors,
timeouts, 429 and 5xx, honouring ``Retry-After``), spread over a bounded thread pool. Every answer
is cached on disk under the sha256 of the whole request (model, messages with the image,
sampling parameters; never the key), so a rerun or a resumed run repeats no call.
"""

from __future__ import annotations

import base64
import hashlib
import re
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
from urllib.parse import quote, urlparse, urlunparse

from rewards.settings import config_bool

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

    def __post_init__(self) -> None:
        # the string "no" (a command-line override) must not read as an opt-in
        config_bool(self.allow_remote_endpoint, "allow_remote_endpoint")


def url_credentials(base_url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without its ``user:password@`` part, and that part (None if there is none)."""
    parts = urlparse(base_url)
    if parts.username is None and parts.password is None:
        return base_url, None
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunparse(parts._replace(netloc=netloc)), (parts.username or "", parts.password or "")


def public_url(base_url: str) -> str:
    """``base_url`` as it may be shown, logged or written: credentials replaced by ``***``."""
    clean, credentials = url_credentials(base_url)
    return clean if credentials is None else clean.replace("://", "://***@", 1)


def secrets_of(config: EndpointConfig) -> list[str]:
    """Every form in which this endpoint's secrets could be echoed back: the key, the URL's
    password, ``user:password`` and its basic-auth base64."""
    found = []
    key = os.environ.get(config.api_key_env or "", "")
    if len(key) >= 4:
        found.append(key)
    _, credentials = url_credentials(config.base_url)
    if credentials is not None:
        pair = f"{credentials[0]}:{credentials[1]}"
        found += [pair, base64.b64encode(pair.encode()).decode()]
        found += [credentials[1]] if len(credentials[1]) >= 4 else []
    forms = set()
    for secret in found:
        forms.update({secret, quote(secret, safe=""), json.dumps(secret)[1:-1]})
    return sorted(forms, key=len, reverse=True)  # the longest first: no half-redacted secret


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``[REDACTED]``; also any ``scheme://user:pw@`` URL."""
    for secret in secrets:
        text = text.replace(secret, "[REDACTED]")
    return re.sub(r"(\w+://)[^/\s@]+@", r"\1***@", text)


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
        raise ValueError(f"endpoint base_url must be http(s)://..., got {public_url(config.base_url)!r}")
    if not is_local(config.base_url) and config.allow_remote_endpoint is not True:
        raise RemoteEndpointRefused(
            f"refusing to send images and reports to {public_url(config.base_url)}: it is not a local endpoint. "
            "MIMIC-CXR data are credentialed and must not leave your site by accident. Serve a model "
            "locally (e.g. `vllm serve ... --host 127.0.0.1`), or, if your data use agreement allows "
            "this endpoint, set allow_remote_endpoint=true explicitly."
        )


def preflight(config: EndpointConfig, timeout_s: float = 10.0, how_to_serve: str | None = None) -> list[str]:
    """Ask ``<base_url>/models`` once: fail in seconds, naming the URL, instead of after thousands of
    retried requests; and check that the configured model is the one served. Returns the served ids
    (empty when the server has no ``GET /models`` route: it answers, so it is up, and is not held to
    a model list it cannot give). ``how_to_serve``: the hint the error gives (the caller's own)."""
    check_endpoint_policy(config)
    import httpx

    url = config.base_url.rstrip("/") + "/models"
    shown = public_url(url)
    key = os.environ.get(config.api_key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    clean_url, credentials = url_credentials(url)
    try:
        with httpx.Client(trust_env=not is_local(config.base_url), timeout=timeout_s, follow_redirects=False,
                          auth=credentials) as client:
            response = client.get(clean_url, headers=headers)
    except httpx.HTTPError as error:
        hint = how_to_serve or (
            f"Start one (e.g. `vllm serve {config.model} --host 127.0.0.1 --port 8000`) or point base_url at it")
        raise EndpointUnavailable(f"no OpenAI-compatible server answers at {shown} ({type(error).__name__}). {hint}") from None
    if response.status_code == 404:
        log.warning("%s has no model list (HTTP 404): the served model is not checked", shown)
        return []
    if response.status_code != 200:
        raise EndpointUnavailable(f"{shown} answered HTTP {response.status_code}; expected the list of served models")
    try:
        served = [str(item["id"]) for item in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise EndpointUnavailable(f"{shown} did not answer with an OpenAI model list") from None
    if config.model not in served:
        raise EndpointUnavailable(f"{shown} serves {served}, not {config.model!r} (the configured model: "
                                  "vllm serve --served-model-name)")
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
        except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            return None  # absent or damaged (not UTF-8, not JSON, not our object): asked again, then rewritten

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
        self.secrets = secrets_of(config)
        base_url, credentials = url_credentials(config.base_url)  # kept out of URLs, hence out of logs
        # A local endpoint is reached directly: HTTP(S)_PROXY variables (common on clusters) would
        # otherwise route images and reports through a proxy, off the machine. No redirect is
        # followed (the client's default would): the local-only rule holds for the configured URL.
        http_client = DefaultHttpxClient(trust_env=not is_local(config.base_url), follow_redirects=False,
                                         **({"auth": credentials} if credentials else {}))
        self.client = OpenAI(
            base_url=base_url,
            api_key=os.environ.get(config.api_key_env) or "EMPTY",  # local servers accept any key
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            http_client=http_client,
        )
        self.calls_made = 0  # requests sent (cache misses), for reports and tests
        self.consecutive_failures = 0  # connection failures in a row, reset by any answer
        self._count_lock = threading.Lock()

    def describe(self, error: Exception) -> str:
        """A failed call, as stored in reports: redirects named as refused; secrets redacted
        before the text is cut (a cut must not leave half a key)."""
        import openai

        status = getattr(error, "status_code", None)
        if isinstance(error, openai.APIStatusError) and status is not None and 300 <= status < 400:
            location = error.response.headers.get("location", "?")
            text = (f"redirect_refused: the endpoint answered {status} to {location}; redirects are not "
                    "followed (images and reports go to the configured endpoint only)")
        else:
            text = f"{type(error).__name__}: {error}"
        return redact(text, self.secrets)[:300]

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
            return CallResult(None, cached=False, error=self.describe(error))
        except openai.OpenAIError as error:  # after the client's own retries
            with self._count_lock:
                self.consecutive_failures = 0  # the server answered
            return CallResult(None, cached=False, error=self.describe(error))
        except (AttributeError, IndexError, TypeError, ValueError) as error:  # a malformed reply
            return CallResult(None, cached=False, error=redact(f"malformed_reply: {error}", self.secrets)[:300])
        with self._count_lock:
            self.consecutive_failures = 0
        if not isinstance(content, str):
            return CallResult(None, cached=False, error="malformed_reply: no message content")
        for secret in self.secrets:  # a server that echoes the key into its answer: kept off disk too
            if len(secret) >= 12:  # (a short word such as a test key "EMPTY" would mangle real text)
                content = content.replace(secret, "[REDACTED]")
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
