"""Pick MuJoCo's OpenGL backend for headless rendering before `mujoco` is imported.

MuJoCo reads `MUJOCO_GL` once, when `import mujoco` runs, so play.py and train.py call
`select_gl_backend()` at their very top (before any `gym` module that imports mujoco) when a video
is asked for. A `MUJOCO_GL` the user set always wins (it is only checked to be a valid name). Otherwise
EGL is tried, then OSMesa, each in a short subprocess that makes a tiny context (about 0.4 s), and the
first that works is set. This module imports nothing heavy (no mujoco, no torch).

    from gym.utils.gl_backend import select_gl_backend, wants_rendering
    if wants_rendering(sys.argv[1:]):
        select_gl_backend()
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

CANDIDATES = ("egl", "osmesa")  # tried in this order on Linux when MUJOCO_GL is not set
VALID = {"Linux": ("egl", "osmesa", "glx", "glfw"), "Darwin": ("cgl", "glfw"), "Windows": ("wgl", "glfw")}
DISABLED = ("disable", "disabled", "off", "false", "0")
RENDER_FLAGS = ("--video", "--video_interval")  # flags of play.py / train.py that render offscreen
INSTALL_HINT = (
    "Install one headless OpenGL backend: EGL (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0; "
    "NVIDIA: the driver's libEGL) or OSMesa (Debian/Ubuntu: apt-get install libosmesa6), plus "
    "`pip install pyopengl`; or set MUJOCO_GL=glfw on a machine with a display"
)
_PROBE = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"
_failures: dict[str, str] = {}  # backend -> why its probe failed (for the error message)


class RenderBackendError(RuntimeError):
    """No OpenGL backend can render offscreen; the message names the packages to install."""


def wants_rendering(argv: list[str]) -> bool:
    """True when the command line asks for offscreen rendering (`--video`, `--video_interval N`)."""
    return any(a == f or a.startswith(f + "=") for a in argv for f in RENDER_FLAGS)


def check_video_args(args: object) -> None:
    """Refuse bad video flags before anything is built: ValueError naming the flag and a valid value."""
    length, size = getattr(args, "video_length", 5.0), getattr(args, "video_size", None)
    interval = getattr(args, "video_interval", None)
    if length is not None and not length > 0:
        raise ValueError(f"--video_length {length}: must be > 0 seconds, e.g. --video_length 5")
    if interval is not None and interval < 1:
        raise ValueError(f"--video_interval {interval}: must be >= 1 (iterations between clips), "
                         "e.g. --video_interval 100")
    if size is not None and (min(size) < 16 or size[0] % 2 or size[1] % 2):
        raise ValueError(f"--video_size {size[0]} {size[1]}: width and height must be even and >= 16 "
                         "(H.264 needs even sizes), e.g. --video_size 640 480")


def probe(backend: str, timeout: float = 60.0) -> str | None:
    """Make a 16x16 context with MUJOCO_GL=`backend` in a subprocess; None if it works, else why not."""
    env = {**os.environ, "MUJOCO_GL": backend}
    env.pop("PYOPENGL_PLATFORM", None)
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                             timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{type(e).__name__}: {e}"
    if out.returncode == 0:
        return None
    lines = [x for x in out.stderr.strip().splitlines() if x.strip()]
    return lines[-1] if lines else f"exit code {out.returncode}"


def select_gl_backend(candidates: tuple[str, ...] = CANDIDATES) -> str | None:
    """Set MUJOCO_GL for offscreen rendering and return it (None: no backend works; the renderer then
    raises `RenderBackendError` via `backend_error`).

    A user-set MUJOCO_GL is kept; an invalid name raises RenderBackendError at once (mujoco would
    fail at import with a traceback). Must run before `import mujoco`: if mujoco is already imported
    and MUJOCO_GL is unset, nothing is changed and a notice is printed.
    """
    user = os.environ.get("MUJOCO_GL", "").strip().lower()
    if user:
        valid = VALID.get(platform.system(), ("glfw",))
        if user not in (*valid, *DISABLED, "enable", "enabled", "on", "true", "1"):
            raise RenderBackendError(f"MUJOCO_GL={user!r} is not a rendering backend MuJoCo knows; use one of "
                                     f"{list(valid)} (or unset it to let play.py / train.py choose). {INSTALL_HINT}")
        return user
    if "mujoco" in sys.modules:
        print("notice: mujoco was imported before the OpenGL backend was chosen; set MUJOCO_GL=egl "
              "(or osmesa) in the environment for headless rendering", file=sys.stderr)
        return None
    if platform.system() != "Linux":
        return None  # macOS / Windows: MuJoCo's default (CGL / WGL, or GLFW) renders offscreen
    for backend in candidates:
        why = probe(backend)
        if why is None:
            os.environ["MUJOCO_GL"] = backend
            return backend
        _failures[backend] = why
    return None


def backend_error(cause: BaseException) -> RenderBackendError:
    """The error to raise when `mujoco.Renderer` cannot be made: backend, cause, what to install."""
    chosen = os.environ.get("MUJOCO_GL", "(unset: GLFW, needs a display)")
    tried = "".join(f"; MUJOCO_GL={b} failed: {why}" for b, why in _failures.items())
    return RenderBackendError(f"cannot render offscreen with MUJOCO_GL={chosen} ({type(cause).__name__}: "
                              f"{cause}){tried}. {INSTALL_HINT}")
