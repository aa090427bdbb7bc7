"""wandb logging: settings (flags, user/wandb_config.json), offline runs read back from wandb's own run
log, the no-network fallback, --resume of a wandb run, checkpoint artifacts, and no `import wandb`
when it is off. No test touches the network: every run is offline, or online against an address
that cannot answer."""

from __future__ import annotations

import http.server
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from gym.utils.cli import get_args
from gym.utils.wandb_logging import (
    RUN_INFO_FILE,
    WandbRun,
    WandbSettings,
    http_reachable,
    read_config_file,
    resolve_wandb_settings,
    start_wandb,
)
from gym.utils.wandb_records import read_wandb_records

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--task=asimov", "--num_envs=8", "--physics=mujoco", "--headless", "--sim_device=cpu", "--set",
         "runner.num_steps_per_env=4", "runner.save_interval=1", "policy.actor_hidden_dims=[32]",
         "policy.critic_hidden_dims=[32]"]
FAKE_KEY = "0123456789abcdef" * 2 + "01234567"  # the 40 characters of a wandb API key
NOTICE = "logging this run offline in"


def wandb_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A subprocess environment that keeps wandb inside `tmp`: no key, settings or cache from home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    for name in ("DIR", "CACHE_DIR", "CONFIG_DIR", "DATA_DIR", "ARTIFACT_DIR"):
        env[f"WANDB_{name}"] = str(tmp / f"wandb_{name.lower()}")
    env.update(NETRC=str(tmp / "no_netrc"), LEGGED_GYM_LOGS_DIR=str(tmp / "logs"), OMP_NUM_THREADS="1",
               WANDB_MODE="offline", PYTHONPATH=str(ROOT), **extra)
    return env


def train(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, str(ROOT / "gym" / "scripts" / "train.py"), *SMALL, *args], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def run_folder(logs: Path) -> Path:
    (run,) = (logs / "asimov_velocity").iterdir()
    return run


# ---------------------------------------------------------------- settings
def test_off_by_default_and_flags_beat_the_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    missing = tmp_path / "none.json"
    assert resolve_wandb_settings(get_args([]), missing) is None  # off, as in gpuGym
    on = resolve_wandb_settings(get_args(["--wandb_group=g"]), missing, default_project="asimov_velocity")
    assert on == WandbSettings(project="asimov_velocity", group="g")  # any flag turns it on
    assert resolve_wandb_settings(get_args(["--wandb_mode=disabled"]), missing).mode == "disabled"

    config = tmp_path / "wandb_config.json"
    config.write_text(json.dumps({"project": "from_file", "entity": "team", "mode": "offline", "tags": ["a"],
                                  "upload_models": True, "group": None}))
    assert resolve_wandb_settings(get_args([]), config) == WandbSettings(
        project="from_file", entity="team", mode="offline", tags=["a"], upload_models=True)
    flags = ["--wandb_project=flag", "--wandb_mode=disabled", "--wandb_tags", "x", "y", "--no-wandb_upload_models"]
    assert resolve_wandb_settings(get_args(flags), config) == WandbSettings(
        project="flag", entity="team", mode="disabled", tags=["x", "y"], upload_models=False)

    monkeypatch.setenv("WANDB_MODE", "dryrun")  # wandb's own variable is the default mode
    assert resolve_wandb_settings(get_args(["--wandb_project=p"]), missing).mode == "offline"
    assert read_config_file(ROOT / "user" / "wandb_config_example.json")["project"] == "asimov_velocity"


@pytest.mark.parametrize("content, message", [
    ({"mode": "cloud"}, "mode='cloud': must be one of ['online', 'offline', 'disabled']"),
    ({"tags": "asimov"}, "tags='asimov': must be a list of strings"),
    ({"projcet": "p"}, "unknown key 'projcet'; did you mean 'project'?"),
    ({"project": "a/b"}, "wandb project names cannot contain"),
    ({"upload_models": "yes"}, "upload_models='yes': must be true or false"),
    ("{not json", "not valid JSON"),
])
def test_config_file_mistakes_are_named(tmp_path, content, message):
    config = tmp_path / "wandb_config.json"
    config.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match="wandb_config.json") as info:
        resolve_wandb_settings(get_args([]), config)
    assert message in str(info.value)


def test_bad_flag_values_and_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="--wandb_\\* flags: project='a:b'"):
        resolve_wandb_settings(get_args(["--wandb_project=a:b"]), tmp_path / "none.json")
    with pytest.raises(ValueError, match="tags="):
        WandbSettings(project="p", tags=["x" * 65])
    with pytest.raises(SystemExit):
        get_args(["--wandb_mode=cloud"])


# ---------------------------------------------------------------- network check
def test_http_reachable_needs_an_answer():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)  # accepts connections, never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
    try:
        assert http_reachable(f"http://127.0.0.1:{server.server_address[1]}", 3.0) is None  # 501 is an answer
        start = time.monotonic()
        assert http_reachable(f"http://127.0.0.1:{mute.getsockname()[1]}", 0.5) is not None
        assert http_reachable(f"http://127.0.0.1:{closed.getsockname()[1]}", 0.5) is not None
        assert http_reachable("https://wandb.invalid", 0.5) is not None  # no such host
        assert time.monotonic() - start < 5
    finally:
        server.shutdown()
        mute.close()
        closed.close()


