"""A scripted Hugging Face Hub on a real socket: the few endpoints huggingface_hub calls to create a dataset repo and
commit small files to it (create_repo, repo_info, validate-yaml, preupload, commit; read from the library's
hf_api.py and _commit_api.py). Every file is "regular" (base64 in the commit), so no LFS or Xet storage is needed.

Each request is recorded (method, path, headers, body) and the repos keep what was committed, so tests check what
reached the Hub. ``refuse`` answers every request with that status; ``commit_status`` only the commit."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self):
        self.requests: list[dict] = []
        self.repos: dict[str, dict] = {}  # "owner/name" -> {"private": bool, "files": {path: bytes}, "commits": n}
        self.refuse: int | None = None
        self.commit_status: int | None = None
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests]

    def _answer(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        if self.refuse:
            return self.refuse, {"error": f"refused with {self.refuse} by the fake hub"}
        parts = path.split("?")[0].strip("/").split("/")
        if method == "POST" and parts == ["api", "repos", "create"]:
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}"
            url = f"{self.endpoint}/datasets/{repo_id}"
            if repo_id in self.repos:
                return 409, {"error": "You already created this dataset repo", "url": url}
            self.repos[repo_id] = {"private": payload.get("visibility") == "private", "files": {}, "commits": 0}
            return 200, {"url": url}
        if method == "POST" and parts == ["api", "validate-yaml"]:
            return 200, {"errors": [], "warnings": []}
        if len(parts) >= 4 and parts[:2] == ["api", "datasets"]:
            repo_id = "/".join(parts[2:4])
            repo = self.repos.get(repo_id)
            if repo is None:
                return 404, {"error": "Repository not found"}
            if method == "GET" and len(parts) == 4:
                return 200, {"id": repo_id, "private": repo["private"], "sha": "0" * 40}
            if method == "POST" and parts[4:5] == ["preupload"]:
                files = json.loads(body)["files"]
                return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                       for f in files]}  # fmt: skip
            if method == "POST" and parts[4:5] == ["commit"]:
                if self.commit_status:
                    return self.commit_status, {"error": "A commit has happened since. Please refresh and try again."}
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        repo["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                repo["commits"] += 1
                return 200, {"commitUrl": f"{self.endpoint}/datasets/{repo_id}/commit/{'a' * 40}",
                             "commitOid": "a" * 40}  # fmt: skip
        return 404, {"error": f"the fake hub has no {method} {path}"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _serve(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake._lock:
                    fake.requests.append({"method": method, "path": self.path, "headers": dict(self.headers),
                                          "body": body})  # fmt: skip
                    status, payload = fake._answer(method, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's name
                self._serve("GET")

            def do_POST(self):  # noqa: N802 - http.server's name
                self._serve("POST")

        return Handler
