"""Shared pytest fixtures: where to find the read-only Asimov reference robot data, and the device
switch: `GYM_TEST_DEVICE=cuda:0 python -m pytest tests` runs the env and MuJoCo Warp tests on a GPU."""

import os
from pathlib import Path

from gym.utils.gl_backend import select_gl_backend

# Offscreen rendering in this process (tests/test_play_media.py) needs MUJOCO_GL chosen before anything
# imports mujoco: EGL, else OSMesa (a MUJOCO_GL set by the user wins). The scripts do the same themselves.
select_gl_backend()

import pytest  # noqa: E402
import torch  # noqa: E402

_ENV_VAR = "ASIMOV_REFERENCE_DIR"
# Device of the env / MuJoCo Warp tests: "cpu" (Warp's CPU device) unless GYM_TEST_DEVICE says e.g.
# "cuda:0" to run them on a GPU. The MuJoCo C backend always runs on the CPU.
TEST_DEVICE = os.environ.get("GYM_TEST_DEVICE", "cpu")


if TEST_DEVICE != "cpu":
    # Tensors the tests build land on the same device as the env's (Warp on TEST_DEVICE).
    torch.set_default_device(TEST_DEVICE)


def pytest_collection_modifyitems(config, items) -> None:
    """On a GPU run, skip the MuJoCo C (CPU-only) cases: the CPU run covers them."""
    if TEST_DEVICE == "cpu":
        return
    skip = pytest.mark.skip(reason=f"GYM_TEST_DEVICE={TEST_DEVICE}: MuJoCo C cases run in the CPU suite")
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "mujoco" in callspec.id.split("-"):
            item.add_marker(skip)


def device_for(backend: str) -> str:
    """The sim device a test uses for `backend` ("warp" -> TEST_DEVICE, "mujoco" -> "cpu")."""
    return TEST_DEVICE if backend == "warp" else "cpu"


_REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def asimov_reference_dir() -> Path:
    """Folder holding the reference ``asimov.xml`` (with its STLs) and the data sheet.

    Taken from the ``ASIMOV_REFERENCE_DIR`` environment variable if set, else
    ``<repo root>/../shared/robots/asimov``.
    """
    env = os.environ.get(_ENV_VAR)
    folder = Path(env) if env else _REPO_ROOT.parent / "shared" / "robots" / "asimov"
    if not (folder / "asimov.xml").is_file():
        pytest.fail(
            f"Asimov reference data not found: {folder / 'asimov.xml'} does not exist. "
            f"Set the {_ENV_VAR} environment variable to the folder holding the reference asimov.xml.",
            pytrace=False,
        )
    return folder


@pytest.fixture
def single_thread():
    """One torch thread: tiny networks run fastest (and steadiest on a busy machine) that way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
