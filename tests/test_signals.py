"""Things that stop a run on purpose: SIGINT / SIGTERM (checkpoint + resume hint), non-finite policy
output / loss / parameters, too many diverged envs. Each leaves the last good state on disk and
never writes anything non-finite. Tiny fake envs from tests/test_runner.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gym.physics import PhysicsError
from gym.rl import NonFiniteError, NonFiniteResetsError, OnPolicyRunner, TrainingInterrupted
from gym.rl.errors import PhysicsBufferError
from tests.test_runner import DeviceEnv, make_cfg, read_metrics

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("single_thread")


class SignalAtStep(DeviceEnv):
    """Sends `signals` to this process at policy step `at_step` (counted over the whole run)."""

    def __init__(self, at_step: int, signals: tuple[int, ...], **kwargs) -> None:
        super().__init__(num_envs=8, **kwargs)
        self.at_step, self.signals = at_step, signals

    def step(self, actions):
        out = super().step(actions)
        if self.steps == self.at_step:
            for sig in self.signals:
                os.kill(os.getpid(), sig)
        return out


def test_sigterm_mid_rollout_saves_last_completed_iteration(tmp_path, capsys):
    previous = signal.getsignal(signal.SIGTERM)
    runner = OnPolicyRunner(SignalAtStep(at_step=12, signals=(signal.SIGTERM,)), make_cfg(save_interval=50), tmp_path)
    runner.task_name = "point"
    with pytest.raises(TrainingInterrupted) as info:
        runner.learn(5)  # 8 steps per iteration: step 12 is in iteration 2
    assert info.value.code == 128 + signal.SIGTERM and info.value.iteration == 1
    assert info.value.checkpoint == tmp_path / "model_1.pt"
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    err = capsys.readouterr().err
    assert (f"interrupted at iteration 1; checkpoint {tmp_path / 'model_1.pt'}. Resume with: python "
            f"gym/scripts/train.py --task=point --resume --load_run={tmp_path.name} --checkpoint=1") in err
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [1]
    resumed = OnPolicyRunner(DeviceEnv(num_envs=8), make_cfg(save_interval=50), tmp_path)
    resumed.load(tmp_path / "model_1.pt")
    assert resumed.current_learning_iteration == 1
    runner.learn(1)  # the same runner can go on: the cut rollout is discarded
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [1, 2]


def test_sigint_during_update_saves_that_iteration(tmp_path):
    runner = OnPolicyRunner(DeviceEnv(num_envs=8), make_cfg(save_interval=50), tmp_path)
    runner.add_logger(lambda m, it: os.kill(os.getpid(), signal.SIGINT) if it == 2 else None)
    with pytest.raises(TrainingInterrupted) as info:
        runner.learn(5)
    assert info.value.code == 130 and info.value.iteration == 2
    assert torch.load(tmp_path / "model_2.pt", weights_only=True)["iter"] == 2


def test_second_signal_stops_at_once(tmp_path):
    previous = signal.getsignal(signal.SIGINT)
    env = SignalAtStep(at_step=3, signals=(signal.SIGINT, signal.SIGINT))
    runner = OnPolicyRunner(env, make_cfg(save_interval=50), tmp_path)
    with pytest.raises(KeyboardInterrupt, match="second stop signal"):
        runner.learn(2)
    assert not list(tmp_path.glob("model_*.pt"))
    assert signal.getsignal(signal.SIGINT) is previous


def test_sigterm_ends_the_process_with_code_143(tmp_path):
    script = (
        "import os, signal, torch\n"
        "from gym.rl import OnPolicyRunner\n"
        "from tests.test_runner import DeviceEnv, make_cfg\n"
        f"runner = OnPolicyRunner(DeviceEnv(num_envs=8), make_cfg(), {str(tmp_path)!r})\n"
        "runner.add_logger(lambda m, it: os.kill(os.getpid(), signal.SIGTERM))\n"
        "runner.learn(3)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 143, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "--resume --load_run=" in out.stderr
    assert torch.load(tmp_path / "model_1.pt", weights_only=True)["iter"] == 1


def test_too_many_diverged_envs_stop_with_the_last_good_state(tmp_path):
    env = DeviceEnv(num_envs=16, faults_per_step=1)  # 8 resets per iteration of 8 steps
    runner = OnPolicyRunner(env, make_cfg(save_interval=50, max_nonfinite_fraction=0.5), tmp_path)
    runner.learn(1)  # 8 <= 0.5 * 16: goes on
    assert read_metrics(tmp_path)[-1]["Episode/nonfinite_resets"] == 8
    runner.max_nonfinite_fraction = 0.25
    with pytest.raises(NonFiniteResetsError) as info:
        runner.learn(2)
    assert isinstance(info.value, PhysicsError)
    message = str(info.value)
    for part in ("8 envs went non-finite", "iteration 2", "max_nonfinite_fraction = 0.25 of 16 envs",
                 "sim.dt", "gains", f"saved to {tmp_path / 'model_1.pt'}"):
        assert part in message
    assert torch.load(tmp_path / "model_1.pt", weights_only=True)["iter"] == 1
    assert not (tmp_path / "model_2.pt").exists()


def test_nonfinite_policy_output_stops_and_saves_last_good(tmp_path):
    env = DeviceEnv(num_envs=8, nan_obs_from_step=12)  # NaN obs poison the normalizer in iteration 2
    runner = OnPolicyRunner(env, make_cfg(save_interval=50), tmp_path)
    with pytest.raises(NonFiniteError, match=r"NaN / Inf actions or values in \d of 8 steps of iteration 2") as info:
        runner.learn(3)
    assert info.value.checkpoint == tmp_path / "model_1.pt"
    assert not bool(env.nonfinite_actions_seen)  # NaN actions never reached the env
    ckpt = torch.load(tmp_path / "model_1.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["obs_norm_state_dict"].values())
    assert sorted(p.name for p in tmp_path.glob("model_*.pt")) == ["model_1.pt"]


def test_nonfinite_loss_stops_and_saves_state_before_the_update(tmp_path, monkeypatch):
    runner = OnPolicyRunner(DeviceEnv(num_envs=8), make_cfg(save_interval=50), tmp_path)
    runner.learn(1)
    after_first = {k: v.clone() for k, v in runner.alg.actor_critic.state_dict().items()}
    compute_returns = runner.alg.compute_returns

    def poisoned(last_critic_obs):
        runner.alg.storage.rewards[0, 0] = float("nan")
        compute_returns(last_critic_obs)

    monkeypatch.setattr(runner.alg, "compute_returns", poisoned)
    with pytest.raises(NonFiniteError, match="non-finite PPO update.*saved to .*model_1.pt"):
        runner.learn(1)
    saved = torch.load(tmp_path / "model_1.pt", weights_only=True)["model_state_dict"]
    for key, value in after_first.items():
        assert torch.equal(saved[key], value), key


def test_save_refuses_nonfinite_state(tmp_path):
    runner = OnPolicyRunner(DeviceEnv(num_envs=8), make_cfg(), tmp_path)
    with torch.no_grad():
        runner.alg.actor_critic.actor[0].weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"refusing to save .*model_0.pt.*model_state_dict\.actor\.0\.weight"):
        runner.save(tmp_path / "model_0.pt")
    assert not list(tmp_path.iterdir())


def test_physics_buffer_overflow_stops_with_the_sizes_to_set(tmp_path):
    class Overflowing(DeviceEnv):
        checks = 0

        def check_buffers(self):  # as LeggedRobot.check_buffers: once per iteration, after collection
            self.checks += 1
            if self.checks == 2:
                raise PhysicsError("MuJoCo Warp buffer overflow: ... set --set sim.njmax=256")

    env = Overflowing(num_envs=8)
    runner = OnPolicyRunner(env, make_cfg(save_interval=50), tmp_path)
    with pytest.raises(PhysicsBufferError, match=r"sim\.njmax=256.*saved to") as info:
        runner.learn(3)
    assert env.checks == 2 and info.value.checkpoint == tmp_path / "model_1.pt"


def test_sigterm_to_train_py_then_resume_continues_lr_normalizer_and_numbering(tmp_path, monkeypatch):
    """End to end: SIGTERM a real train.py, then `--resume` continues at the next iteration with the
    checkpoint's learning rate and normalizer (the envs restart from fresh resets)."""
    import gym
    from gym.rl.on_policy_runner import OnPolicyRunner as Runner
    from gym.scripts import train as train_script
    from gym.utils.cli import get_args

    logs = tmp_path / "logs"
    small = ["--task=asimov", "--num_envs=8", "--physics=mujoco", "--headless", "--sim_device=cpu", "--set",
             "runner.num_steps_per_env=4", "policy.actor_hidden_dims=[32]", "policy.critic_hidden_dims=[32]"]
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(logs), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "gym" / "scripts" / "train.py"), *small,
                             "--max_iterations=100000", "--run_name=sig"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    metrics = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(logs.glob("asimov_velocity/*_sig/metrics.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 2:
            metrics = found[0]
            break
        time.sleep(0.2)
    assert metrics is not None, "train.py wrote no metrics in time"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr[-2000:]
    run = metrics.parent
    ckpt_path = max(run.glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert f"--resume --load_run={run.name} --checkpoint={ckpt['iter']}" in stderr

    seen = {}

    def record_then_learn_one(self, num_learning_iterations, init_at_random_ep_len=False):
        seen.update(iteration=self.current_learning_iteration, lr=self.alg.learning_rate,
                    mean=self.obs_normalizer.state_dict()["_mean"].clone(), count=int(self.obs_normalizer.count))
        return original(self, 1, init_at_random_ep_len)

    original = Runner.learn
    monkeypatch.setattr(Runner, "learn", record_then_learn_one)
    monkeypatch.setattr(gym, "LOGS_DIR", logs)
    train_script.train(get_args([*small, "--resume", f"--load_run={run.name}", f"--checkpoint={ckpt['iter']}"]))
    assert seen["iteration"] == ckpt["iter"] and seen["lr"] == ckpt["learning_rate"]
    assert torch.equal(seen["mean"], ckpt["obs_norm_state_dict"]["_mean"])
    assert seen["count"] == int(ckpt["obs_norm_state_dict"]["count"])
    iterations = [json.loads(line)["iteration"] for line in metrics.read_text().splitlines()]
    assert iterations == list(range(1, ckpt["iter"] + 2))  # each once, then the next one
    assert (run / f"model_{ckpt['iter'] + 1}.pt").is_file()


@pytest.mark.parametrize("backend", ["mujoco", "warp"])
def test_nan_in_one_real_env_is_reset_counted_and_training_goes_on(tmp_path, backend):
    from gym.envs import Asimov, AsimovCfg

    cfg = AsimovCfg()
    cfg.env.num_envs = 8
    env = Asimov(cfg, "cpu", physics=backend)
    train_cfg = make_cfg(save_interval=50)
    train_cfg.runner.num_steps_per_env = 4
    calls = {"n": 0}
    step = env.step

    def step_with_a_fault(actions):
        calls["n"] += 1
        if calls["n"] == 6:  # iteration 2: NaN joint velocities in env 3
            qvel = env.physics.qvel[3:4].clone()
            qvel[:, 6:] = float("nan")
            env.physics.set_state(torch.tensor([3]), env.physics.qpos[3:4].clone(), qvel)
        return step(actions)

    env.step = step_with_a_fault
    runner = OnPolicyRunner(env, train_cfg, tmp_path)
    runner.learn(3)
    resets = [m["Episode/nonfinite_resets"] for m in read_metrics(tmp_path)]
    assert resets == [0, 1, 0]
    ckpt = torch.load(tmp_path / "model_3.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["model_state_dict"].values())
