"""Weights & Biases logging for training runs and sweep trials; off unless asked, as in gpuGym.

    settings = resolve_wandb_settings(args)            # None: wandb off (no --wandb_* flag, no config file)
    run = start_wandb(settings, run_dir, env_cfg, train_cfg)
    runner.add_logger(run.log_metrics)                 # every iteration, same names as metrics.jsonl
    runner.add_checkpoint_callback(run.log_file)       # --wandb_upload_models: checkpoints as artifacts
    ...
    run.finish(exit_code)

Settings come from the `--wandb_*` flags, then `user/wandb_config.json` (keys: project, entity,
mode, group, tags, upload_models; a flag beats the file), then wandb's own environment variables
(WANDB_MODE, WANDB_PROJECT). The project defaults to the experiment name. `import wandb` happens
only inside `start_wandb` and the `WandbRun` methods, so plain training never loads it.

Nothing waits on a missing network: in online mode, a missing API key or a wandb host that cannot
be reached within `CONNECT_TIMEOUT_S` switches the run to offline mode with one printed line (the
run can be uploaded later with `wandb sync <folder>`); `wandb.init` also gets an `init_timeout`,
and an online init that fails anyway falls back to offline the same way.

`run_dir/wandb_run.json` records the wandb run (id, project, entity, mode, url or offline folders);
starting again in a run folder that has one (train.py `--resume`) continues the same wandb run,
also without `--wandb_*` flags (`settings_from_run_info`).
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import math
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

from gym import GYM_ROOT_DIR
from gym.envs.base.base_config import class_to_dict
from gym.rl.checkpoint import atomic_write_text

DEFAULT_CONFIG_FILE = GYM_ROOT_DIR / "user" / "wandb_config.json"
RUN_INFO_FILE = "wandb_run.json"
WANDB_MODES = ("online", "offline", "disabled")
CONFIG_KEYS = ("project", "entity", "mode", "group", "tags", "upload_models")
DEFAULT_BASE_URL = "https://api.wandb.ai"
CONNECT_TIMEOUT_S = 3.0  # HTTP check of the wandb host (DNS, connect, answer) before an online init
INIT_TIMEOUT_S = 30.0  # wandb.init's own limit (WANDB_INIT_TIMEOUT overrides); a second guard
_ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
              "disabled": "disabled"}
_BAD_PROJECT_CHARS = set("/\\#?%:")


@dataclass
class WandbSettings:
    """Where and how a run logs to wandb (mode "online", "offline" or "disabled")."""

    project: str
    entity: str | None = None
    mode: str = "online"
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    upload_models: bool = False

    def __post_init__(self) -> None:
        problems = settings_problems(vars(self))
        if problems:
            raise ValueError("invalid wandb settings: " + "; ".join(problems))


def settings_problems(values: dict[str, Any], source: str = "") -> list[str]:
    """Plain-words problems of wandb setting values (any subset of CONFIG_KEYS); `source` prefixes each."""
    where = f"{source}: " if source else ""
    problems = []
    for key in values:
        if key not in CONFIG_KEYS:
            close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"{where}unknown key {key!r}; {hint}valid keys: {list(CONFIG_KEYS)} (the API key "
                            "belongs in WANDB_API_KEY or `wandb login`, not here)")
    project = values.get("project")
    if "project" in values and (not isinstance(project, str) or not project.strip()):
        problems.append(f"{where}project={project!r}: must be a non-empty string")
    elif isinstance(project, str) and _BAD_PROJECT_CHARS & set(project):
        problems.append(f"{where}project={project!r}: wandb project names cannot contain any of / \\ # ? % :")
    for key in ("entity", "group"):
        if values.get(key) is not None and (not isinstance(values[key], str) or not values[key].strip()):
            problems.append(f"{where}{key}={values[key]!r}: must be a non-empty string or null")
    if "mode" in values and values["mode"] not in WANDB_MODES:
        problems.append(f"{where}mode={values['mode']!r}: must be one of {list(WANDB_MODES)}")
    tags = values.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in tags):
        problems.append(f"{where}tags={tags!r}: must be a list of strings of 1-64 characters, e.g. [\"asimov\"]")
    if "upload_models" in values and not isinstance(values["upload_models"], bool):
        problems.append(f"{where}upload_models={values['upload_models']!r}: must be true or false")
    return problems


def read_config_file(path: Path) -> dict[str, Any]:
    """The validated settings of a wandb config file ({} if it does not exist; null values are left out);
    ValueError naming the file and each problem otherwise."""
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); see user/wandb_config_example.json") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: must hold a JSON object like user/wandb_config_example.json")
    values = {k: v for k, v in values.items() if v is not None or k not in CONFIG_KEYS}  # null: not set
    problems = settings_problems(values, str(path))
    if problems:
        raise ValueError("; ".join(problems) + ". Fix the file or delete it (wandb is then off unless a "
                         "--wandb_* flag is given)")
    return values


def resolve_wandb_settings(args: Any, config_file: Path | None = None,
                           default_project: str | None = None) -> WandbSettings | None:
    """The wandb settings of this run, or None when wandb is off (no `--wandb_*` flag and no config file).

    Any --wandb_* flag (project, entity, group, tags, mode, --wandb_upload_models) or an existing
    `config_file` (default: DEFAULT_CONFIG_FILE, user/wandb_config.json) turns wandb on; each flag
    beats the file. `--wandb_mode disabled` gives settings with mode "disabled" (a no-op run that
    never imports wandb). Defaults: mode from
    WANDB_MODE or "online"; project from WANDB_PROJECT, else `default_project` (train.py passes the
    experiment name), else --experiment_name, else the task name. Raises ValueError naming a bad
    value (and where it came from), or a missing wandb package.
    """
    config_file = Path(config_file) if config_file is not None else DEFAULT_CONFIG_FILE
    flags = {key: getattr(args, f"wandb_{key}", None) for key in CONFIG_KEYS}
    asked = any(flags[k] is not None for k in CONFIG_KEYS if k != "upload_models") or flags["upload_models"] is True
    from_file = read_config_file(config_file)
    if not asked and not config_file.is_file():
        return None
    problems = settings_problems({k: v for k, v in flags.items() if v is not None}, "--wandb_* flags")
    if problems:
        raise ValueError("; ".join(problems))
    values = {**from_file, **{k: v for k, v in flags.items() if v is not None}}
    if "mode" not in values:
        env_mode = os.environ.get("WANDB_MODE")
        if env_mode is not None and env_mode not in _ENV_MODES:
            raise ValueError(f"WANDB_MODE={env_mode!r}: must be one of {list(_ENV_MODES)}; or pass --wandb_mode")
        values["mode"] = _ENV_MODES.get(env_mode or "online")
    if not values.get("project"):
        values["project"] = (os.environ.get("WANDB_PROJECT") or default_project
                             or getattr(args, "experiment_name", None) or getattr(args, "task", None) or "legged_gym")
    if values["mode"] != "disabled" and importlib.util.find_spec("wandb") is None:
        raise ValueError("wandb logging was asked for (a --wandb_* flag or user/wandb_config.json) but the wandb "
                         "package is not installed: `pip install wandb`, or pass --wandb_mode disabled")
    return WandbSettings(**values)


def offline_reason(timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why an online wandb run cannot start here (no API key, wandb host unreachable), or None.

    Uses wandb's base URL and key sources (WANDB_BASE_URL / WANDB_API_KEY, settings files, .netrc);
    the server must answer an HTTP request within `timeout` seconds, DNS lookup included.
    """
    try:
        from wandb.sdk import wandb_setup

        settings = wandb_setup.singleton().settings  # what wandb.init will use (env and settings files)
    except (ImportError, AttributeError):  # another wandb version's internals
        settings = SimpleNamespace(base_url=os.environ.get("WANDB_BASE_URL"), api_key=None)
    # the environment wins, as in wandb.init (the setup singleton may predate a changed variable)
    base_url = os.environ.get("WANDB_BASE_URL") or settings.base_url or DEFAULT_BASE_URL
    if not _has_api_key(settings, base_url):
        return "no wandb API key found (set WANDB_API_KEY or run `wandb login`)"
    error = http_reachable(base_url, timeout)
    if error is not None:
        return f"cannot reach the wandb server {base_url} ({error})"
    return None


