"""A local stand-in for the Hugging Face Hub's file endpoint, on 127.0.0.1, for the download tests.

It answers HEAD and GET on /{repo_id}/resolve/{revision}/{filename} with the headers huggingface_hub reads
(X-Repo-Commit, ETag: the SHA-256 for large files, Content-Length), honours Range requests, and can cut the
first transfer of a file short to test resuming, or send one file slowly (to stop a download half-way).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self, files: dict[tuple[str, str], Path], cut_first_download_of: str | None = None,
                 slow: str | None = None):
        self.files = files
        self.cut_first_download_of = cut_first_download_of
        self.slow = slow  # a file name sent 64 KB at a time, 20 times a second
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.bytes_sent = 0
        self._sha = {key: _sha256(path) for key, path in files.items()}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(send_body=False)

            def do_GET(self):
                self._answer(send_body=True)

            def _answer(self, send_body: bool):
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                match = re.match(r"^/(.+?/.+?)/resolve/[^/]+/(.+)$", self.path.split("?")[0])
                key = (match.group(1), match.group(2)) if match else None
                if key not in hub.files:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = hub.files[key].read_bytes()
                start = 0
                range_header = self.headers.get("Range")
                if send_body and range_header:
                    start = int(re.match(r"bytes=(\d+)-", range_header).group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hub._sha[key]}"')
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if not send_body:
                    return
                body = data[start:]
                if hub.cut_first_download_of == key[1] and not range_header:
                    hub.cut_first_download_of = None
                    body = body[: len(body) // 2]  # the connection drops half-way
                    self.wfile.write(body)
                    hub.bytes_sent += len(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if hub.slow == key[1]:
                    try:
                        for start in range(0, len(body), 1 << 16):
                            self.wfile.write(body[start:start + (1 << 16)])
                            hub.bytes_sent += len(body[start:start + (1 << 16)])
                            time.sleep(0.05)
                    except OSError:  # the client is gone
                        pass
                    return
                self.wfile.write(body)
                hub.bytes_sent += len(body)

        return Handler


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
