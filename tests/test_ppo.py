"""Unit tests of the PPO pieces in gym/rl: GAE, losses, storage, normalizer, lr schedule, actor-critic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gym.rl import (
    PPO,
    ActorCritic,
    EmpiricalNormalization,
    RolloutStorage,
    Transition,
    adapt_learning_rate,
    compute_gae,
    explained_variance,
    surrogate_loss,
    value_loss,
)

GAMMA, LAM = 0.9, 0.8


def test_gae_hand_computed_with_done_in_the_middle():
    # one env, 3 steps; the episode ends (terminal, no bootstrap) after step 1
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    last_values = torch.tensor([2.0])
    returns, advantages = compute_gae(rewards, values, dones, last_values, GAMMA, LAM)
    # delta_2 = 3 + 0.9 * 2.0 - 1.5 = 3.3                  A_2 = 3.3
    # delta_1 = 2 + 0 - 1.0 = 1.0 (done: no V(s_2))          A_1 = 1.0 (no A_2 either)
    # delta_0 = 1 + 0.9 * 1.0 - 0.5 = 1.4                  A_0 = 1.4 + 0.9 * 0.8 * 1.0 = 2.12
    torch.testing.assert_close(advantages.squeeze(1), torch.tensor([2.12, 1.0, 3.3]))
    torch.testing.assert_close(returns.squeeze(1), torch.tensor([2.62, 2.0, 4.8]))


def _value_is_obs_ppo() -> PPO:
    """PPO whose critic is V(c) = c (a single linear unit with weight 1, bias 0)."""
    ac = ActorCritic(1, 1, 1, actor_hidden_dims=[], critic_hidden_dims=[])
    with torch.no_grad():
        ac.critic[0].weight.fill_(1.0)
        ac.critic[0].bias.zero_()
    ppo = PPO(ac, gamma=GAMMA, lam=LAM)
    ppo.init_storage(1, 3, (1,), (1,), (1,))
    return ppo


def test_timeout_bootstrap_through_ppo():
    ppo = _value_is_obs_ppo()
    critic_obs = [0.5, 1.0, 1.5]  # = V(s_t)
    steps = [(1.0, False, False), (2.0, True, True), (3.0, False, False)]  # reward, done, time_out
    for v, (r, done, time_out) in zip(critic_obs, steps):
        ppo.act(torch.zeros(1, 1), torch.tensor([[v]]))
        ppo.process_env_step(torch.tensor([r]), torch.tensor([done]), {"time_outs": torch.tensor([time_out])})
    ppo.compute_returns(torch.tensor([[2.0]]))
    storage = ppo.storage
    # time-out at step 1: r_1 <- 2 + 0.9 * V(s_1) = 2.9, then the done cuts the recursion as usual
    torch.testing.assert_close(storage.rewards.squeeze(1), torch.tensor([1.0, 2.9, 3.0]))
    # A_2 = 3.3, A_1 = 2.9 - 1.0 = 1.9, A_0 = 1.4 + 0.72 * 1.9 = 2.768
    raw_advantages = torch.tensor([2.768, 1.9, 3.3])
    torch.testing.assert_close(storage.returns.squeeze(1), raw_advantages + torch.tensor(critic_obs))
    normalized = (raw_advantages - raw_advantages.mean()) / (raw_advantages.std() + 1e-8)
    torch.testing.assert_close(storage.advantages.squeeze(1), normalized)


def test_surrogate_loss_hand_made():
    clip = 0.2
    ratio = torch.tensor([1.5, 0.5, 1.1, 1.5, 0.5])
    adv = torch.tensor([1.0, 1.0, -2.0, -1.0, -1.0])
    # per sample max(-A r, -A clip(r)):
    #   A>0, r above 1+clip -> clipped:     max(-1.5, -1.2) = -1.2
    #   A>0, r below 1-clip -> unclipped:   max(-0.5, -0.8) = -0.5
    #   inside the clip range:              2.2
    #   A<0, r above 1+clip -> unclipped:   max(1.5, 1.2) = 1.5
    #   A<0, r below 1-clip -> clipped:     max(0.5, 0.8) = 0.8
    expected = torch.tensor([-1.2, -0.5, 2.2, 1.5, 0.8]).mean()
    torch.testing.assert_close(surrogate_loss(ratio, adv, clip), expected)


def test_value_loss_hand_made():
    clip = 0.2
    old = torch.tensor([1.0, 1.0, 1.0, 1.0])
    values = torch.tensor([2.0, 2.0, 0.0, 1.1])
    returns = torch.tensor([3.0, 1.0, 0.5, 1.0])
    # V moved up past the clip, return above: clipped 1.2 is worse -> (1.2-3)^2 = 3.24
    # V moved up past the clip, return below: unclipped is worse -> (2-1)^2 = 1.0
    # V moved down past the clip: clipped 0.8 vs unclipped 0 -> max(0.25, 0.09) = 0.25
    # inside the clip range: (1.1-1)^2 = 0.01
    expected = torch.tensor([3.24, 1.0, 0.25, 0.01]).mean()
    torch.testing.assert_close(value_loss(values, old, returns, clip, use_clipped=True), expected)
    plain = torch.tensor([1.0, 1.0, 0.25, 0.01]).mean()
    torch.testing.assert_close(value_loss(values, old, returns, clip, use_clipped=False), plain)


def test_explained_variance():
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(returns, returns) == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), 2.5), returns) == pytest.approx(0.0)


def _fill(storage: RolloutStorage, num_envs: int) -> None:
    for t in range(storage.num_transitions_per_env):
        ids = torch.arange(num_envs, dtype=torch.float32) + t * num_envs  # unique id per transition
        storage.add_transition(Transition(
            observations=ids[:, None], critic_observations=ids[:, None], actions=torch.zeros(num_envs, 2),
            rewards=torch.ones(num_envs), dones=torch.zeros(num_envs), values=torch.zeros(num_envs),
            actions_log_prob=torch.zeros(num_envs), action_mean=torch.zeros(num_envs, 2),
            action_sigma=torch.ones(num_envs, 2),
        ))


@pytest.mark.parametrize("num_mini_batches", [1, 4, 7])
def test_every_transition_visited_once_per_epoch(num_mini_batches):
    num_envs, steps, epochs = 5, 6, 3
    storage = RolloutStorage(num_envs, steps, (1,), (1,), (2,))
    _fill(storage, num_envs)
    storage.compute_returns(torch.zeros(num_envs), 0.99, 0.95)
    batches = list(storage.mini_batch_generator(num_mini_batches, epochs))
    assert len(batches) == num_mini_batches * epochs
    for e in range(epochs):
        epoch = batches[e * num_mini_batches:(e + 1) * num_mini_batches]
        indices = torch.cat([b.indices for b in epoch])
        assert sorted(indices.tolist()) == list(range(num_envs * steps))
        ids = torch.cat([b.observations[:, 0] for b in epoch])  # the data follows the indices
        torch.testing.assert_close(ids, indices.float())


def test_storage_overflow_raises():
    storage = RolloutStorage(2, 3, (1,), None, (2,))
    _fill(storage, 2)
    with pytest.raises(RuntimeError, match="overflow"):
        _fill(storage, 2)
    storage.clear()
    _fill(storage, 2)  # fine again after clear()


def test_normalizer_matches_numpy_and_freezes_in_eval():
    rng = np.random.default_rng(0)
    norm = EmpiricalNormalization(3)
    batches = [rng.normal(loc=[1.0, -2.0, 5.0], scale=[0.5, 3.0, 0.1], size=(n, 3)) for n in (7, 50, 1, 200)]
    for b in batches:
        norm(torch.tensor(b, dtype=torch.float32))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(norm.mean.numpy(), everything.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.std.numpy(), everything.std(0), rtol=1e-4, atol=1e-5)
    assert int(norm.count) == len(everything)

    x = torch.tensor(rng.normal(size=(4, 3)), dtype=torch.float32)
    expected = (x - torch.tensor(everything.mean(0), dtype=torch.float32)) / (
        torch.tensor(everything.std(0), dtype=torch.float32) + norm.eps
    )
    norm.eval()
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    torch.testing.assert_close(norm(x), expected, rtol=1e-4, atol=1e-4)
    norm(torch.full((10, 3), 100.0))
    for k, v in norm.state_dict().items():
        assert torch.equal(v, before[k]), k
    torch.testing.assert_close(norm.inverse(norm(x)), x, rtol=1e-5, atol=1e-5)
    assert set(before) == {"_mean", "_var", "_std", "count"}  # saved in state_dict


def test_normalizer_until_stops_updates():
    norm = EmpiricalNormalization(2, until=10)
    norm(torch.ones(10, 2))
    norm(torch.full((10, 2), 5.0))
    torch.testing.assert_close(norm.mean, torch.ones(2))


def test_adaptive_learning_rate_rule():
    assert adapt_learning_rate(1e-3, kl=0.1, desired_kl=0.01) == pytest.approx(1e-3 / 1.5)
    assert adapt_learning_rate(1e-3, kl=0.001, desired_kl=0.01) == pytest.approx(1e-3 * 1.5)
    assert adapt_learning_rate(1e-3, kl=0.01, desired_kl=0.01) == 1e-3
    assert adapt_learning_rate(1e-5, kl=1.0, desired_kl=0.01) == 1e-5  # floor
    assert adapt_learning_rate(1e-2, kl=1e-4, desired_kl=0.01) == 1e-2  # ceiling


def _rollout_and_update(ppo: PPO, scale_advantages: float) -> float:
    torch.manual_seed(0)
    num_envs, steps = 16, 4
    ppo.init_storage(num_envs, steps, (3,), (3,), (2,))
    for _ in range(steps):
        obs = torch.randn(num_envs, 3)
        actions = ppo.act(obs, obs)
        ppo.process_env_step(scale_advantages * actions.sum(-1), torch.zeros(num_envs, dtype=torch.bool),
                             {"time_outs": torch.zeros(num_envs, dtype=torch.bool)})
    ppo.compute_returns(torch.randn(num_envs, 3))
    stats = ppo.update()
    assert set(stats) == {"value_loss", "surrogate_loss", "entropy", "approx_kl", "clip_fraction",
                          "explained_variance", "learning_rate"}
    assert stats["learning_rate"] == ppo.optimizer.param_groups[0]["lr"] == ppo.learning_rate
    return stats["learning_rate"]


def test_adaptive_learning_rate_in_update():
    def make(lr: float, desired_kl: float) -> PPO:
        torch.manual_seed(0)
        ac = ActorCritic(3, 3, 2, [16], [16])
        return PPO(ac, num_learning_epochs=4, num_mini_batches=2, learning_rate=lr, schedule="adaptive",
                   desired_kl=desired_kl, max_grad_norm=100.0)

    # a big lr and a tiny KL target: lr must go down; a tiny lr and a huge target: lr must go up
    assert _rollout_and_update(make(5e-3, desired_kl=1e-6), 1.0) < 5e-3
    assert _rollout_and_update(make(1e-5, desired_kl=1.0), 1.0) > 1e-5


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match="elu"):
        ActorCritic(3, 3, 2, [8], [8], activation="swishy")


def test_actor_critic_shapes_and_tanh_mean():
    ac = ActorCritic(3, 5, 2, [8], [8], init_noise_std=0.5, tanh_mean=True)
    obs = 1e3 * torch.randn(64, 3)
    mean = ac.act_inference(obs)
    assert mean.shape == (64, 2) and mean.abs().max() <= 1.0
    actions = ac.act(obs)
    assert actions.shape == (64, 2)
    assert ac.get_actions_log_prob(actions).shape == (64,)
    assert ac.entropy.shape == (64,)
    torch.testing.assert_close(ac.action_std, torch.full((64, 2), 0.5))
    torch.testing.assert_close(ac.action_mean, mean)
    assert ac.evaluate(torch.randn(64, 5)).shape == (64,)
    unbounded = ActorCritic(3, 5, 2, [8], [8])
    assert unbounded.act_inference(obs).abs().max() > 1.0


def test_normalizer_freeze_reads_nothing_back():
    from tests.sync_guard import no_host_sync

    norm = EmpiricalNormalization(2, until=15)
    with no_host_sync():
        for value in (1.0, 1.0, 9.0):  # the third batch arrives after count (20) >= until (15)
            norm(torch.full((10, 2), value))
    assert int(norm.count) == 20
    torch.testing.assert_close(norm.mean, torch.ones(2))
    torch.testing.assert_close(norm.std, torch.zeros(2))


def test_nonfinite_policy_output_is_counted_on_device():
    ppo = PPO(ActorCritic(3, 3, 2, [8], [8]))
    ppo.init_storage(4, 2, (3,), (3,), (2,))
    ppo.act(torch.zeros(4, 3), torch.zeros(4, 3))
    assert int(ppo.nonfinite_policy_steps) == 0
    ppo.act(torch.full((4, 3), float("nan")), torch.zeros(4, 3))
    assert int(ppo.nonfinite_policy_steps) == 1


def test_nonfinite_loss_raises_before_the_optimizer_step():
    from gym.rl import NonFiniteError

    torch.manual_seed(0)
    ppo = PPO(ActorCritic(3, 3, 2, [8], [8]), num_learning_epochs=1, num_mini_batches=1)
    ppo.init_storage(8, 2, (3,), (3,), (2,))
    for _ in range(2):
        obs = torch.randn(8, 3)
        ppo.act(obs, obs)
        ppo.process_env_step(torch.full((8,), float("inf")), torch.zeros(8, dtype=torch.bool), {})
    ppo.compute_returns(torch.randn(8, 3))
    before = {k: v.clone() for k, v in ppo.actor_critic.state_dict().items()}
    with pytest.raises(NonFiniteError, match=r"non-finite PPO update at mini-batch 0.*value loss = (nan|inf)"):
        ppo.update()
    for key, value in ppo.actor_critic.state_dict().items():
        assert torch.equal(value, before[key]), key  # the poisoned step was never taken
    assert not ppo.optimizer.state  # Adam never stepped: no moments were created
