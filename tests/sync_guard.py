"""`no_host_sync()`: fail on any device -> host read inside the block, also on a CPU-only machine.

On CUDA such reads (`.item()`, `.tolist()`, `if tensor:`, `int(tensor)`, `nonzero`, boolean-mask
indexing, `.cpu()`, ...) stall the pipeline until the GPU catches up. On the CPU they are free, so
the guard patches the torch entry points that would synchronise and makes them raise
`HostSyncError` instead; with CUDA present it also turns on `torch.cuda.set_sync_debug_mode("error")`,
which catches the rest (e.g. `.to("cpu")`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


class HostSyncError(RuntimeError):
    """A device -> host synchronisation happened inside `no_host_sync()`."""


_TENSOR_METHODS = ("item", "tolist", "numpy", "cpu", "nonzero", "masked_select", "__bool__", "__int__",
                   "__float__", "__index__", "__array__")
_TORCH_FUNCTIONS = ("nonzero", "masked_select", "argwhere", "unique", "unique_consecutive")


def _has_bool_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _raiser(name: str) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise HostSyncError(f"host synchronisation inside no_host_sync(): {name}")
    return fail


@contextmanager
def no_host_sync(allow: tuple[str, ...] = ()) -> Iterator[None]:
    """Within the block, the patched torch calls raise `HostSyncError`; all are restored on exit.

    `allow` names entries to leave alone, e.g. ("cpu", "numpy") around code that hands CPU tensors
    to a CPU library on purpose (the MuJoCo C backend); CUDA's sync debug mode stays on.

    Patched: Tensor.item / tolist / numpy / cpu / nonzero / masked_select / __bool__ / __int__ /
    __float__ / __index__ / __array__, torch.nonzero / masked_select / argwhere / unique /
    unique_consecutive, and Tensor.__getitem__ / __setitem__ with a boolean-mask index.
    """
    unknown = set(allow) - set(_TENSOR_METHODS) - set(_TORCH_FUNCTIONS)
    if unknown:
        raise ValueError(f"no_host_sync(allow=...) got unknown names {sorted(unknown)}; "
                         f"valid: {sorted(set(_TENSOR_METHODS) | set(_TORCH_FUNCTIONS))}")
    saved_methods = {name: getattr(torch.Tensor, name) for name in _TENSOR_METHODS if name not in allow}
    saved_functions = {name: getattr(torch, name) for name in _TORCH_FUNCTIONS if name not in allow}
    getitem, setitem = torch.Tensor.__getitem__, torch.Tensor.__setitem__

    def guarded_getitem(self: torch.Tensor, index: Any) -> Any:
        if _has_bool_index(index):
            raise HostSyncError("host synchronisation inside no_host_sync(): boolean-mask indexing x[mask]")
        return getitem(self, index)

    def guarded_setitem(self: torch.Tensor, index: Any, value: Any) -> None:
        if _has_bool_index(index):
            raise HostSyncError("host synchronisation inside no_host_sync(): boolean-mask assignment x[mask] = v")
        setitem(self, index, value)

    cuda = torch.cuda.is_available()
    previous_mode = torch.cuda.get_sync_debug_mode() if cuda else 0
    try:
        for name in saved_methods:
            setattr(torch.Tensor, name, _raiser(f"Tensor.{name}"))
        for name in saved_functions:
            setattr(torch, name, _raiser(f"torch.{name}"))
        torch.Tensor.__getitem__ = guarded_getitem
        torch.Tensor.__setitem__ = guarded_setitem
        if cuda:
            torch.cuda.set_sync_debug_mode("error")
        yield
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode(previous_mode)
        for name, method in saved_methods.items():
            setattr(torch.Tensor, name, method)
        for name, function in saved_functions.items():
            setattr(torch, name, function)
        torch.Tensor.__getitem__ = getitem
        torch.Tensor.__setitem__ = setitem
