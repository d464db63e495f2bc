"""instaseg_ros.hub.download against a real HTTP server on 127.0.0.1 (see conftest.py).

Good file, bad checksum, interrupted and resumed, a server without Range support, no server.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from instaseg_ros.hub import DownloadError, download, verify

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # several read chunks, not a multiple of the chunk size
SHA = hashlib.sha256(PAYLOAD).hexdigest()
CHUNK = 64 * 1024


def get(server, dest: Path, **kw):
    kw.setdefault("progress", False)
    return download(server.url("w.pth"), dest, chunk=CHUNK, timeout=10, **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_good_file_with_full_sha256(http_server, tmp_path: Path) -> None:
    http_server.files["w.pth"] = PAYLOAD
    result = get(http_server, tmp_path / "sub" / "w.pth", sha256=SHA)
    assert result.path.read_bytes() == PAYLOAD
    assert (result.verified, result.sha256, result.size) == ("sha256", SHA, len(PAYLOAD))
    assert result.resumed_from == 0 and not result.already_present
    assert not (tmp_path / "sub" / "w.pth.part").exists()
    assert http_server.requests == [("/w.pth", None)]


@pytest.mark.parametrize(
    ("kw", "verified"),
    [({"sha256": SHA[:8]}, "sha256 prefix"), ({"size": len(PAYLOAD)}, "size"), ({}, "none")],
)
def test_what_gets_verified(http_server, tmp_path: Path, kw: dict, verified: str) -> None:
    http_server.files["w.pth"] = PAYLOAD
    result = get(http_server, tmp_path / "w.pth", **kw)
    assert result.verified == verified and result.sha256 == SHA


def test_bad_checksum_deletes_the_download(http_server, tmp_path: Path) -> None:
    http_server.files["w.pth"] = PAYLOAD
    wrong = hashlib.sha256(b"another file").hexdigest()
    with pytest.raises(DownloadError) as err:
        get(http_server, tmp_path / "w.pth", sha256=wrong)
    message = str(err.value)
    assert "\n" not in message
    assert f"checksum mismatch for w.pth: expected sha256 {wrong}, got {SHA}" in message
    assert not (tmp_path / "w.pth").exists() and not (tmp_path / "w.pth.part").exists()
    with pytest.raises(DownloadError, match=r"expected sha256 0badc0de\.\.\."):
        get(http_server, tmp_path / "w.pth", sha256="0badc0de")


def test_wrong_size_is_refused(http_server, tmp_path: Path) -> None:
    http_server.files["w.pth"] = PAYLOAD
    with pytest.raises(DownloadError, match=f"expected {len(PAYLOAD) + 1} bytes, got {len(PAYLOAD)}"):
        get(http_server, tmp_path / "w.pth", size=len(PAYLOAD) + 1)


def test_interrupted_then_resumed_with_range(http_server, tmp_path: Path) -> None:
    http_server.files["w.pth"] = PAYLOAD
    cut = 1_000_003
    http_server.cut_after = cut
    dest = tmp_path / "w.pth"
    with pytest.raises(DownloadError) as err:
        get(http_server, dest, sha256=SHA)
    assert "\n" not in str(err.value)
    assert f"interrupted after {cut} of {len(PAYLOAD)} bytes" in str(err.value) and "resume" in str(err.value)
    assert not dest.exists() and (tmp_path / "w.pth.part").stat().st_size == cut

    result = get(http_server, dest, sha256=SHA)
    assert http_server.requests[-1] == ("/w.pth", f"bytes={cut}-")
    assert result.resumed_from == cut and result.verified == "sha256"
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "w.pth.part").exists()


def test_interrupted_twice_then_resumed(http_server, tmp_path: Path) -> None:
    http_server.files["w.pth"] = PAYLOAD
    dest = tmp_path / "w.pth"
    http_server.cut_after = 100_000
    with pytest.raises(DownloadError, match="interrupted after 100000 of"):
        get(http_server, dest, size=len(PAYLOAD))
    http_server.cut_after = 200_000
    with pytest.raises(DownloadError, match="interrupted after 300000 of"):
        get(http_server, dest, size=len(PAYLOAD))
    result = get(http_server, dest, size=len(PAYLOAD), sha256=SHA)
    assert [r[1] for r in http_server.requests] == [None, "bytes=100000-", "bytes=300000-"]
    assert result.resumed_from == 300_000 and dest.read_bytes() == PAYLOAD


def test_server_without_range_support_restarts(http_server, tmp_path: Path) -> None:
    http_server.files["w.pth"] = PAYLOAD
    http_server.cut_after = 500_000
    dest = tmp_path / "w.pth"
    with pytest.raises(DownloadError):
        get(http_server, dest, sha256=SHA)
    http_server.ignore_range = True
    result = get(http_server, dest, sha256=SHA)
    assert http_server.requests[-1][1] == "bytes=500000-"  # asked, but got 200 and the whole file
    assert result.resumed_from == 0 and dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_without_a_transfer(http_server, tmp_path: Path) -> None:
    http_server.files["w.pth"] = PAYLOAD
    (tmp_path / "a.pth.part").write_bytes(PAYLOAD)
    result = download(
        http_server.url("w.pth"), tmp_path / "a.pth", sha256=SHA, size=len(PAYLOAD), progress=False
    )
    assert result.verified == "sha256" and http_server.requests == []
    # size unknown: the server answers 416 (nothing left after the last byte) and the file is checked
    (tmp_path / "b.pth.part").write_bytes(PAYLOAD)
    result = download(http_server.url("w.pth"), tmp_path / "b.pth", sha256=SHA, progress=False)
    assert result.path.read_bytes() == PAYLOAD
    assert http_server.requests == [("/w.pth", f"bytes={len(PAYLOAD)}-")]


def test_oversized_part_file_is_discarded(http_server, tmp_path: Path) -> None:
    http_server.files["w.pth"] = PAYLOAD
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD + b"garbage")
    result = get(http_server, tmp_path / "w.pth", size=len(PAYLOAD), sha256=SHA)
    assert result.resumed_from == 0 and http_server.requests == [("/w.pth", None)]


def test_already_present_file_is_verified_not_fetched(http_server, tmp_path: Path) -> None:
    (tmp_path / "w.pth").write_bytes(PAYLOAD)
    result = get(http_server, tmp_path / "w.pth", sha256=SHA)
    assert result.already_present and http_server.requests == []
    (tmp_path / "w.pth").write_bytes(PAYLOAD[:-1])
    with pytest.raises(DownloadError, match="already there: delete it"):
        get(http_server, tmp_path / "w.pth", sha256=SHA)


def test_no_server_is_one_clear_line(tmp_path: Path) -> None:
    port = closed_port()
    with pytest.raises(DownloadError) as err:
        download(f"http://127.0.0.1:{port}/w.pth", tmp_path / "w.pth", progress=False, timeout=5)
    assert str(err.value) == f"cannot reach 127.0.0.1:{port}: Connection refused (no network?)"
    assert not list(tmp_path.iterdir())


def test_unknown_host_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"^cannot reach no-such-host\.invalid: name resolution failed"):
        download("http://no-such-host.invalid/w.pth", tmp_path / "w.pth", progress=False, timeout=5)


def test_http_error(http_server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"/missing\.pth: HTTP 404 Not Found$"):
        download(http_server.url("missing.pth"), tmp_path / "w.pth", progress=False)


def test_verify_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    assert verify(path, digest.upper(), None) == ("sha256", digest)
    assert verify(path, None, 3) == ("size", digest)
    with pytest.raises(DownloadError):
        verify(path, "ffff", None)
