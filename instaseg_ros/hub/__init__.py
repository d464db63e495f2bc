"""Public weights: the catalogue of official checkpoints and a resumable, verified downloader."""

from instaseg_ros.hub.catalog import CATALOG, NOT_PUBLISHED, WeightsEntry, find, names
from instaseg_ros.hub.download import DownloadError, DownloadResult, download, file_sha256, verify

__all__ = [
    "CATALOG",
    "NOT_PUBLISHED",
    "DownloadError",
    "DownloadResult",
    "WeightsEntry",
    "download",
    "file_sha256",
    "find",
    "names",
    "verify",
]
