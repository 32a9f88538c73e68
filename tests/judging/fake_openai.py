"""A fault-injecting HTTP server that speaks the OpenAI chat-completions API on a real socket.

Tests queue behaviours (``server.script``); each request takes the next one, and when the queue is empty the
default answers with a valid verdict. Every request is recorded (body, arrival time), so tests can count calls.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verdict(winner="A", score_a=8, score_b=3, rationale="A is more accurate."):
    return json.dumps({"winner": winner, "score_a": score_a, "score_b": score_b, "rationale": rationale})


@dataclass
class Action:
    status: int = 200
    content: str | None = None  # the assistant message; None: a valid verdict
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    raw_body: bytes | None = None  # sent as-is (non-JSON bodies)
    truncate: bool = False  # announce a longer body than is sent, then close the connection
    error: str = "error"
    finish_reason: str = "stop"


def ok(content=None, delay=0.0, finish_reason="stop"):
    return Action(content=content, delay=delay, finish_reason=finish_reason)


def status(code, retry_after=None, message="error"):
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Action(status=code, headers=headers, error=message)


class FakeOpenAI:
    def __init__(self, *, reject_json_schema: bool = False, default=None):
        self.script: list[Action] = []
        self.requests: list[dict] = []
        self.arrivals: list[float] = []
        self.reject_json_schema = reject_json_schema
        self.default = default or (lambda body: ok())
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _next(self, body: dict) -> Action:
        with self._lock:
            self.requests.append(body)
            self.arrivals.append(time.monotonic())
            if self.reject_json_schema and (body.get("response_format") or {}).get("type") == "json_schema":
                return Action(status=500, error="response_format type must be 'text' or 'json_object'")
            return self.script.pop(0) if self.script else self.default(body)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                action = fake._next(body)
                if action.delay:
                    time.sleep(action.delay)
                if action.raw_body is not None:
                    payload = action.raw_body
                elif action.status != 200:
                    payload = json.dumps({"error": {"message": action.error, "type": "fake", "code": None}}).encode()
                else:
                    payload = json.dumps(_completion(body, action.content, action.finish_reason)).encode()
                self.send_response(action.status)
                self.send_header("Content-Type", "application/json")
                for k, v in action.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload) + (100 if action.truncate else 0)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2] if action.truncate else payload)
                if action.truncate:
                    self.close_connection = True

        return Handler


def _completion(body: dict, content: str | None, finish_reason: str = "stop") -> dict:
    text = verdict() if content is None else content
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],  # fmt: skip
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }
