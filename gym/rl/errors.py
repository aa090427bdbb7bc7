"""Errors that stop a training run on purpose, each with a message naming the problem and the fix."""

from __future__ import annotations

from pathlib import Path

from gym.physics.base import PhysicsError


class NonFiniteError(RuntimeError):
    """A policy output, loss, gradient or a state about to be saved is NaN / Inf.

    `checkpoint` is the last good state written before raising (None when none could be written).
    """

    def __init__(self, message: str, checkpoint: Path | None = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class NonFiniteResetsError(PhysicsError):
    """Too many envs diverged (non-finite physics / observations / rewards) in one iteration."""

    def __init__(self, message: str, checkpoint: Path | None = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class PhysicsBufferError(PhysicsError):
    """A physics contact / constraint buffer overflowed (the message names the sizes to set)."""

    def __init__(self, message: str, checkpoint: Path | None = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class TrainingInterrupted(SystemExit):
    """SIGINT / SIGTERM stopped `learn()` at a safe point after writing `checkpoint`.

    A `SystemExit` whose `code` is 128 + the signal number (130 for SIGINT, 143 for SIGTERM, as a
    shell reports a process killed by that signal), so an uncaught one ends train.py with that
    code and no traceback. `iteration` is the completed iteration the checkpoint holds.
    """

    def __init__(self, signum: int, iteration: int, checkpoint: Path | None, message: str) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.iteration = iteration
        self.checkpoint = checkpoint
        self.message = message

    def __str__(self) -> str:
        return self.message
