"""`GracefulStop`: turn SIGINT / SIGTERM into a request to stop at the next safe point."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    """Context manager. While active in the main thread, the first SIGINT / SIGTERM only sets
    `signum` (the training loop polls it at safe points); a second one raises KeyboardInterrupt
    at once. The previous handlers are restored on exit. Outside the main thread (where Python
    cannot install handlers) it does nothing and `signum` stays None.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def requested(self) -> bool:
        """A stop signal has arrived."""
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            raise KeyboardInterrupt(f"second stop signal ({name}): stopping at once, without a checkpoint")
        self.signum = signum
        print(f"\n{name} received: writing a checkpoint at the next safe point, then stopping "
              f"(send it again to stop at once, without a checkpoint)", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulStop:
        self.signum = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}


def resume_line(checkpoint: Path, iteration: int, task_name: str | None = None, hint: str | None = None) -> str:
    """How to resume from `checkpoint` (model_<iteration>.pt in its run folder): `hint` formatted
    with {checkpoint}, {run}, {iteration} if given, else the train.py command (with --task when
    `task_name` is known)."""
    if hint:
        return hint.format(checkpoint=checkpoint, run=checkpoint.parent.name, iteration=iteration)
    flags = f"--resume --load_run={checkpoint.parent.name} --checkpoint={iteration}"
    if task_name:
        return f"Resume with: python gym/scripts/train.py --task={task_name} {flags}"
    return f"Resume with: python gym/scripts/train.py --task=<task> {flags}"
