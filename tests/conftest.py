"""Test setup: 8 fake CPU devices (before JAX is imported), markers, shared fixtures."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()

import jax  # noqa: E402
import pytest  # noqa: E402


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# pytest-httpserver: the archive-source tests serve recorded replies on 127.0.0.1 only.
@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)
