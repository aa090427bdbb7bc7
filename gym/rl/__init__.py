"""rsl_rl-style PPO for `VecEnv`s: actor-critic, rollout storage, normalizer, runner, logging."""

from gym.rl.actor_critic import ACTIVATIONS, ActorCritic, get_activation, mlp
from gym.rl.checkpoint import (
    CHECKPOINT_KEYS,
    OPTIONAL_CHECKPOINT_KEYS,
    CheckpointError,
    CheckpointWriteError,
    atomic_save,
    checkpoint_problem,
    read_checkpoint,
)
from gym.rl.errors import NonFiniteError, NonFiniteResetsError, TrainingInterrupted
from gym.rl.logger import EpisodeStats, MetricsLogger
from gym.rl.normalizer import EmpiricalNormalization
from gym.rl.on_policy_runner import InferencePolicy, OnPolicyRunner
from gym.rl.ppo import (
    PPO,
    adapt_learning_rate,
    explained_variance,
    gaussian_kl,
    surrogate_loss,
    value_loss,
)
from gym.rl.storage import MiniBatch, RolloutStorage, Transition, compute_gae
from gym.rl.vec_env import VecEnv

__all__ = [
    "ACTIVATIONS",
    "ActorCritic",
    "CHECKPOINT_KEYS",
    "CheckpointError",
    "CheckpointWriteError",
    "EmpiricalNormalization",
    "EpisodeStats",
    "InferencePolicy",
    "MetricsLogger",
    "MiniBatch",
    "NonFiniteError",
    "NonFiniteResetsError",
    "OPTIONAL_CHECKPOINT_KEYS",
    "OnPolicyRunner",
    "PPO",
    "RolloutStorage",
    "TrainingInterrupted",
    "Transition",
    "VecEnv",
    "adapt_learning_rate",
    "atomic_save",
    "checkpoint_problem",
    "compute_gae",
    "explained_variance",
    "gaussian_kl",
    "get_activation",
    "mlp",
    "read_checkpoint",
    "surrogate_loss",
    "value_loss",
]
