"""Multi-rank training on CPU (gloo, 2 processes, a few envs each): the PPO update of 2 ranks equals one
process's update of the global batch; ranks stay identical; train.py --num_processes writes one run
folder with summed sample counts, resumes, and stops all ranks when one fails."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp

from gym.rl import PPO, ActorCritic, EmpiricalNormalization, Transition
from gym.rl.distributed import Distributed, merge_moments

ROOT = Path(__file__).resolve().parents[1]
T, N, OBS, ACT = 4, 3, 5, 2  # steps, envs per rank, observation and action sizes of the synthetic rollouts
SMALL = ["--task=asimov", "--num_envs=4", "--physics=mujoco", "--headless", "--num_processes", "2",
         "--set", "runner.num_steps_per_env=8", "runner.save_interval=1", "policy.actor_hidden_dims=[16]",
         "policy.critic_hidden_dims=[16]", "algorithm.num_mini_batches=2", "algorithm.num_learning_epochs=2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, tmp_path: Path, *args) -> None:
    """Run `fn(rank, port, tmp_path, *args)` as 2 gloo ranks (one torch thread each)."""
    mp.spawn(fn, args=(free_port(), tmp_path, *args), nprocs=2, join=True)


def join_group(rank: int, port: int) -> Distributed:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    return Distributed.from_env("cpu", timeout_s=60)


# ---------------------------------------------------------------------- one update, exactly
def rollout(seed: int, num_envs: int = N) -> dict[str, torch.Tensor]:
    """A deterministic rollout (T, num_envs, ...) of observations, actions, rewards and dones."""
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(T + 1, num_envs, OBS, generator=g),
            "actions": torch.randn(T, num_envs, ACT, generator=g),
            "rewards": torch.randn(T, num_envs, generator=g),
            "dones": (torch.rand(T, num_envs, generator=g) < 0.2).float()}


def make_ppo(num_envs: int, dist: Distributed | None) -> PPO:
    torch.manual_seed(0)  # the same initial parameters in every process
    ac = ActorCritic(OBS, OBS, ACT, actor_hidden_dims=[8], critic_hidden_dims=[8])
    ppo = PPO(ac, num_learning_epochs=2, num_mini_batches=1, learning_rate=1e-3, schedule="adaptive",
              desired_kl=0.001, dist=dist)
    ppo.init_storage(num_envs, T, (OBS,), (OBS,), (ACT,))
    return ppo


def update_on(ppo: PPO, data: dict[str, torch.Tensor]) -> dict[str, float]:
    """Store `data` with the policy's own values / log-probs, GAE, then one PPO update."""
    ac = ppo.actor_critic
    with torch.no_grad():
        for t in range(T):
            obs, actions = data["obs"][t], data["actions"][t]
            ac.update_distribution(obs)
            ppo.storage.add_transition(Transition(
                observations=obs, critic_observations=obs, actions=actions, rewards=data["rewards"][t],
                dones=data["dones"][t], values=ac.evaluate(obs), actions_log_prob=ac.get_actions_log_prob(actions),
                action_mean=ac.action_mean, action_sigma=ac.action_std))
        ppo.compute_returns(data["obs"][T])
    return ppo.update()


def _update_worker(rank: int, port: int, tmp: Path) -> None:
    dist = join_group(rank, port)
    ppo = make_ppo(N, dist)
    stats = update_on(ppo, rollout(100 + rank))
    norm = EmpiricalNormalization(OBS, dist=dist)
    for step in range(3):
        norm.update(rollout(200 + 10 * step + rank)["obs"].flatten(0, 1))
    torch.save({"params": ppo.actor_critic.state_dict(), "lr": ppo.learning_rate, "kl": stats["approx_kl"],
                "norm": norm.state_dict()}, tmp / f"rank{rank}.pt")
    dist.close()


def test_merge_moments_is_the_statistics_of_all_samples():
    parts = [torch.randn(n, 3) * s + s for n, s in ((5, 1.0), (7, 3.0), (2, 0.5))]
    counts = torch.tensor([5.0, 7.0, 2.0])
    n, mean, var = merge_moments(counts, torch.stack([p.mean(0) for p in parts]),
                                 torch.stack([p.var(0, unbiased=False) for p in parts]))
    everything = torch.cat(parts)
    assert float(n) == 14.0
    torch.testing.assert_close(mean, everything.mean(0))
    torch.testing.assert_close(var, everything.var(0, unbiased=False))