# ---------------------------------------------------------------- the run API (in-process, offline)
def test_run_api_logs_metrics_files_videos_and_resumes(tmp_path, monkeypatch):
    for name in ("DIR", "CACHE_DIR", "DATA_DIR", "ARTIFACT_DIR"):
        monkeypatch.delenv(f"WANDB_{name}", raising=False)
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    env_cfg = SimpleNamespace(env=SimpleNamespace(num_envs=8))
    train_cfg = SimpleNamespace(runner=SimpleNamespace(max_iterations=2))
    settings = WandbSettings(project="p", mode="offline", group="sweep", tags=["t"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = start_wandb(settings, run_dir, env_cfg, train_cfg, run_name="trial_0", extra_config={"lr": 3e-4})
    assert run.mode == "offline" and run.url is None and run.dir.parent == run_dir / "wandb"  # WANDB_DIR unset
    run.log_metrics({"Train/mean_reward": 1.5, "Loss/value_loss": math.nan, "Perf/fps": math.inf}, 1)
    run.log_metrics({"Train/mean_reward": 2.5}, 2)
    (run_dir / "policy.pt").write_bytes(b"weights")
    run.log_file(run_dir / "policy.pt", name="asimov-policy", kind="policy")
    gif = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
    (run_dir / "clip.gif").write_bytes(gif)
    run.log_video(run_dir / "clip.gif", 2, key="video/play")
    run.summary("best_reward", 2.5)
    run.finish()
    run.finish()  # twice is fine

    info = json.loads((run_dir / RUN_INFO_FILE).read_text())
    assert info["id"] == run.id and info["mode"] == "offline" and info["offline_dirs"] == [str(run.dir)]
    records = read_wandb_records(run.dir, wait_s=10)
    assert (records.run_id, records.group, records.tags, records.display_name) == (run.id, "sweep", ["t"], "trial_0")
    assert records.config["env_cfg"] == {"env": {"num_envs": 8}} and records.config["lr"] == 3e-4
    rows = {row["_step"]: row for row in records.history}
    assert rows[1]["Train/mean_reward"] == 1.5 and "Loss/value_loss" not in rows[1] and "Perf/fps" not in rows[1]
    assert rows[2]["Train/mean_reward"] == 2.5 and rows[2]["video/play/_type"] == "video-file"
    assert records.summary["best_reward"] == 2.5
    artifacts = [(a["name"], a["type"], a["files"]) for a in records.artifacts]
    assert artifacts == [("asimov-policy", "policy", ["policy.pt"])]
    other = start_wandb(settings, tmp_path / "other", env_cfg, train_cfg)  # a new folder: a new run
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        other.log_file(tmp_path / "missing.pt")
    other.finish()
    assert other.id != run.id

    again = start_wandb(settings, run_dir, env_cfg, train_cfg)  # the run folder names a wandb run: continue it
    again.log_metrics({"Train/mean_reward": 3.0}, 3)
    again.finish()
    assert again.id == run.id and again.dir != run.dir
    assert json.loads((run_dir / RUN_INFO_FILE).read_text())["offline_dirs"] == [str(run.dir), str(again.dir)]
    assert [row["_step"] for row in read_wandb_records(again.dir, wait_s=10).history] == [3]


def test_a_failing_wandb_call_warns_once_and_training_goes_on(capsys):
    class Broken:
        id, url, settings = "x", None, SimpleNamespace(sync_dir="/nowhere")

        def log(self, *args, **kwargs):
            raise ConnectionError("wandb-core went away")

    run = WandbRun(Broken(), "offline")
    run.log_metrics({"a": 1.0}, 1)
    run.log_metrics({"a": 2.0}, 2)
    err = capsys.readouterr().err
    assert err.count("WARNING: wandb log failed (ConnectionError: wandb-core went away)") == 1


# ---------------------------------------------------------------- train.py end to end (subprocesses)
@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wandb_train")
    env = wandb_env(tmp)
    train(["--max_iterations=2", "--wandb_project=asimov_test", "--wandb_group=g", "--wandb_tags", "a", "b",
           "--wandb_upload_models"], env)
    return tmp, env


def test_offline_training_records_config_metrics_and_checkpoints(offline_run):
    tmp, _ = offline_run
    run = run_folder(tmp / "logs")
    info = json.loads((run / RUN_INFO_FILE).read_text())
    assert info["project"] == "asimov_test" and info["mode"] == "offline" and info["url"] is None
    wandb_dir = Path(info["offline_dirs"][0])
    assert wandb_dir.is_relative_to(tmp / "wandb_dir")  # WANDB_DIR moves wandb's folder
    records = read_wandb_records(wandb_dir)
    assert records.run_id == info["id"] and records.group == "g" and records.tags == ["a", "b"]
    assert records.exit_code == 0
    assert records.config["train_cfg"]["policy"]["actor_hidden_dims"] == [32]
    assert records.config["train_cfg"]["runner"]["num_steps_per_env"] == 4
    assert records.config["env_cfg"]["env"]["num_envs"] == 8 and records.config["task"] == "asimov"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][:2]
    history = [row for row in records.history if row["_step"] in (1, 2)]
    assert [row["_step"] for row in history] == [m["iteration"] for m in metrics] == [1, 2]
    for row, record in zip(history, metrics):
        logged = {k: v for k, v in record.items() if k != "iteration" and v is not None}
        assert {"Perf/fps", "Loss/approx_kl", "Loss/explained_variance", "Loss/learning_rate"} <= set(logged)
        assert {k: row[k] for k in logged} == pytest.approx(logged)
    artifacts = [(a["type"], a["files"]) for a in records.artifacts]
    assert artifacts == [("model", ["model_1.pt"]), ("model", ["model_2.pt"])]


def test_resume_continues_the_same_wandb_run(offline_run):
    tmp, env = offline_run
    run = run_folder(tmp / "logs")
    first = json.loads((run / RUN_INFO_FILE).read_text())
    out = train(["--max_iterations=1", "--resume", f"--load_run={run.name}"], env)  # no --wandb_* flag needed
    info = json.loads((run / RUN_INFO_FILE).read_text())
    assert info["id"] == first["id"] and len(info["offline_dirs"]) == 2
    assert f"offline run {first['id']}" in out.stdout  # the setup summary names it
    records = read_wandb_records(info["offline_dirs"][1])
    assert records.run_id == first["id"] and [row["_step"] for row in records.history] == [3]


def test_online_without_network_continues_offline_quickly(tmp_path):
    env = wandb_env(tmp_path, WANDB_API_KEY=FAKE_KEY, WANDB_BASE_URL="https://wandb.invalid")
    start = time.monotonic()
    out = train(["--max_iterations=1", "--wandb_project=p", "--wandb_mode=online"], env)
    elapsed = time.monotonic() - start
    assert out.stderr.count(NOTICE) == 1 and "cannot reach the wandb server https://wandb.invalid" in out.stderr
    assert "upload it later with `wandb sync" in out.stderr
    info = json.loads((run_folder(tmp_path / "logs") / RUN_INFO_FILE).read_text())
    assert info["mode"] == "offline" and "wandb.invalid" in info["fallback_reason"]
    assert [row["_step"] for row in read_wandb_records(info["dir"]).history] == [1]
    assert elapsed < 60, f"training with an unreachable wandb server took {elapsed:.0f} s"


@pytest.mark.parametrize("key, reason", [
    (FAKE_KEY, "no answer from 127.0.0.1:{port} within 3 s"),
    (None, "no wandb API key found (set WANDB_API_KEY or run `wandb login`)"),
])
def test_online_fallback_is_bounded_when_the_server_never_answers(tmp_path, key, reason):
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)  # TCP connects succeed, nothing ever answers (a firewall or sandbox)
    script = ("import sys, time; from pathlib import Path; from types import SimpleNamespace as N; "
              "from gym.utils.wandb_logging import WandbSettings, start_wandb; t = time.monotonic(); "
              "run = start_wandb(WandbSettings(project='p', mode='online'), Path(sys.argv[1]), N(a=1), N(b=2)); "
              "print('FALLBACK', run.mode, time.monotonic() - t, flush=True); run.finish()")
    port = mute.getsockname()[1]
    env = wandb_env(tmp_path, WANDB_BASE_URL=f"http://127.0.0.1:{port}", **({"WANDB_API_KEY": key} if key else {}))
    try:
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True,
                             text=True, timeout=120)
    finally:
        mute.close()
    assert out.returncode == 0, out.stderr[-3000:]
    _, mode, seconds = next(line for line in out.stdout.splitlines() if line.startswith("FALLBACK")).split()
    assert mode == "offline" and float(seconds) < 15 and out.stderr.count(NOTICE) == 1
    assert reason.format(port=port) in out.stderr


def test_plain_training_never_imports_wandb(tmp_path):
    script = ("import sys; from pathlib import Path; from types import SimpleNamespace as N; "
              "import gym.utils.wandb_logging as w; w.DEFAULT_CONFIG_FILE = Path(sys.argv[1]) / 'none.json'; "
              "from gym.scripts.train import main; main(sys.argv[2:]); assert 'wandb' not in sys.modules; "
              "run = w.start_wandb(w.WandbSettings(project='p', mode='disabled'), Path(sys.argv[1]), N(), N()); "
              "run.log_metrics({'a': 1.0}, 1); run.finish(); "
              "assert 'wandb' not in sys.modules and run.id is None; print('NO WANDB')")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path), *SMALL, "--max_iterations=1"],
                         env=wandb_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "NO WANDB" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert not (run_folder(tmp_path / "logs") / RUN_INFO_FILE).exists() and not (tmp_path / RUN_INFO_FILE).exists()
