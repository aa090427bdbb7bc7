"""`BaseConfig`: nested config classes that instantiate themselves recursively (legged_gym style).

A config is a class tree::

    class MyCfg(LeggedRobotCfg):
        class env(LeggedRobotCfg.env):
            num_envs = 512

Instantiating the top class instantiates every nested class, so each config object owns its own
mutable copy and overrides on one instance never leak into the class or into other instances.
"""

from __future__ import annotations

import inspect
from typing import Any


class BaseConfig:
    """Root of every config class; `__init__` turns nested classes into attribute instances."""

    def __init__(self) -> None:
        self.init_member_classes(self)

    @staticmethod
    def init_member_classes(obj: Any) -> None:
        """Replace each nested class attribute of `obj` by an instance of it, recursively.

        Class-level lists and dicts are copied so that mutating an instance never mutates the class.
        """
        for key in dir(obj):
            if key.startswith("__"):
                continue
            value = getattr(obj, key)
            if inspect.isclass(value):
                instance = value()
                setattr(obj, key, instance)
                BaseConfig.init_member_classes(instance)
            elif isinstance(value, (list, dict)):
                setattr(obj, key, _deepcopy_plain(value))


def _deepcopy_plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_deepcopy_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _deepcopy_plain(v) for k, v in value.items()}
    return value


def public_attrs(obj: Any) -> dict[str, Any]:
    """Name -> value of the public, non-callable attributes of a config object, inherited ones included."""
    return {k: getattr(obj, k) for k in dir(obj) if not k.startswith("_") and not callable(getattr(obj, k))}


def class_to_dict(obj: Any) -> Any:
    """Config object -> plain nested dict (lists and dicts copied), e.g. for YAML dumps."""
    if isinstance(obj, (list, tuple)):
        return [class_to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: class_to_dict(v) for k, v in obj.items()}
    if hasattr(obj, "__dict__") and not isinstance(obj, type) and type(obj).__module__ != "builtins":
        return {k: class_to_dict(v) for k, v in public_attrs(obj).items()}
    return obj
