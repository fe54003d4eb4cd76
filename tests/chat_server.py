"""A local chat-completions server on 127.0.0.1 for tests of the endpoint clients (no network)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # a burst of concurrent clients must not be reset by a short backlog


class FakeChatServer:
    """Speaks POST /v1/chat/completions. ``behave(prompt_text, attempt) -> (status, body, delay_s, headers)``;
    GET /v1/models lists ``models`` (what a pre-flight asks)."""

    def __init__(self, behave, models=("fake-teacher", "fake-verifier")):
        self.behave, self.requests, self.authorizations = behave, [], set()
        self.models = list(models)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                payload = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
                self.send_response(200 if self.path == "/v1/models" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = " ".join(part.get("text", "") for part in body["messages"][0]["content"] if isinstance(part, dict))
                with server.lock:
                    server.requests.append(text)
                    server.authorizations.add(self.headers.get("Authorization"))
                    attempt = sum(1 for seen in server.requests if seen == text)
                status, reply, delay, headers = server.behave(text, attempt)
                time.sleep(delay)
                payload = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(content: str) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}
