"""A local stand-in for the parts of the Hugging Face Hub HTTP API that a push uses, so that the real
``huggingface_hub`` client runs end to end without the network (point ``HF_ENDPOINT`` at :attr:`HubStandIn.url`).

Served: ``GET /api/whoami-v2``, ``POST /api/repos/create``, ``POST /api/validate-yaml`` (the model card's front
matter: a mapping whose ``base_model``, ``tags`` and ``widget`` have the Hub's shapes),
``POST /api/models/<repo>/preupload/<rev>`` and ``POST /api/models/<repo>/commit/<rev>``. The preupload answer
declares every file a regular upload (inline, base64), as the real Hub does for small text files, so the commit
payload carries each file's bytes, which are recorded as committed. (The real Hub sends large binaries through Xet
storage instead; that transfer is the ``hf_xet`` library's business and is not stood in for.) Anything else
answers 404 and is recorded too.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Commit:
    repo_id: str
    revision: str
    summary: str
    files: dict[str, bytes]


@dataclass
class HubStandIn:
    """The server's state: what it was asked, and how it should answer."""

    url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    created: list[dict] = field(default_factory=list)  # create-repo payloads
    preuploads: list[list[str]] = field(default_factory=list)  # file paths asked about, per call
    validated: list[str] = field(default_factory=list)  # model cards checked by /api/validate-yaml
    commits: list[Commit] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)  # Authorization headers seen
    whoami_status: int = 200
    token_role: str = "write"
    commit_status: int = 200  # 4xx: refuse commits (not retried by the client)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def committed(self) -> dict[str, bytes]:
        """Every file committed, the last version of each."""
        out: dict[str, bytes] = {}
        for commit in self.commits:
            out.update(commit.files)
        return out


_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def card_errors(content: str) -> list[str]:
    """What the stand-in refuses in a model card's front matter (a subset of the Hub's own rules)."""
    match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
    if match is None:
        return ["no YAML front matter"]
    try:
        meta = json.loads(json.dumps(__import__("yaml").safe_load(match.group(1))))
    except Exception as e:
        return [f"front matter is not YAML: {e}"]
    if not isinstance(meta, dict):
        return ["front matter is not a mapping"]
    errors = []
    bases = meta.get("base_model", [])
    if not all(isinstance(b, str) and _REPO_ID.match(b) for b in (bases if isinstance(bases, list) else [bases])):
        errors.append(f"base_model: not repo ids: {bases!r}")
    if not (isinstance(meta.get("tags", []), list) and all(isinstance(t, str) for t in meta.get("tags", []))):
        errors.append("tags: must be a list of strings")
    for i, item in enumerate(meta.get("widget") or []):
        output = item.get("output") if isinstance(item, dict) else None
        if not (isinstance(item.get("text"), str) and isinstance(output, dict) and isinstance(output.get("url"), str)):
            errors.append(f"widget[{i}]: needs text and output.url")
    return errors


def _handler(state: HubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> bytes:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.requests.append((self.command, self.path))
                if self.headers.get("Authorization"):
                    state.tokens.add(self.headers["Authorization"])
            return body

        def do_GET(self) -> None:
            self._record()
            if self.path == "/api/whoami-v2":
                if state.whoami_status != 200:
                    return self._reply(state.whoami_status, {"error": "Invalid credentials in Authorization header"})
                auth = {"accessToken": {"role": state.token_role}}
                return self._reply(200, {"name": "tester", "type": "user", "auth": auth})
            self._reply(404, {"error": "not in the stand-in"})

        def do_POST(self) -> None:
            body = self._record()
            path = self.path.split("?")[0]
            if path == "/api/validate-yaml":
                content = json.loads(body)["content"]
                state.validated.append(content)
                errors = card_errors(content)
                return self._reply(400 if errors else 200, {"errors": [{"message": e} for e in errors]})
            if path == "/api/repos/create":
                payload = json.loads(body)
                state.created.append(payload)
                repo = "/".join(p for p in (payload.get("organization"), payload["name"]) if p)
                return self._reply(200, {"url": f"{state.url}/{repo}"})
            if path.startswith("/api/models/") and "/preupload/" in path:
                files = json.loads(body)["files"]
                state.preuploads.append([f["path"] for f in files])
                modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                return self._reply(200, {"files": modes})
            if path.startswith("/api/models/") and "/commit/" in path:
                if state.commit_status != 200:
                    return self._reply(state.commit_status, {"error": "the stand-in refuses this commit"})
                repo_id, _, revision = path.removeprefix("/api/models/").partition("/commit/")
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                header = next(line["value"] for line in lines if line["key"] == "header")
                files = {
                    line["value"]["path"]: base64.b64decode(line["value"]["content"])
                    for line in lines
                    if line["key"] == "file"
                }
                state.commits.append(Commit(repo_id, revision, header["summary"], files))
                oid = f"{len(state.commits):040x}"
                return self._reply(200, {"commitUrl": f"{state.url}/{repo_id}/commit/{oid}", "commitOid": oid})
            self._reply(404, {"error": "not in the stand-in"})

        def log_message(self, *args) -> None:  # quiet
            pass

    return Handler


class running:
    """``with running() as hub:`` a stand-in on a free local port, stopped on exit."""

    def __init__(self) -> None:
        self.state = HubStandIn()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.state.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self.state

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
