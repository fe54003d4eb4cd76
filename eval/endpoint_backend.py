"""``eval.infer backend=endpoint``: any model served behind an OpenAI-compatible chat endpoint.

vLLM (``vllm serve``), SGLang (``python -m sglang.launch_server``) and TGI all speak
``POST /v1/chat/completions``; so do the models' own servers where a model has no engine support.
Each item goes out as one chat request: an optional system turn, then the X-ray as an inline data
URL (``data_prep.endpoint.image_part``, the same part the cold-start teacher and the arena judge
send) followed by the item's prompt. Requests go through ``data_prep.endpoint.ChatEndpoint``: local
endpoints only unless ``endpoint.allow_remote_endpoint`` is the boolean ``true``, the key read from
the variable ``endpoint.api_key_env`` names (never written), retries with backoff, ``concurrency``
requests in flight.

Every reply is cached on disk under the whole request (served model, messages with the image,
temperature, top-p, seed, token limit, extra body) and under the model the run names, so a rerun or
a resumed run sends no request it already made; a call that still fails after its retries returns
None, and ``eval.infer`` leaves that item out of the predictions file for the next run to retry.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from data_prep.endpoint import CallCache, ChatEndpoint, EndpointConfig, image_part, preflight, request_key
from rewards.settings import ConfigValueError, config_bool

log = logging.getLogger(__name__)


class NamespacedCache(CallCache):
    """A call cache keyed by (namespace, request): two checkpoints served under the same name (say
    ``--served-model-name model``) never share replies when their runs name different models."""

    def __init__(self, folder: Path, namespace: str):
        super().__init__(folder)
        self.namespace = namespace

    def _path(self, key: str) -> Path:
        return super()._path(hashlib.sha256(f"{self.namespace}\n{key}".encode()).hexdigest())


class SamplingEndpoint(ChatEndpoint):
    """``ChatEndpoint`` whose requests also carry top-p, a seed and any extra body (vLLM's ``top_k``,
    ``repetition_penalty``, ``chat_template_kwargs``...), all part of the cache key."""

    def __init__(self, config: EndpointConfig, cache: CallCache, top_p: float, seed: int | None,
                 extra_body: dict[str, Any]):
        super().__init__(config, cache)
        self.top_p, self.seed, self.extra_body = top_p, seed, extra_body

    def payload(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        payload = super().payload(messages)
        payload["top_p"] = self.top_p
        if self.seed is not None:
            payload["seed"] = self.seed
        if self.extra_body:
            payload["extra_body"] = self.extra_body  # the openai client merges it into the JSON body
        return payload


def endpoint_config(section: DictConfig, sampling: DictConfig) -> EndpointConfig:
    # "yes", "1" or "false" as text must not open a remote endpoint
    allow = config_bool(section.allow_remote_endpoint, "endpoint.allow_remote_endpoint")
    if not section.model:
        raise ConfigValueError("endpoint.model: set the served model name (vllm serve --served-model-name ...)")
    return EndpointConfig(
        base_url=str(section.base_url), model=str(section.model), api_key_env=str(section.api_key_env),
        allow_remote_endpoint=allow, temperature=float(sampling.temperature),
        max_tokens=int(sampling.max_new_tokens), timeout_s=float(section.timeout_s),
        max_retries=int(section.max_retries), concurrency=int(section.concurrency),
    )


class EndpointGenerator:
    """The ``generate(texts, images)`` of the in-process backends, over HTTP; ``image_input`` tells
    ``eval.infer`` to hand over image paths (sent as they are on disk, not decoded and re-encoded)."""

    def __init__(self, cfg: DictConfig, out: Path):
        section = cfg.endpoint
        config = endpoint_config(section, cfg.sampling)
        cache_dir = Path(section.cache_dir) if section.cache_dir else out.with_name(out.name + ".cache")
        extra = OmegaConf.to_container(section.extra_body, resolve=True) if section.extra_body else {}
        self.system = cfg.get("system_prompt") or None
        self.endpoint = SamplingEndpoint(config, NamespacedCache(cache_dir, str(cfg.model)),
                                         float(cfg.sampling.top_p), cfg.sampling.seed, extra)
        self.checked = False
        self.errors: list[str] = []

    @staticmethod
    def image_input(path: Path) -> Path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"image {path} is missing (check image_root)")
        return Path(path)

    def messages(self, text: str, image: Path) -> list[dict[str, Any]]:
        turns = [{"role": "system", "content": self.system}] if self.system else []
        return turns + [{"role": "user", "content": [image_part(image), {"type": "text", "text": text}]}]

    def check_served(self) -> None:
        """Before the first request: the endpoint answers and lists the model (a clear message, not
        one connection error per item); servers without ``GET /models`` are not held to it."""
        preflight(self.endpoint.config, how_to_serve="Serve the model first (its card's serve.command), or "
                                                     "point endpoint.base_url at it")

    def generate(self, texts: list[str], images: list[Path]) -> list[str | None]:
        conversations = [self.messages(text, image) for text, image in zip(texts, images)]
        if not self.checked and any(self.endpoint.cache.get(request_key(self.endpoint.payload(c))) is None
                                    for c in conversations):
            self.check_served()
            self.checked = True
        results = self.endpoint.complete_all(conversations)
        self.errors += [result.error for result in results if result.content is None and result.error]
        return [result.content for result in results]

    @property
    def requests_sent(self) -> int:
        return self.endpoint.calls_made
