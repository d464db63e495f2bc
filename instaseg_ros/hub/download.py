"""Resumable, verified downloads with the standard library (urllib), a tqdm progress bar and one-line errors.

The file is written to ``<dest>.part``; an interrupted download keeps it and the next call asks the server for
the rest (HTTP ``Range: bytes=N-``; a server that ignores Range answers 200 and the download restarts). Once
complete the file is checked (sha256 or its published prefix, else the exact size when known) and only then
renamed to ``dest``; a file that fails the check is deleted so the next try starts clean. Every failure is a
``DownloadError`` whose message is one line.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

CHUNK = 1 << 20
USER_AGENT = "instaseg_ros-weights/1 (+python urllib)"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(RuntimeError):
    """A download that did not produce a verified file; ``str()`` is one line meant for the user."""


@dataclass
class DownloadResult:
    """What ``download`` did.

    Attributes:
        path: the verified file.
        size: its size in bytes.
        sha256: its full sha256 (hex), computed locally.
        verified: "sha256", "sha256 prefix", "size" or "none" (nothing published to check against).
        resumed_from: bytes already on disk that the server was asked to continue after (0 = fresh).
        already_present: the file was there and verified; nothing was transferred.
    """

    path: Path
    size: int
    sha256: str
    verified: str
    resumed_from: int = 0
    already_present: bool = False


def file_sha256(path: Path, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, sha256: str | None, size: int | None, name: str | None = None) -> tuple[str, str]:
    """Check ``path`` against a published sha256 (full or prefix) or else an exact size.

    ``name``: what to call the file in messages (default: its name).

    Returns:
        (what was verified, the file's full sha256).

    Raises:
        DownloadError: on a mismatch (the message names expected and found values).
    """
    digest = file_sha256(path)
    name = name or path.name
    if sha256:
        expected = sha256.lower()
        if not digest.startswith(expected):
            raise DownloadError(f"checksum mismatch for {name}: expected sha256 {expected}"
                                f"{'' if len(expected) == 64 else '...'}, got {digest}")  # fmt: skip
        return ("sha256" if len(expected) == 64 else "sha256 prefix"), digest
    if size is not None:
        found = path.stat().st_size
        if found != size:
            raise DownloadError(f"size mismatch for {name}: expected {size} bytes, got {found}")
        return "size", digest
    return "none", digest


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, socket.gaierror):
        return f"name resolution failed ({reason.strerror or reason})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    host = urlsplit(url).netloc or url
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return None  # nothing left to send: the .part file is already complete
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot reach {host}: {_reason(exc)} (no network?)") from None


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    timeout: float = 30.0,
    progress: bool = True,
    chunk: int = CHUNK,
) -> DownloadResult:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part`` and verifying the result.

    Args:
        url: http(s) URL (redirects are followed; the Range header goes along).
        dest: final file path; its folder is created.
        sha256: published sha256 (64 hex digits) or a published prefix of it (e.g. torchvision's 8).
        size: exact size in bytes when published (checked when no sha256 is given; also the bar's total).
        timeout: seconds for connecting and for each read.
        progress: show a tqdm bar on stderr.
        chunk: bytes per read.

    Raises:
        DownloadError: no connection, an HTTP error, an interrupted transfer (the partial file is kept: call
            again to resume) or a failed check (the file is deleted).
    """
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        try:
            verified, digest = verify(dest, sha256, size)
        except DownloadError as exc:
            raise DownloadError(f"{exc}; {dest} is already there: delete it and run again") from None
        return DownloadResult(dest, dest.stat().st_size, digest, verified, already_present=True)

    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    resumed_from = offset
    response = None if (size is not None and offset == size) else _open(url, offset, timeout)
    if response is not None:
        with response:
            status = response.status
            start = offset
            if offset and status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                start = int(match.group(1)) if match else -1
            if status == 200 or start != offset:
                offset = resumed_from = 0  # the server sent the whole file (Range ignored): start over
            length = response.headers.get("Content-Length")
            expected_end = offset + int(length) if length and length.isdigit() else size
            received = offset
            with open(part, "ab" if offset else "wb") as out, tqdm(
                total=expected_end, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress,
            ) as bar:  # fmt: skip
                try:
                    while block := response.read(chunk):
                        out.write(block)
                        received += len(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        f"download of {dest.name} interrupted after {received} bytes ({_reason(exc)}): "
                        "run the same command again to resume"
                    ) from None
            if expected_end is not None and received < expected_end:
                raise DownloadError(f"download of {dest.name} interrupted after {received} of {expected_end} "
                                    f"bytes: run the same command again to resume")  # fmt: skip
    try:
        verified, digest = verify(part, sha256, size, name=dest.name)
    except DownloadError as exc:
        part.unlink()
        raise DownloadError(f"{exc}; the download was deleted: run the command again") from None
    os.replace(part, dest)
    return DownloadResult(dest, dest.stat().st_size, digest, verified, resumed_from=resumed_from)
