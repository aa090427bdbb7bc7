"""Swept parameters of a sweep config: a dotted config key (gpuGym's `env_cfg.` / `train_cfg.` prefix
accepted) with `value`, `values` or one of wandb's distributions, checked against the type and the
accepted range of the value it replaces, and mapped to an Optuna distribution (`Param`).
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

PREFIXES = ("env_cfg.", "train_cfg.")
# wandb's distributions that have an Optuna equivalent (the q_log_* ones are sampled log-uniform, then
# rounded to a multiple of q, as wandb does); the others are refused with this list.
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform",
                 "log_uniform_values", "q_log_uniform", "q_log_uniform_values")
INT_DISTRIBUTIONS = ("int_uniform", "q_uniform", "log_uniform_values", "q_log_uniform_values")
# What PPO accepts for keys the config validation leaves open: key -> (low, low allowed, high, high allowed).
KEY_BOUNDS: dict[str, tuple[float, bool, float, bool]] = {
    "algorithm.learning_rate": (0.0, False, math.inf, False),
    "algorithm.clip_param": (0.0, False, math.inf, False),
    "algorithm.gamma": (0.0, False, 1.0, True),
    "algorithm.lam": (0.0, True, 1.0, True),
    "algorithm.entropy_coef": (0.0, True, math.inf, False),
    "algorithm.value_loss_coef": (0.0, True, math.inf, False),
    "algorithm.desired_kl": (0.0, True, math.inf, False),
    "algorithm.max_grad_norm": (0.0, False, math.inf, False),
    "policy.init_noise_std": (0.0, False, math.inf, False),
}


def _is_num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass
class Param:
    """One swept config key: its spec (`value`, `values` or a distribution with min / max / q) and the
    type of the value it replaces (`current`, from the resolved config)."""

    key: str  # dotted config key, prefix removed
    name: str  # as written in the sweep config
    kind: str  # one of DISTRIBUTIONS
    current: Any
    values: list[Any] = field(default_factory=list)
    low: float = 0.0
    high: float = 0.0
    q: float | None = None

    @property
    def is_int(self) -> bool:
        return _is_int(self.current)

    def _encode(self, v: Any) -> Any:
        return json.dumps(v) if isinstance(v, (list, tuple, dict)) else v

    def _bounds(self) -> tuple[float, float]:
        """Sampling bounds in value space (log_uniform's min / max are natural logs, as in wandb);
        q_uniform's are the multiples of q inside [min, max]."""
        low, high = self.low, self.high
        if self.kind in ("log_uniform", "q_log_uniform"):
            low, high = math.exp(low), math.exp(high)
        if self.kind == "q_uniform":
            low, high = math.ceil(low / self.q - 1e-9) * self.q, math.floor(high / self.q + 1e-9) * self.q
        return low, high

    def distribution(self, grid: bool = False) -> Any:
        """The Optuna distribution sampled for this parameter (categorical over the grid for `grid`)."""
        import optuna.distributions as od

        if grid or self.kind in ("constant", "categorical"):
            return od.CategoricalDistribution([self._encode(v) for v in self.choices()])
        low, high = self._bounds()
        as_int = self.is_int or self.kind == "int_uniform"
        if self.kind == "q_uniform":
            step = int(self.q) if as_int else self.q
            return od.IntDistribution(int(low), int(high), step=step) if as_int else \
                od.FloatDistribution(low, high, step=step)
        log = "log" in self.kind
        return od.IntDistribution(int(low), int(high), log=log) if as_int else od.FloatDistribution(low, high, log=log)

    def choices(self) -> list[Any]:
        """The finite set of values (grid search); ValueError names the key when it is not finite."""
        if self.kind in ("constant", "categorical"):
            return list(self.values)
        if self.kind in ("int_uniform", "q_uniform"):
            low, high = self._bounds()
            step = 1 if self.kind == "int_uniform" else self.q
            n = int(round((high - low) / step)) + 1
            return [self.decode(low + i * step) for i in range(n)]
        raise ValueError(f"parameters.{self.name}: grid search needs a finite set of values; give `values`, "
                         f"`value`, or distribution int_uniform / q_uniform (not {self.kind})")

    def decode(self, sampled: Any) -> Any:
        """Optuna's sampled value -> the config value (JSON lists / dicts decoded, q applied, typed)."""
        if isinstance(sampled, str) and isinstance(self.current, (list, tuple, dict)):
            return json.loads(sampled)
        if self.kind.startswith("q_log") and self.q:
            sampled = round(sampled / self.q) * self.q
        if self.is_int and _is_num(sampled):
            return int(round(sampled))
        if isinstance(self.current, float) and _is_num(sampled):
            return float(sampled)
        return sampled

    def extremes(self) -> list[Any]:
        """Values at the edges of this parameter's space (every categorical value, up to 16)."""
        if self.kind in ("constant", "categorical"):
            return list(self.values)[:16]
        return [self.decode(v) for v in self._bounds()]


def parse_params(spec: Any, task: Any, problems: list[str]) -> list[Param]:
    from gym.utils.cli import flat_keys

    if not isinstance(spec, dict) or not spec:
        problems.append("parameters: give at least one, e.g. {\"algorithm.learning_rate\": "
                        "{\"distribution\": \"log_uniform_values\", \"min\": 1e-4, \"max\": 3e-3}}")
        return []
    cfgs = {"env_cfg.": task.env_cfg, "train_cfg.": task.train_cfg}
    keys = {prefix: flat_keys(cfg) for prefix, cfg in cfgs.items()}
    params, seen = [], {}
    for name, body in spec.items():
        key, owners = name, list(cfgs)
        for prefix in PREFIXES:
            if name.startswith(prefix):
                key, owners = name[len(prefix):], [prefix]
        owner = next((o for o in owners if key in keys[o]), None)
        if owner is None:
            other = next((o for o in cfgs if o not in owners and key in keys[o]), None)
            if other is not None:
                problems.append(f"parameters.{name}: {key} is a {other[:-1]} key; write {other}{key} or {key}")
                continue
            valid = [k for o in owners for k in keys[o]]
            close = difflib.get_close_matches(key, valid, n=5, cutoff=0.5)
            problems.append(f"parameters.{name}: unknown config key; closest valid keys: {close or valid[:10]}")
            continue
        if key in seen:
            problems.append(f"parameters.{name}: the same key as parameters.{seen[key]}; keep one")
            continue
        seen[key] = name
        current = _get(cfgs[owner], key)
        param = _parse_param(name, key, body, current, problems)
        if param is not None:
            params.append(param)
    return params


def _get(cfg: Any, key: str) -> Any:
    """The value of dotted `key` in config object `cfg`."""
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _type_problem(value: Any, current: Any) -> str | None:
    """Why `value` cannot replace `current` (None when it can)."""
    if isinstance(current, bool):
        return None if isinstance(value, bool) else "expects true / false"
    if _is_int(current):
        return None if _is_int(value) else "expects an integer"
    if isinstance(current, float):
        return None if _is_num(value) else "expects a number"
    if isinstance(current, str):
        return None if isinstance(value, str) else "expects a string"
    if isinstance(current, (list, tuple)) and not isinstance(value, (list, tuple)):
        return "expects a list like [0.5, 1.0]"
    if isinstance(current, dict) and not isinstance(value, dict):
        return "expects a dict"
    return None


def _bound_problem(key: str, value: Any) -> str | None:
    if key not in KEY_BOUNDS or not _is_num(value):
        return None
    low, low_ok, high, high_ok = KEY_BOUNDS[key]
    if value < low or (value == low and not low_ok) or value > high or (value == high and not high_ok):
        return (f"outside what {key} accepts: {'[' if low_ok else '('}{low}, {high}{']' if high_ok else ')'}")
    return None


def _parse_param(name: str, key: str, body: Any, current: Any, problems: list[str]) -> Param | None:
    where = f"parameters.{name} (currently {current!r}, {type(current).__name__})"
    if not isinstance(body, dict):
        problems.append(f"{where}: must be a mapping such as {{\"values\": [...]}} or {{\"distribution\": "
                        "\"uniform\", \"min\": ..., \"max\": ...}")
        return None
    kind = body.get("distribution")
    if kind is None:  # wandb infers it
        kind = "constant" if "value" in body else "categorical" if "values" in body else \
            "int_uniform" if _is_int(body.get("min")) and _is_int(body.get("max")) else "uniform"
    if kind not in DISTRIBUTIONS:
        problems.append(f"{where}: distribution {kind!r} is not supported; choose one of {list(DISTRIBUTIONS)}")
        return None
    if kind in ("constant", "categorical"):
        values = [body["value"]] if kind == "constant" and "value" in body else body.get("values")
        if not isinstance(values, list) or not values:
            need = "a value" if kind == "constant" else "a non-empty list of values"
            problems.append(f"{where}: {kind} needs {need}")
            return None
        bad = [f"{v!r} ({why})" for v in values
               for why in [_type_problem(v, current) or _bound_problem(key, v)] if why]
        if bad:
            problems.append(f"{where}: bad value(s) {', '.join(bad)}")
            return None
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            problems.append(f"{where}: values repeat; list each once")
            return None
        values = [float(v) if isinstance(current, float) and _is_num(v) else v for v in values]
        return Param(key, name, kind, current, values=values)
    if isinstance(current, bool) or not _is_num(current):
        problems.append(f"{where}: {kind} samples numbers, but this key takes {type(current).__name__} values; "
                        "list them with \"values\": [...]")
        return None
    low, high, q = body.get("min"), body.get("max"), body.get("q")
    if not (_is_num(low) and _is_num(high)) or low >= high:
        problems.append(f"{where}: {kind} needs numbers min < max, got min={low!r}, max={high!r}")
        return None
    if kind.startswith("q_") and (not _is_num(q) or q <= 0):
        problems.append(f"{where}: {kind} needs q > 0 (values are multiples of q), got q={q!r}")
        return None
    if _is_int(current) and (kind not in INT_DISTRIBUTIONS or not _is_int(low) or not _is_int(high)
                             or (q is not None and not _is_int(q))):
        problems.append(f"{where}: an integer key needs integer min / max{' / q' if q is not None else ''} and one of "
                        f"{list(INT_DISTRIBUTIONS)}, got {kind} with min={low!r}, max={high!r}")
        return None
    if kind.endswith("log_uniform_values") and low <= 0:
        problems.append(f"{where}: {kind} needs min > 0, got {low!r} (for negative scales use uniform)")
        return None
    param = Param(key, name, kind, current, low=low, high=high, q=q)
    lo, hi = param._bounds()
    if lo > hi:
        problems.append(f"{where}: no multiple of q={q} lies in [{low}, {high}]")
        return None
    for v in (lo, hi):
        why = _bound_problem(key, v)
        if why:
            problems.append(f"{where}: range [{low}, {high}] {why}")
            return None
    return param