def _has_api_key(settings: Any, base_url: str) -> bool:
    """An API key (or identity token) for `base_url` in the environment, settings or .netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE") or settings.api_key:
        return True
    try:
        from wandb.sdk.lib.wbauth import wbnetrc

        return wbnetrc.read_netrc_auth(host=base_url) is not None
    except Exception:  # noqa: BLE001 - an unreadable or malformed .netrc: wandb.init reports it itself
        return True


def http_reachable(url: str, timeout: float) -> str | None:
    """None if the server at `url` answers HTTP within `timeout` s (any status; DNS, connect and the
    proxy from HTTPS_PROXY / HTTP_PROXY included), else the reason. A TCP connect alone is not enough:
    sandboxes and firewalls may accept connections that never answer."""
    import ssl
    import urllib.error
    import urllib.request

    result: list[str | None] = []
    no_answer = f"no answer from {urlparse(url).netloc} within {timeout:g} s"

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout).close()
            result.append(None)
        except urllib.error.HTTPError:
            result.append(None)  # the server answered (401, 404, ...): the network is there
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                result.append(no_answer)
            else:
                result.append(None if isinstance(e.reason, ssl.SSLError) else f"{e.reason}")
        except TimeoutError:  # the socket timed out first: the same as the join below timing out
            result.append(no_answer)
        except (OSError, ValueError) as e:  # resets, a malformed URL
            result.append(f"{type(e).__name__}: {e}")

    worker = threading.Thread(target=probe, daemon=True)  # DNS lookups ignore socket timeouts
    worker.start()
    worker.join(timeout)
    return result[0] if result else no_answer


class WandbRun:
    """One wandb run of a training (or sweep trial); a no-op in mode "disabled" (wandb never imported).

    Attributes: `id`, `url` (None offline), `dir` (the wandb run folder that `wandb sync` takes),
    `mode` (the mode it really runs in: an online run without network becomes "offline").
    """

    def __init__(self, run: Any, mode: str, upload_models: bool = False) -> None:
        self._run = run
        self.mode = mode
        self.upload_models = upload_models
        self.id: str | None = run.id if run is not None else None
        self.url: str | None = (run.url if mode == "online" else None) if run is not None else None
        self.dir: Path | None = Path(run.settings.sync_dir) if run is not None else None
        self._warned: set[str] = set()

    def _call(self, what: str, fn: Any, *fn_args: Any, **kwargs: Any) -> None:
        """Run a wandb call; a failure warns (once per kind of call) and never stops the training."""
        if self._run is None:
            return
        try:
            fn(*fn_args, **kwargs)
        except Exception as e:  # noqa: BLE001 - metrics.jsonl and the checkpoints keep everything
            kind = what.split()[0]
            if kind not in self._warned:
                self._warned.add(kind)
                print(f"WARNING: wandb {what} failed ({type(e).__name__}: {e}); training goes on "
                      "(metrics.jsonl and the checkpoints hold everything)", file=sys.stderr, flush=True)

    def log_metrics(self, metrics: dict[str, float], iteration: int) -> None:
        """Log one iteration's metrics under their metrics.jsonl names at step `iteration`;
        non-finite values are left out. Usable as `runner.add_logger(run.log_metrics)`."""
        finite = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        if self._run is not None:
            self._call("log", self._run.log, finite, step=int(iteration))

    def log_file(self, path: str | Path, name: str | None = None, kind: str = "model",
                 aliases: list[str] | None = None) -> None:
        """Log the file `path` as a version of artifact `name` (default "<kind>-<run id>") of type `kind`:
        checkpoints ("model"), exported policies, ... Usable as `runner.add_checkpoint_callback(run.log_file)`."""
        if self._run is None:
            return
        import wandb

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cannot log {path} to wandb: no such file")

        def log() -> None:
            artifact = wandb.Artifact(name or f"{kind}-{self.id}", type=kind, metadata={"file": path.name})
            artifact.add_file(str(path), name=path.name)
            self._run.log_artifact(artifact, aliases=["latest", *(aliases or [])])

        self._call(f"artifact upload of {path}", log)

    def log_video(self, path: str | Path, iteration: int, key: str = "video") -> None:
        """Log the video file `path` (mp4, gif, webm or ogg) under `key` at step `iteration`."""
        if self._run is None:
            return
        import wandb

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cannot log video {path} to wandb: no such file")
        self._call(f"video upload of {path}", lambda: self._run.log({key: wandb.Video(str(path))},
                                                                    step=int(iteration)))

    def summary(self, key: str, value: Any) -> None:
        """Set the run summary's `key` (e.g. a sweep metric's final value)."""
        if self._run is not None:
            self._call("summary", self._run.summary.__setitem__, key, value)

    def finish(self, exit_code: int = 0) -> None:
        """Close the run (non-zero `exit_code`: marked failed); safe to call more than once."""
        run, self._run = self._run, None
        if run is not None:
            try:
                run.finish(exit_code=exit_code)
            except Exception as e:  # noqa: BLE001 - the training result stands
                print(f"WARNING: wandb finish failed ({type(e).__name__}: {e})", file=sys.stderr, flush=True)


def read_run_info(run_dir: Path) -> dict[str, Any] | None:
    """The contents of `run_dir/wandb_run.json`, or None (missing or unreadable)."""
    try:
        info = json.loads((Path(run_dir) / RUN_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("id"), str) else None


def settings_from_run_info(run_dir: Path) -> WandbSettings | None:
    """The settings the wandb run of `run_dir` was started with (its wandb_run.json), so that a
    `--resume` without `--wandb_*` flags keeps logging to that run; None if there is none."""
    info = read_run_info(run_dir)
    if info is None:
        return None
    try:
        return WandbSettings(project=info["project"], entity=info.get("entity"),
                             mode=info.get("requested_mode") or info.get("mode") or "online", group=info.get("group"),
                             tags=list(info.get("tags") or []), upload_models=bool(info.get("upload_models")))
    except (KeyError, TypeError, ValueError):
        return None


def start_wandb(settings: WandbSettings, run_dir: Path, env_cfg: Any, train_cfg: Any, run_name: str | None = None,
                extra_config: dict[str, Any] | None = None) -> WandbRun:
    """Start (or, when `run_dir/wandb_run.json` names a run of the same project, continue) the wandb
    run of the training in `run_dir`; the resolved configs are its config ("env_cfg", "train_cfg",
    plus `extra_config`). wandb's folder goes under `run_dir` (or WANDB_DIR when set).

    Online without an API key or a reachable wandb host, or when the online init fails, the run
    is logged offline instead, with one line saying so. Raises RuntimeError if even that fails.
    """
    if settings.mode == "disabled":
        return WandbRun(None, "disabled")
    import wandb

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = read_run_info(run_dir)
    same_run = previous is not None and previous.get("project") == settings.project \
        and (settings.entity is None or previous.get("entity") in (None, settings.entity))
    config = {"env_cfg": class_to_dict(env_cfg), "train_cfg": class_to_dict(train_cfg), **(extra_config or {})}
    init_kwargs = dict(
        project=settings.project, entity=settings.entity, group=settings.group, tags=list(settings.tags),
        name=run_name or run_dir.name, config=config, allow_val_change=True, job_type="train",
        dir=os.environ.get("WANDB_DIR") or str(run_dir), reinit="create_new",
        id=previous["id"] if same_run else None, resume="allow" if same_run else None,
        settings=wandb.Settings(init_timeout=float(os.environ.get("WANDB_INIT_TIMEOUT", INIT_TIMEOUT_S))),
    )
    mode, reason = settings.mode, None
    if mode == "online":
        reason = offline_reason()
        if reason is None:
            try:
                run = wandb.init(mode="online", **init_kwargs)
            except Exception as e:  # noqa: BLE001 - CommError, AuthenticationError, timeouts: go offline
                reason = f"wandb.init online failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        mode = "offline" if reason else "online"
    if mode == "offline":
        try:
            run = wandb.init(mode="offline", **init_kwargs)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"wandb could not start even offline ({type(e).__name__}: {e}); fix the cause or "
                               "train without wandb (--wandb_mode disabled)") from e
    result = WandbRun(run, mode, settings.upload_models)
    if reason:
        print(f"wandb: {reason}; logging this run offline in {result.dir}; upload it later with "
              f"`wandb sync {result.dir}`", file=sys.stderr, flush=True)
    write_run_info(run_dir, result, settings, previous if same_run else None, reason)
    return result


def write_run_info(run_dir: Path, run: WandbRun, settings: WandbSettings, previous: dict[str, Any] | None,
                   fallback_reason: str | None = None) -> Path:
    """Write `run_dir/wandb_run.json` atomically: id, project, entity, mode, url, the wandb folder
    (`dir`) and every offline folder of this run in order (`offline_dirs`, what `wandb sync` takes)."""
    offline_dirs = list((previous or {}).get("offline_dirs", []))
    if run.mode == "offline" and str(run.dir) not in offline_dirs:
        offline_dirs.append(str(run.dir))
    info = {
        "id": run.id, "project": settings.project, "entity": getattr(run._run, "entity", None) or settings.entity,
        "mode": run.mode, "url": run.url, "dir": str(run.dir), "offline_dirs": offline_dirs,
        "group": settings.group, "tags": list(settings.tags), "upload_models": settings.upload_models,
        "requested_mode": settings.mode, "fallback_reason": fallback_reason,
    }
    return atomic_write_text(Path(run_dir) / RUN_INFO_FILE, json.dumps(info, indent=2) + "\n")
