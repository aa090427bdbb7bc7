"""OnPolicyRunner on a tiny fake VecEnv: learning, logging, checkpoints (atomic save, validated load)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from gym.envs.base.legged_robot_config import LeggedRobotCfgPPO
from gym.rl import CHECKPOINT_KEYS, CheckpointError, OnPolicyRunner, VecEnv
from gym.rl.checkpoint import OPTIONAL_CHECKPOINT_KEYS
from gym.rl.logger import MetricsLogger


class PointMassEnv:
    """N 2-D point masses that should reach a random target: pos += 0.2 * clip(a, -1, 1).

    obs = (pos, target - pos) (+ `extra_obs` constant features); reward = -|target - pos|;
    episodes end by a time-out after `max_episode_length` steps or by leaving the |x| < 3 box.
    With `privileged`, the critic also sees the elapsed episode fraction.
    """

    dt = 0.1  # [s] per step

    def __init__(self, num_envs: int = 32, max_episode_length: int = 20, extra_obs: int = 0,
                 privileged: bool = False, seed: int = 0) -> None:
        self.num_envs = num_envs
        self.num_actions = 2
        self.num_obs = 4 + extra_obs
        self.privileged = privileged
        self.num_privileged_obs = self.num_obs + 1 if privileged else self.num_obs
        self.max_episode_length = max_episode_length
        self.device = torch.device("cpu")
        self.generator = torch.Generator().manual_seed(seed)
        self.pos = torch.zeros(num_envs, 2)
        self.target = torch.zeros(num_envs, 2)
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long)
        self.episode_sum = torch.zeros(num_envs)
        self._reset_ids(torch.arange(num_envs))

    def _reset_ids(self, ids: torch.Tensor) -> None:
        self.pos[ids] = 2 * torch.rand(len(ids), 2, generator=self.generator) - 1
        self.target[ids] = 2 * torch.rand(len(ids), 2, generator=self.generator) - 1
        self.episode_length_buf[ids] = 0
        self.episode_sum[ids] = 0.0

    def get_observations(self) -> torch.Tensor:
        extra = torch.ones(self.num_envs, self.num_obs - 4)
        return torch.cat([self.pos, self.target - self.pos, extra], dim=1)

    def get_privileged_observations(self) -> torch.Tensor | None:
        if not self.privileged:
            return None
        frac = self.episode_length_buf.float() / self.max_episode_length
        return torch.cat([self.get_observations(), frac[:, None]], dim=1)

    def reset(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        self._reset_ids(torch.arange(self.num_envs))
        return self.get_observations(), self.get_privileged_observations()

    def step(self, actions: torch.Tensor):
        self.pos += 0.2 * actions.clamp(-1.0, 1.0)
        rewards = -(self.target - self.pos).norm(dim=1)
        self.episode_sum += rewards
        self.episode_length_buf += 1
        time_outs = self.episode_length_buf >= self.max_episode_length
        dones = time_outs | (self.pos.abs() > 3.0).any(dim=1)
        extras: dict[str, Any] = {"time_outs": time_outs}
        ids = dones.nonzero(as_tuple=True)[0]
        if len(ids):
            episode_s = self.max_episode_length * self.dt
            extras["episode"] = {"distance": self.episode_sum[ids].mean() / episode_s}
            self._reset_ids(ids)
        return self.get_observations(), self.get_privileged_observations(), rewards, dones, extras


pytestmark = pytest.mark.usefixtures("single_thread")


def make_cfg(**runner: Any) -> LeggedRobotCfgPPO:
    cfg = LeggedRobotCfgPPO()
    cfg.seed = 0
    cfg.policy.actor_hidden_dims = [32, 32]
    cfg.policy.critic_hidden_dims = [32, 32]
    cfg.runner.num_steps_per_env = 8
    for key, value in runner.items():
        setattr(cfg.runner, key, value)
    return cfg


EXPECTED_KEYS = {
    "iteration", "Train/mean_reward", "Train/mean_episode_length", "Episode/distance",
    "Episode/nonfinite_resets", "Perf/fps",
    "Perf/collection_time", "Perf/learning_time", "Perf/total_timesteps", "Perf/wall_time", "Loss/value_loss",
    "Loss/surrogate_loss", "Loss/entropy", "Loss/approx_kl", "Loss/clip_fraction",
    "Loss/explained_variance", "Loss/learning_rate", "Policy/mean_action_std",
}


def read_metrics(log_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]


def test_env_satisfies_protocol():
    assert isinstance(PointMassEnv(), VecEnv)


def test_learn_writes_models_and_metrics(tmp_path):
    runner = OnPolicyRunner(PointMassEnv(), make_cfg(save_interval=1), tmp_path, device="cpu")
    seen: list[tuple[int, dict[str, float]]] = []
    runner.add_logger(lambda metrics, it: seen.append((it, metrics)))
    runner.learn(2, init_at_random_ep_len=True)
    assert sorted(p.name for p in tmp_path.glob("model_*.pt")) == ["model_1.pt", "model_2.pt"]
    records = read_metrics(tmp_path)
    assert [r["iteration"] for r in records] == [1, 2]
    for record in records:
        assert set(record) == EXPECTED_KEYS
    assert [it for it, _ in seen] == [1, 2]
    assert set(seen[0][1]) == EXPECTED_KEYS - {"iteration"}
    assert runner.current_learning_iteration == 2


def test_final_checkpoint_and_no_files_without_log_dir(tmp_path, monkeypatch):
    runner = OnPolicyRunner(PointMassEnv(), make_cfg(save_interval=50), tmp_path / "run")
    runner.learn(3)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.jsonl", "model_3.pt"]
    monkeypatch.chdir(tmp_path / "run")
    OnPolicyRunner(PointMassEnv(), make_cfg(), None).learn(2)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.jsonl", "model_3.pt"]


def test_privileged_critic_observations(tmp_path):
    env = PointMassEnv(privileged=True)
    runner = OnPolicyRunner(env, make_cfg(), tmp_path)
    runner.learn(1)
    assert runner.alg.actor_critic.num_critic_obs == env.num_obs + 1
    assert runner.critic_obs_normalizer.mean.shape == (env.num_obs + 1,)


def test_save_load_resume(tmp_path):
    first = OnPolicyRunner(PointMassEnv(), make_cfg(save_interval=50), tmp_path)
    first.learn(2)
    path = tmp_path / "model_2.pt"
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == set(CHECKPOINT_KEYS) | set(OPTIONAL_CHECKPOINT_KEYS)
    assert ckpt["iter"] == 2

    first.alg.set_learning_rate(3.3e-4)  # distinguishable from the config's value
    first.save(path, infos={"note": "resumed"})
    cfg = make_cfg(save_interval=50)
    cfg.seed = 123
    second = OnPolicyRunner(PointMassEnv(seed=1), cfg, tmp_path)
    assert second.load(path) == {"note": "resumed"}
    assert second.current_learning_iteration == 2
    assert second.alg.learning_rate == 3.3e-4
    assert all(g["lr"] == 3.3e-4 for g in second.alg.optimizer.param_groups)
    for a, b in [(first.obs_normalizer, second.obs_normalizer),
                 (first.critic_obs_normalizer, second.critic_obs_normalizer),
                 (first.alg.actor_critic, second.alg.actor_critic)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key
    assert int(second.obs_normalizer.count) > 0

    second.learn(1)
    assert (tmp_path / "model_3.pt").exists()
    assert read_metrics(tmp_path)[-1]["iteration"] == 3


def test_inference_policy_is_deterministic_and_normalized(tmp_path):
    runner = OnPolicyRunner(PointMassEnv(), make_cfg(), None)
    runner.learn(1)
    policy = runner.get_inference_policy()
    obs = PointMassEnv(seed=5).get_observations()
    count = int(runner.obs_normalizer.count)
    actions = policy(obs)
    torch.testing.assert_close(actions, policy(obs))
    assert int(runner.obs_normalizer.count) == count  # eval mode: statistics frozen
    expected = runner.alg.actor_critic.act_inference(runner.obs_normalizer(obs))
    torch.testing.assert_close(actions, expected)
    # a copy on another device (e.g. a GPU-trained policy played on the CPU) after an update
    elsewhere = runner.get_inference_policy(device="meta")
    assert all(p.device.type == "meta" for p in elsewhere.parameters())
    assert runner.alg.actor_critic.distribution is not None  # the runner's own cache is kept


@pytest.fixture
def saved(tmp_path) -> tuple[OnPolicyRunner, Path]:
    runner = OnPolicyRunner(PointMassEnv(), make_cfg(), tmp_path)
    return runner, runner.save(tmp_path / "model_0.pt")


def test_load_missing_garbage_truncated(saved, tmp_path):
    runner, good = saved
    missing = tmp_path / "model_404.pt"
    with pytest.raises(CheckpointError, match="model_404.pt.*does not exist"):
        runner.load(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt.*not a readable torch checkpoint"):
        runner.load(garbage)
    truncated = tmp_path / "truncated.pt"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        runner.load(truncated)
    incomplete = tmp_path / "incomplete.pt"
    torch.save({"model_state_dict": {}}, incomplete)
    with pytest.raises(CheckpointError, match="incomplete.pt.*missing keys.*optimizer_state_dict"):
        runner.load(incomplete)


def test_load_wrong_obs_size(saved):
    _, good = saved
    other = OnPolicyRunner(PointMassEnv(extra_obs=3), make_cfg(), None)
    with pytest.raises(CheckpointError) as info:
        other.load(good)
    message = str(info.value)
    assert str(good) in message and "num_obs" in message and "4 in the checkpoint but 7" in message
    assert other.current_learning_iteration == 0


def test_atomic_save_no_temp_files_and_crash_keeps_old(saved, tmp_path, monkeypatch):
    runner, good = saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_0.pt"]
    before = good.read_bytes()

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial zip")
        raise OSError("disk full (simulated)")

    runner.alg.set_learning_rate(5e-4)
    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="simulated"):
        runner.save(good)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_0.pt"]
    assert good.read_bytes() == before
    runner.load(good)
    assert runner.alg.learning_rate == make_cfg().algorithm.learning_rate


def evaluate(runner: OnPolicyRunner, seed: int = 123) -> float:
    """Mean per-step reward of the deterministic policy over one episode of fresh envs."""
    env = PointMassEnv(num_envs=256, seed=seed)
    policy = runner.get_inference_policy()
    obs, total = env.get_observations(), 0.0
    for _ in range(env.max_episode_length):
        obs, _, rewards, _, _ = env.step(policy(obs))
        total += float(rewards.mean())
    return total / env.max_episode_length


def test_ppo_learns_point_mass(tmp_path):
    cfg = make_cfg(save_interval=1000, num_steps_per_env=16)
    runner = OnPolicyRunner(PointMassEnv(num_envs=64), cfg, tmp_path)
    start = evaluate(runner)
    runner.learn(30, init_at_random_ep_len=True)
    end = evaluate(runner)
    records = read_metrics(tmp_path)
    # the first episodes are cut short by init_at_random_ep_len, so compare with the worst early value
    early = min(r["Train/mean_reward"] for r in records[:5] if "Train/mean_reward" in r)
    late = records[-1]["Train/mean_reward"]
    print(f"deterministic per-step reward {start:.3f} -> {end:.3f}; episode return {early:.2f} -> {late:.2f}")
    assert end > start + 0.5
    assert late > early + 8.0


def test_wall_time_grows_with_iterations(tmp_path):
    env = PointMassEnv(num_envs=8)
    runner = OnPolicyRunner(env, make_cfg(), tmp_path)
    runner.learn(3)
    walls = [m["Perf/wall_time"] for m in read_metrics(tmp_path)]
    assert len(walls) == 3 and walls[0] > 0 and walls[0] < walls[1] < walls[2]


def test_max_wall_time_stops_at_an_iteration_boundary_and_saves_there(tmp_path):
    env = PointMassEnv(num_envs=8)
    runner = OnPolicyRunner(env, make_cfg(save_interval=50, max_wall_time_min=1e-9), tmp_path)
    runner.learn(5)  # the budget is spent by the end of the first iteration
    assert runner.current_learning_iteration == 1
    assert [m["iteration"] for m in read_metrics(tmp_path)] == [1]
    assert sorted(p.name for p in tmp_path.glob("model_*.pt")) == ["model_1.pt"]
    assert torch.load(tmp_path / "model_1.pt", weights_only=False)["iter"] == 1


def test_a_wall_time_budget_not_reached_runs_every_iteration(tmp_path):
    runner = OnPolicyRunner(PointMassEnv(num_envs=8), make_cfg(save_interval=50, max_wall_time_min=60.0), tmp_path)
    runner.learn(3)
    assert runner.current_learning_iteration == 3
    assert sorted(p.name for p in tmp_path.glob("model_*.pt")) == ["model_3.pt"]


def test_progress_bar_total_follows_a_wall_time_budget():
    """With a budget the bar's total (and so its ETA) is the iterations that fit at the pace so far,
    never more than the iteration count; without one it is the iteration count."""
    logger = MetricsLogger(None, print_table=False)
    logger.start(10, 3010, wall_budget_s=60.0)
    logger.log({"Perf/wall_time": 2.0}, 11)  # 2 s per iteration: 1 done + 29 left
    assert logger._bar.total == 30
    logger.log({"Perf/wall_time": 3.0}, 12)  # 1.5 s per iteration: 2 + ceil(57 / 1.5) = 40
    assert logger._bar.total == 40
    logger.log({"Perf/wall_time": 61.0}, 13)  # past the budget: this is the last iteration
    assert logger._bar.total == logger._bar.n == 3
    logger.start(0, 20, wall_budget_s=3600.0)
    logger.log({"Perf/wall_time": 0.5}, 1)  # 7200 would fit: capped at the count
    assert logger._bar.total == 20
    logger.start(0, 50)
    logger.log({"Perf/wall_time": 2.0}, 1)
    assert logger._bar.total == 50
    logger.close()


class DeviceEnv(PointMassEnv):
    """PointMassEnv stepped with mask arithmetic only (no host read), returning the new extras
    contract: "episode" sums over the envs that reset, "episode_count", "nonfinite_resets".

    `faults_per_step` envs (the first ones) "diverge" every step: reset, done, reward 0, counted.
    `nan_obs_from_step`: from that step on, env 0's observation is NaN (a broken env).
    """

    def __init__(self, *args: Any, faults_per_step: int = 0, nan_obs_from_step: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fault_mask = torch.arange(self.num_envs) < faults_per_step
        self.nan_obs_from_step = nan_obs_from_step
        self.steps = 0
        self.nonfinite_actions_seen = torch.zeros((), dtype=torch.bool)

    def step(self, actions: torch.Tensor):
        self.nonfinite_actions_seen |= ~torch.isfinite(actions).all()
        self.steps += 1
        self.pos += 0.2 * actions.clamp(-1.0, 1.0)
        rewards = torch.where(self.fault_mask, 0.0, -(self.target - self.pos).norm(dim=1))
        self.episode_sum += rewards
        self.episode_length_buf += 1
        time_outs = (self.episode_length_buf >= self.max_episode_length) & ~self.fault_mask
        dones = time_outs | (self.pos.abs() > 3.0).any(dim=1) | self.fault_mask
        episode_s = self.max_episode_length * self.dt
        extras: dict[str, Any] = {
            "time_outs": time_outs, "episode": {"distance": (self.episode_sum * dones).sum() / episode_s},
            "episode_count": dones.sum(), "nonfinite_resets": self.fault_mask.sum(),
        }
        fresh = 2 * torch.rand(2, self.num_envs, 2, generator=self.generator) - 1
        self.pos = torch.where(dones[:, None], fresh[0], self.pos)
        self.target = torch.where(dones[:, None], fresh[1], self.target)
        self.episode_length_buf.masked_fill_(dones, 0)
        self.episode_sum.masked_fill_(dones, 0.0)
        obs = self.get_observations()
        if self.nan_obs_from_step is not None and self.steps >= self.nan_obs_from_step:
            obs[0] = float("nan")
        return obs, self.get_privileged_observations(), rewards, dones, extras


def test_collection_makes_no_host_sync(tmp_path):
    from tests.sync_guard import HostSyncError, no_host_sync

    env = DeviceEnv(num_envs=8, max_episode_length=5, privileged=True, faults_per_step=1)
    runner = OnPolicyRunner(env, make_cfg(max_nonfinite_fraction=10.0), tmp_path)
    runner.obs_normalizer.until = 20  # the freeze (count >= until) happens inside the guarded steps
    obs, critic_obs = runner._observations(env.get_observations(), env.get_privileged_observations())
    for _ in range(2):  # two rollouts of 8 steps: episodes end, the ring buffers fill, normalizer freezes
        with no_host_sync():
            obs, critic_obs, complete = runner.collect(obs, critic_obs)
        assert complete
        runner.alg.storage.clear()
    assert int(runner.obs_normalizer.count) == 24  # 8 + 8 + 8 samples, then frozen at >= 20
    with pytest.raises(HostSyncError), no_host_sync():  # the guard does catch the per-iteration read
        runner.episode_stats.pop_metrics()
    metrics = runner.episode_stats.pop_metrics()
    assert metrics["Episode/nonfinite_resets"] == 16.0
    assert metrics["Train/mean_episode_length"] > 0 and "Episode/distance" in metrics
    assert not bool(env.nonfinite_actions_seen)


def test_episode_stats_windows_and_terms():
    from collections import deque

    from gym.rl import EpisodeStats

    gen = torch.Generator().manual_seed(3)
    stats, n = EpisodeStats(150, "cpu", buffer_len=100), 150
    rewards_ref, lengths_ref = deque(maxlen=100), deque(maxlen=100)
    running, length = torch.zeros(n), torch.zeros(n)
    for step in range(12):
        rewards = torch.randn(n, generator=gen)
        p = 0.95 if step == 5 else 0.1  # step 5: more than 100 envs finish at once
        dones = torch.rand(n, generator=gen) < p
        running += rewards
        length += 1
        rewards_ref.extend(running[dones].tolist())
        lengths_ref.extend(length[dones].tolist())
        running[dones], length[dones] = 0.0, 0.0
        stats.step(rewards, dones, {"episode": {"a": torch.tensor(2.0 * step)}, "episode_count": torch.tensor(step),
                                    "nonfinite_resets": torch.tensor(1)})
    metrics = stats.pop_metrics()
    assert metrics["Train/mean_reward"] == pytest.approx(sum(rewards_ref) / len(rewards_ref), rel=1e-5)
    assert metrics["Train/mean_episode_length"] == pytest.approx(sum(lengths_ref) / len(lengths_ref))
    assert metrics["Episode/a"] == pytest.approx(2.0)  # sum(2 * step) / sum(step)
    assert metrics["Episode/nonfinite_resets"] == 12.0
    stats.step(torch.zeros(n), torch.zeros(n, dtype=torch.bool),
               {"episode": {"a": torch.tensor(0.0)}, "episode_count": torch.tensor(0)})
    again = stats.pop_metrics()
    assert "Episode/a" not in again and again["Episode/nonfinite_resets"] == 0.0  # count 0: no value
    old = EpisodeStats(4, "cpu")  # the old contract: per-step means, no count -> mean of the means
    for value in (1.0, 3.0):
        old.step(torch.zeros(4), torch.ones(4, dtype=torch.bool), {"episode": {"a": value}})
    assert old.pop_metrics()["Episode/a"] == 2.0
    restored = EpisodeStats(n, "cpu")
    restored.load_state_dict(stats.state_dict())
    assert restored.pop_metrics()["Train/mean_reward"] == pytest.approx(metrics["Train/mean_reward"])