def test_two_rank_update_equals_one_process_on_the_global_batch(tmp_path, single_thread):
    """Ranks update on rollouts R0, R1; one process on concat(R0, R1) along the env axis. With one
    mini-batch per epoch both see the same samples in every gradient step (2 epochs: the second
    step's KL, averaged over ranks, drives the adaptive lr). Parameters, lr and the normalizer
    (merged per batch over ranks) must match the single process and be identical on both ranks."""
    spawn(_update_worker, tmp_path)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    single = make_ppo(2 * N, None)
    a, b = rollout(100), rollout(101)
    stats = update_on(single, {k: torch.cat([a[k], b[k]], dim=1) for k in a})
    assert r0["lr"] == r1["lr"] and r0["lr"] == pytest.approx(single.learning_rate, rel=1e-9)
    assert r0["lr"] != 1e-3  # the KL-adaptive schedule acted
    assert r0["kl"] == pytest.approx(stats["approx_kl"], rel=1e-4)
    initial = make_ppo(N, None).actor_critic.state_dict()
    for key, value in single.actor_critic.state_dict().items():
        assert torch.equal(r0["params"][key], r1["params"][key]), key
        torch.testing.assert_close(r0["params"][key], value, rtol=1e-5, atol=1e-6)
        assert not torch.equal(value, initial[key]), key  # the update moved every parameter
    norm = EmpiricalNormalization(OBS)
    for step in range(3):
        norm.update(torch.cat([rollout(200 + 10 * step + r)["obs"].flatten(0, 1) for r in (0, 1)]))
    for key, value in norm.state_dict().items():
        assert torch.equal(r0["norm"][key], r1["norm"][key]), key
        torch.testing.assert_close(r0["norm"][key], value, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- ranks stay identical
def _runner_worker(rank: int, port: int, tmp: Path) -> None:
    from gym.envs import task_registry
    from gym.rl import OnPolicyRunner
    from gym.utils.seeding import set_seed

    dist = join_group(rank, port)
    env_cfg, train_cfg = task_registry.get_cfgs("asimov", sim_device="cpu")
    env_cfg.env.num_envs, env_cfg.env.episode_length_s = 4, 0.1
    train_cfg.seed = 7
    train_cfg.policy.actor_hidden_dims = train_cfg.policy.critic_hidden_dims = [16]
    train_cfg.runner.num_steps_per_env = 6
    set_seed(train_cfg.seed + rank)  # as train.py: each rank's env from its own stream
    env, _ = task_registry.make_env("asimov", SimpleNamespace(physics="mujoco", sim_device="cpu"), env_cfg=env_cfg)
    runner = OnPolicyRunner(env, train_cfg, None, device="cpu", dist=dist)
    runner.learn(3, init_at_random_ep_len=True)
    torch.save({"model": runner.alg.actor_critic.state_dict(), "optimizer": runner.alg.optimizer.state_dict(),
                "obs_norm": runner.obs_normalizer.state_dict(),
                "critic_norm": runner.critic_obs_normalizer.state_dict(),
                "obs": env.get_observations(), "lr": runner.alg.learning_rate}, tmp / f"rank{rank}.pt")
    dist.close()


def test_ranks_hold_identical_parameters_and_normalizers_after_several_updates(tmp_path, single_thread):
    spawn(_runner_worker, tmp_path)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(r0["obs"], r1["obs"])  # each rank simulated its own envs (seed + rank)
    assert r0["lr"] == r1["lr"]
    for part in ("model", "obs_norm", "critic_norm"):
        for key, value in r0[part].items():
            assert torch.equal(value, r1[part][key]), (part, key)
    assert int(r0["obs_norm"]["count"]) == 2 * 4 * (3 * 6 + 1)  # both ranks' samples (+ the first observation)
    for i, moments in r0["optimizer"]["state"].items():
        for key, value in moments.items():
            assert torch.equal(value, r1["optimizer"]["state"][i][key]), (i, key)


# ---------------------------------------------------------------------- train.py --num_processes 2
def run_train(args: list[str], logs: Path, script: Path = ROOT / "gym" / "scripts" / "train.py",
              timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(logs), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_two_ranks_write_one_run_with_summed_samples_and_resume(tmp_path):
    out = run_train([*SMALL, "--max_iterations=2", "--run_name=two"], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "4 per rank x 2 ranks = 8 (gloo)" in out.stdout
    assert out.stdout.count("Training setup") == 1 and out.stdout.count("iteration 2/2") == 1  # rank 0 only
    runs = list((tmp_path / "asimov_velocity").iterdir())
    assert len(runs) == 1, runs
    run = runs[0]
    assert sorted(p.name for p in run.glob("model_*.pt")) == ["model_1.pt", "model_2.pt"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2]
    assert [r["Perf/total_timesteps"] for r in records] == [2 * 4 * 8, 2 * 2 * 4 * 8]  # ranks x envs x steps
    saved = torch.load(run / "model_2.pt", weights_only=True)
    assert int(saved["obs_norm_state_dict"]["count"]) == 2 * 4 * (2 * 8 + 1)  # both ranks' observations

    out = run_train([*SMALL, "--max_iterations=1", "--resume"], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "iterations    2 -> 3" in out.stdout
    assert sorted(p.name for p in run.glob("model_*.pt")) == ["model_1.pt", "model_2.pt", "model_3.pt"]
    assert len(list((tmp_path / "asimov_velocity").iterdir())) == 1
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2, 3]
    assert records[-1]["Perf/total_timesteps"] == 3 * 2 * 4 * 8
    resumed = torch.load(run / "model_3.pt", weights_only=True)
    assert resumed["iter"] == 3 and resumed["learning_rate"] > 0


def test_a_failing_rank_ends_the_whole_run_quickly(tmp_path):
    """Rank 1 raises in its second PPO update; rank 0 is then waiting in a collective. The launcher
    must end the run with an error naming rank 1 well within the bound, not hang."""
    start = time.monotonic()
    out = run_train([*SMALL, "--max_iterations=50", "--set", "runner.dist_timeout_s=20"], tmp_path,
                    script=ROOT / "tests" / "distributed_failing_rank.py", timeout=120)
    elapsed = time.monotonic() - start
    assert out.returncode != 0
    assert elapsed < 60, elapsed
    assert "error: rank 1" in out.stderr and "injected failure of rank 1" in out.stderr, out.stderr[-3000:]


def test_launch_flags_are_checked_before_anything_starts(tmp_path):
    out = run_train(["--task=asimov", "--num_processes", "2", "--sim_device=cuda:0"], tmp_path, timeout=120)
    assert out.returncode != 0 and "--num_processes starts CPU ranks" in out.stderr
    out = run_train(["--task=asimov", "--num_processes", "2", "--set", "runner.dist_timeout_s=0"], tmp_path,
                    timeout=120)
    assert out.returncode != 0 and "runner.dist_timeout_s=0" in out.stderr
    assert not (tmp_path / "asimov_velocity").exists()


def test_sigterm_to_the_launcher_stops_every_rank_after_rank_0_saved(tmp_path):
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "gym" / "scripts" / "train.py"), *SMALL,
                             "--max_iterations=1000", "--set", "runner.save_interval=1000"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    metrics = None
    while time.monotonic() < deadline and proc.poll() is None:  # wait for 2 logged iterations
        found = list(tmp_path.glob("asimov_velocity/*/metrics.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 2:
            metrics = found[0]
            break
        time.sleep(0.5)
    assert metrics is not None, proc.communicate(timeout=60)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, err[-3000:]
    saved = sorted(metrics.parent.glob("model_*.pt"))
    assert len(saved) == 1, saved
    last = json.loads(metrics.read_text().splitlines()[-1])["iteration"]
    assert saved[0].name == f"model_{last}.pt"  # rank 0 saved the last completed iteration
    assert f"interrupted at iteration {last}" in err


def test_the_failing_rank_is_named_not_the_ranks_it_stopped():
    """Error files carry whole-second timestamps: a peer's DistributedError or the launcher's SIGTERM
    in the same second must not be reported as the cause."""
    from gym.utils.launch import failure_message, root_failure

    def failure(exitcode: int, message: object, timestamp: int = 100) -> SimpleNamespace:
        return SimpleNamespace(exitcode=exitcode, message=message, timestamp=timestamp, local_rank=0, pid=1)

    error = SimpleNamespace(failures={
        0: failure(1, {"message": "DistributedError: rank 0 of 3: all-reduce of the gradients failed"}),
        1: failure(-15, "Signal 15 (SIGTERM) received by PID 1"),
        2: failure(1, {"message": "RuntimeError: CUDA out of memory", "extraInfo": {}}, timestamp=101),
    })
    assert root_failure(error)[0] == 2
    text = failure_message(error)
    assert text.startswith("error: rank 2") and "RuntimeError: CUDA out of memory" in text
    assert "rank 0: exit code 1 (DistributedError" in text

    # Seen in CI: the failing rank recorded its error, then aborted (-6) in gloo's teardown, while
    # rank 0 was SIGTERMed by the launcher after recording its DistributedError.
    error = SimpleNamespace(failures={
        0: failure(-15, {"message": "DistributedError: rank 0 of 2: all-reduce of the gradients failed"}),
        1: failure(-6, {"message": "RuntimeError: injected failure of rank 1"}),
    })
    assert root_failure(error)[0] == 1
    # No recorded error anywhere: a rank killed by the OOM killer is the cause, not the one SIGTERMed.
    error = SimpleNamespace(failures={
        0: failure(-15, "Signal 15 (SIGTERM) received by PID 1", timestamp=99),
        1: failure(-9, "Signal 9 (SIGKILL) received by PID 2"),
    })
    assert root_failure(error)[0] == 1
