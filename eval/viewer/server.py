"""The viewer / annotation server: standard-library HTTP on 127.0.0.1 by default, JSON API + one page.

Safety: it binds to 127.0.0.1 unless configured otherwise; every API call needs an annotator's
token (``Authorization: Bearer ...``; images also accept ``?token=``), from the config or from the
environment variable it names; an image is served only if its resolved path lies inside one of the
configured ``image_roots`` (path traversal is refused); nothing is fetched from or sent elsewhere.
In ``annotate`` mode the two models are blinded (no names, a seeded random side per item).
The config is checked at start (tokens must be distinct strings, ``mode``, ``port``). A request body
must declare its length (411 otherwise; 400 if not a length; 413 above 1 MB), must arrive within
``request_timeout_s`` (default 30 s; a client that stops sending loses its connection, not a
thread) and must be a UTF-8 JSON object of bounded depth (400 otherwise).

API (see eval/viewer/static/index.html): ``GET /api/me``, ``GET /api/items``,
``GET /api/item/<i>``, ``GET /image/<i>``, ``GET|POST /api/labels/<i>``, ``GET /api/results``.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from eval.jsonl import parse_json_object
from eval.viewer.items import ViewItem, load_view_items, reasoning_steps
from eval.viewer.results import table2
from eval.viewer.store import BINARY, PER_STEP, PREFERENCE, LabelStore

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 1_000_000  # bytes of a label submission
MODES = ("view", "annotate")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog (5) resets connections when annotators burst


class BadLabels(ValueError):
    pass


class ViewerConfigError(ValueError):
    """A viewer config that cannot start a server safely; the message names the key."""


def annotator_tokens(annotators: dict) -> dict[str, tuple[str, str]]:
    """token -> (annotator, group); tokens from the config or the environment variable it names.
    Every token must be a non-empty string (a YAML number is refused: quote it) and no two
    annotators may share one (their labels would merge)."""
    if not isinstance(annotators, dict):
        raise ViewerConfigError("annotators must map each annotator's name to {token or token_env, group}")
    tokens: dict[str, tuple[str, str]] = {}
    for name, spec in annotators.items():
        if not isinstance(spec, dict):
            raise ViewerConfigError(f"annotator {name!r}: expected {{token or token_env, group}}, got {spec!r:.40}")
        if "token" in spec:
            token, where = spec["token"], "'token'"
        else:
            token, where = os.environ.get(str(spec.get("token_env", "")), ""), f"${spec.get('token_env')}"
        if not isinstance(token, str):
            raise ViewerConfigError(f"annotator {name!r}: the token must be a string, got a {type(token).__name__} "
                                    "(quote it in the YAML)")
        if not token:
            raise ViewerConfigError(f"annotator {name!r} has no token (set 'token' or an environment variable 'token_env')")
        if token in tokens:
            raise ViewerConfigError(f"annotators {tokens[token][0]!r} and {name!r} have the same token ({where}): "
                                    "each annotator needs their own, or their labels merge")
        tokens[token] = (str(name), str(spec.get("group", "1")))
    return tokens


def check_config(config: dict) -> None:
    """The settings' kinds, before anything starts."""
    if not isinstance(config, dict):
        raise ViewerConfigError("the viewer config must be a mapping")
    missing = [key for key in ("items_file", "predictions", "database") if key not in config]
    if missing:
        raise ViewerConfigError(f"the viewer config lacks {missing}")
    if config.get("mode", "view") not in MODES:
        raise ViewerConfigError(f"mode must be one of {MODES}, got {config.get('mode')!r}")
    port = config.get("port", 8765)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ViewerConfigError(f"port must be an integer in 0..65535, got {port!r}")
    if not isinstance(config.get("host", "127.0.0.1"), str):
        raise ViewerConfigError(f"host must be a string, got {config.get('host')!r}")
    timeout = config.get("request_timeout_s", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ViewerConfigError(f"request_timeout_s must be a positive number, got {timeout!r}")
    if not isinstance(config["predictions"], dict) or not 1 <= len(config["predictions"]) <= 2:
        raise ViewerConfigError("predictions must map one or two model names to predictions files")
    for key, path in [("items_file", config["items_file"]), *((f"predictions.{name}", path)
                                                               for name, path in config["predictions"].items())]:
        if not isinstance(path, (str, os.PathLike)) or not Path(path).is_file():  # missing: no item shown, silently
            raise ViewerConfigError(f"{key}: no such file {path!r}")
    sample = config.get("sample") or {}
    if not isinstance(sample, dict):
        raise ViewerConfigError(f"sample must be {{size, seed}}, got {sample!r:.60}")
    for key, value in sample.items():
        if key not in ("size", "seed"):
            raise ViewerConfigError(f"sample: unknown key {key!r} (it has size and seed)")
        if key == "size" and not (value is None or type(value) is int and value >= 1):  # type(): not a bool
            raise ViewerConfigError(f"sample.size must be a positive integer or null, got {value!r:.60}")
        if key == "seed" and not (type(value) is int and value >= 0):
            raise ViewerConfigError(f"sample.seed must be an integer >= 0, got {value!r:.60}")
    roots = config.get("image_roots", [])
    if not isinstance(roots, list) or not all(isinstance(root, (str, os.PathLike)) for root in roots):
        raise ViewerConfigError(f"image_roots must be a list of folders, got {roots!r:.80}")


def validate_labels(labels, item: ViewItem, sides: dict[str, int]) -> list[dict]:
    if not isinstance(labels, list):
        raise BadLabels("'labels' must be a list")
    checked = []
    for label in labels:
        if not isinstance(label, dict):
            raise BadLabels("each label must be an object")
        target, step, dimension, value = (label.get(k) for k in ("target", "step", "dimension", "value"))
        if dimension in PREFERENCE:
            if target != "pair" or not isinstance(value, str) or value not in sides:
                raise BadLabels(f"{dimension} needs target 'pair' and a value among {sorted(sides)}")
            model = item.models[sides[value]]
        elif dimension in BINARY:
            if target not in sides or type(value) is not int or value not in (0, 1):  # not True/False/1.0
                raise BadLabels(f"{dimension} needs target among {sorted(sides)} and value 0 or 1")
            steps = len(reasoning_steps(item.predictions[sides[target]].get("reasoning", "")))
            if dimension in PER_STEP and not (type(step) is int and 0 <= step < steps):
                raise BadLabels(f"{dimension} needs a step in 0..{steps - 1}")
            if dimension not in PER_STEP:
                step = None
            model = item.models[sides[target]]
        else:
            raise BadLabels(f"unknown dimension {dimension!r}")
        checked.append({"target": target, "step": step, "dimension": dimension, "value": value, "model": model})
    return checked


class ViewerServer:
    def __init__(self, config: dict):
        check_config(config)
        self.config = config
        self.mode = config.get("mode", "view")
        self.tokens = annotator_tokens(config.get("annotators", {}))
        sample = config.get("sample", {}) if self.mode == "annotate" else {}
        self.problems: list[str] = []  # lines of the items / predictions files not shown, with the reason
        self.items = load_view_items(Path(config["items_file"]), {k: Path(v) for k, v in config["predictions"].items()},
                                     sample.get("size"), sample.get("seed", 0), blind=self.mode == "annotate",
                                     problems=self.problems)
        self.roots = [Path(root).resolve() for root in config.get("image_roots", [])]
        self.store = LabelStore(Path(config["database"]))
        handler = self._handler()
        self.httpd = _Server((config.get("host", "127.0.0.1"), int(config.get("port", 8765))), handler)
        self.url = f"http://{self.httpd.server_address[0]}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def item_payload(self, item: ViewItem) -> dict:
        sides = ("left", "right")[: len(item.models)]
        return {
            "index": item.index, "id": item.item["id"], "task": item.item.get("task"), "prompt": item.item.get("prompt"),
            "reference": item.item.get("answer"), "image_url": f"/image/{item.index}", "frame": item.item.get("frame"),
            "sides": [{"side": side, "name": None if self.mode == "annotate" else name,
                       "prediction": prediction.get("prediction"),
                       "steps": reasoning_steps(prediction.get("reasoning", ""))}
                      for side, name, prediction in zip(sides, item.models, item.predictions)],
        }

    def image_path(self, item: ViewItem) -> Path | None:
        path = item.image.resolve()
        return path if any(path.is_relative_to(root) for root in self.roots) and path.is_file() else None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = server.config.get("request_timeout_s", 30)  # a stalled client frees its thread

            def log_message(self, *args):  # keep annotators' traffic out of the console
                pass

            def reply(self, status: int, payload=None, body: bytes | None = None, content_type="application/json"):
                data = body if body is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def who(self, query) -> tuple[str, str] | None:
                header = self.headers.get("Authorization", "")
                token = header[7:] if header.startswith("Bearer ") else (query.get("token") or [""])[0]
                for known, identity in server.tokens.items():  # as bytes: any header text compares
                    if token and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), known.encode()):
                        return identity
                return None

            def item_at(self, text: str) -> ViewItem | None:
                if not re.fullmatch(r"\d{1,7}", text):
                    return None
                index = int(text)
                return server.items[index] if index < len(server.items) else None

            def do_GET(self):
                url = urlparse(self.path)
                query, parts = parse_qs(url.query), url.path.strip("/").split("/")
                if url.path in ("/", "/index.html"):
                    return self.reply(200, body=(STATIC / "index.html").read_bytes(), content_type="text/html; charset=utf-8")
                identity = self.who(query)
                if identity is None:
                    return self.reply(401, {"error": "a valid annotator token is required"})
                if parts == ["api", "me"]:
                    return self.reply(200, {"annotator": identity[0], "group": identity[1], "mode": server.mode})
                if parts == ["api", "items"]:
                    return self.reply(200, {"items": [{"index": i.index, "id": i.item["id"]} for i in server.items]})
                if parts == ["api", "results"]:
                    if server.mode == "annotate":  # results would reveal the blinded sides and others' labels
                        return self.reply(403, {"error": "results are not served while annotating; run "
                                                         "`python -m eval.viewer results` offline"})
                    return self.reply(200, table2(server.store.all_rows()))
                if len(parts) == 3 and parts[:2] == ["api", "item"] and (item := self.item_at(parts[2])):
                    return self.reply(200, server.item_payload(item))
                if len(parts) == 3 and parts[:2] == ["api", "labels"] and (item := self.item_at(parts[2])):
                    return self.reply(200, {"labels": server.store.labels_of(identity[0], item.item["id"])})
                if len(parts) == 2 and parts[0] == "image" and (item := self.item_at(parts[1])):
                    path = server.image_path(item)
                    if path is None:
                        return self.reply(403, {"error": "image outside the configured image folders"})
                    return self.reply(200, body=path.read_bytes(), content_type="image/jpeg")
                return self.reply(404, {"error": "not found"})

            def do_POST(self):
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                identity = self.who(parse_qs(url.query))
                if identity is None:
                    return self.reply(401, {"error": "a valid annotator token is required"})
                if not (len(parts) == 3 and parts[:2] == ["api", "labels"] and (item := self.item_at(parts[2]))):
                    return self.reply(404, {"error": "not found"})
                declared = self.headers.get("Content-Length")
                if declared is None:
                    self.close_connection = True
                    return self.reply(411, {"error": "Content-Length is required"})
                if not re.fullmatch(r"\s*\d{1,12}\s*", declared):
                    self.close_connection = True
                    return self.reply(400, {"error": f"Content-Length must be a byte count, got {declared[:20]!r}"})
                length = int(declared)
                if length > MAX_BODY:
                    self.close_connection = True  # the unread body must not be taken for the next request
                    return self.reply(413, {"error": f"request too large (limit {MAX_BODY} bytes)"})
                data = self.rfile.read(length)  # the socket timeout bounds a client that stops sending
                if len(data) < length:
                    self.close_connection = True
                    return self.reply(400, {"error": "the body is shorter than its Content-Length"})
                body, problem = parse_json_object(data) if data.strip() else ({}, None)
                if problem is not None:
                    return self.reply(400, {"error": f"the body is {problem}"})
                try:
                    sides = {side: i for i, side in enumerate(("left", "right")[: len(item.models)])}
                    labels = validate_labels(body.get("labels"), item, sides)
                except BadLabels as error:
                    return self.reply(400, {"error": str(error)})
                saved = server.store.save(identity[0], identity[1], item.item["id"], labels)
                return self.reply(200, {"saved": saved})

        return Handler

    def start(self) -> "ViewerServer":
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_server(config: dict) -> ViewerServer:
    """Start serving in a background thread; ``.url`` says where, ``.close()`` stops it."""
    return ViewerServer(config).start()
