"""Test setup: 8 fake CPU devices (before JAX is imported), markers, shared fixtures."""

import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
# Many tests compile the same programs (a run and its resumed twin, one model on several
# meshes): JAX's persistent compilation cache, shared by the xdist workers and the CLI
# subprocesses, cut the slowest ones by 40-75% here. Its keys include the JAX version, the
# backend and the flags, so a stale entry is never used.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "astrojax-tests-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")

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
