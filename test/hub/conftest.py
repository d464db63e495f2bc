"""A real HTTP server on 127.0.0.1 (http.server in a thread) that serves files with HTTP Range support.

Knobs per test: ``cut_after`` (send only that many body bytes of the next full or ranged response, then close
the connection: an interrupted download), ``ignore_range`` (answer 200 with the whole file, as servers without
Range support do). Every request's path and Range header are recorded in ``requests``.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeServer:
    """Files in memory, served at http://127.0.0.1:<port>/<name>."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                name = self.path.lstrip("/").split("?", 1)[0]
                header = self.headers.get("Range")
                server.requests.append((self.path, header))
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start, end, status = 0, len(data) - 1, 200
                match = _RANGE.match(header or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    end = min(int(match.group(2)), end) if match.group(2) else end
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start : end + 1]
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server():
    server = RangeServer()
    yield server
    server.close()
