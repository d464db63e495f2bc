"""Suite-wide test configuration: a unique ROS domain per run, loopback-only discovery, GPU skipping."""

from __future__ import annotations

import os
import random

import pytest

# One ROS_DOMAIN_ID per test run (inherited by every node process a test starts), so that parallel runs on
# one machine never see each other's topics. 1..101 keeps clear of the default domain 0 and of the port
# ranges of high domain ids.
if "INSTASEG_TEST_DOMAIN_SET" not in os.environ:
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
    os.environ["INSTASEG_TEST_DOMAIN_SET"] = "1"
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no torch means no CUDA
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when CUDA is not available."""
    if any("gpu" in item.keywords for item in items) and not _cuda_available():
        skip = pytest.mark.skip(reason="needs CUDA (no GPU on this machine)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """The ROS_DOMAIN_ID of this test run."""
    return int(os.environ["ROS_DOMAIN_ID"])
