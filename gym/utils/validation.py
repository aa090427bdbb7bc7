"""Config validation, run before any heavy work (env build, MuJoCo Warp kernels, run folders).

`validate_cfgs(task_class, env_cfg, train_cfg)` collects every problem it finds and raises one
`ConfigError` listing them all, each naming the key, the bad value and the fix. It reads the robot
MJCF and compiles it bare (`mujoco.MjSpec.from_file(...).compile()`: milliseconds for a model of
primitives) to check files, meshes and the bodies, sites and joints the config names; the env, its
actuators, sensors and physics backend are never built here.
"""

from __future__ import annotations

import difflib
import numbers
from typing import Any

import mujoco

from gym.physics import BACKENDS
from gym.physics.model_builder import _CONES, _INTEGRATORS, _SOLVERS, match_joint_param, resolve_asset_path
from gym.utils.cli import ConfigKeyError, flat_keys
from gym.utils.task_registry import UnknownTaskError, command_fraction_keys
from gym.utils.terrain_validation import curriculum_problems, terrain_problems

# Two-element [min, max] leaves that the generic rule (name ends with "_range", or under
# commands.ranges) does not catch.
EXTRA_RANGE_KEYS = ("domain_rand.push_interval_s",)
GAIN_KEYS = ("stiffness", "damping", "effort_limit", "armature")


class ConfigError(ValueError):
    """One or more invalid config values; `problems` lists them, the message shows every one."""

    def __init__(self, problems: list[str], task: str | None = None) -> None:
        self.problems = list(problems)
        where = f" of task {task!r}" if task else ""
        n = len(self.problems)
        header = (f"{n} problem{'s' if n != 1 else ''} in the config{where}; nothing was built. "
                  "Fix each in the robot's config class or with --set KEY=VALUE:")
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


# What `resolve_task_cfgs` raises for bad input (ValueError: a `--set` value that does not parse);
# the scripts print these without a traceback and exit non-zero.
SETUP_ERRORS = (UnknownTaskError, ConfigKeyError, ConfigError, FileNotFoundError, ValueError)


def validate_cfgs(task_class: type, env_cfg: Any, train_cfg: Any, task: str | None = None) -> None:
    """Raise `ConfigError` listing every problem of (env_cfg, train_cfg) for `task_class`; None if valid."""
    problems = config_problems(task_class, env_cfg, train_cfg)
    if problems:
        raise ConfigError(problems, task)


def config_problems(task_class: type, env_cfg: Any, train_cfg: Any) -> list[str]:
    """Every problem found, as 'key=value: what is wrong; the fix' lines (empty when valid)."""
    problems = _value_problems(env_cfg) + _range_problems(env_cfg) + _control_problems(env_cfg)
    problems += terrain_problems(env_cfg) + curriculum_problems(env_cfg)
    problems += _term_problems(task_class, env_cfg) + _ppo_problems(env_cfg, train_cfg)
    problems += mjcf_problems(env_cfg) + _domain_rand_problems(env_cfg) + gait_problems(env_cfg)
    return problems


def gait_problems(cfg: Any) -> list[str]:
    """The gait clock (`cfg.gait`, where a robot's config has one): period > 0, stance fraction in
    (0, 1), one phase offset per foot (`asset.foot_bodies`). Also checked by the env that runs it."""
    g = getattr(cfg, "gait", None)
    if g is None:
        return []
    feet = len(cfg.asset.foot_bodies)
    ok = (_is_number(g.period) and g.period > 0 and _is_number(g.stance_fraction) and 0 < g.stance_fraction < 1
          and isinstance(g.offsets, (list, tuple)) and len(g.offsets) == feet)
    return [] if ok else [
        f"gait: need period > 0 [s], 0 < stance_fraction < 1 and one offset per foot ({feet}, asset.foot_bodies "
        f"order); got period={g.period!r}, stance_fraction={g.stance_fraction!r}, offsets={g.offsets!r}; "
        "set gait.period / gait.stance_fraction / gait.offsets (e.g. 0.4, 0.6, [0.0, 0.5])"]


# [min, max] domain-randomization ranges with bounds beyond min <= max: key -> (lowest min, highest max, why)
DOMAIN_RAND_BOUNDS = {
    "link_mass_scale_range": (1e-3, None, "a scale factor must be > 0"),
    "kp_scale_range": (1e-3, None, "a scale factor must be > 0"),
    "kd_scale_range": (0.0, None, "a scale factor must be >= 0"),
    "motor_strength_range": (1e-3, None, "a scale factor must be > 0"),
    "armature_scale_range": (0.0, None, "a scale factor must be >= 0"),
    "joint_damping_range": (0.0, None, "damping [Nm s/rad] must be >= 0"),
    "joint_friction_range": (0.0, None, "friction loss [Nm] must be >= 0"),
    "friction_range": (0.0, None, "friction must be >= 0"),
    "restitution_range": (0.0, 1.0, "a coefficient of restitution lies in [0, 1]"),
}


def _domain_rand_problems(cfg: Any) -> list[str]:
    """Bounds of the domain-randomization ranges (min <= max is checked with every range)."""
    problems, dr = [], cfg.domain_rand
    for key, (lo, hi, why) in DOMAIN_RAND_BOUNDS.items():
        value = getattr(dr, key, None)
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_number(v) for v in value):
            continue  # _range_problems reports the shape
        if value[0] < lo - 1e-12 or (hi is not None and value[1] > hi):
            bounds = f"[{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
            fixed = [max(value[0], lo), value[1] if hi is None else min(value[1], hi)]
            problems.append(f"domain_rand.{key}={list(value)!r}: {why}; use values {bounds}, e.g. --set "
                            f"domain_rand.{key}=[{fixed[0]:g},{fixed[1]:g}]")
    decimation = getattr(cfg.control, "decimation", 1)
    if _is_int(decimation) and decimation >= 1:  # else the decimation itself is reported
        from gym.envs.base.latency import latency_problems

        problems += latency_problems(dr, decimation)
    buckets = getattr(dr, "num_buckets", 0)
    if not _is_int(buckets) or buckets < 0:
        problems.append(f"domain_rand.num_buckets={buckets!r}: must be an integer >= 0 (0 = a draw per env); "
                        "e.g. --set domain_rand.num_buckets=64")
    return problems


# -- scalar values -------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _value_problems(cfg: Any) -> list[str]:
    problems = []
    n = cfg.env.num_envs
    if not _is_int(n) or n <= 0:
        problems.append(f"env.num_envs={n!r}: must be a positive integer; pass --num_envs=N (e.g. 1024)")
    n = cfg.env.num_actions
    if not _is_int(n) or n <= 0:
        problems.append(f"env.num_actions={n!r}: must be a positive integer, the number of hinge joints "
                        "in the MJCF; set env.num_actions")
    for key, value, example in (("sim.dt", cfg.sim.dt, "0.005"),
                                ("env.episode_length_s", cfg.env.episode_length_s, "20.0")):
        if not _is_number(value) or value <= 0:
            problems.append(f"{key}={value!r}: must be a number > 0 (seconds); e.g. --set {key}={example}")
    for key in ("nconmax", "njmax"):
        value = getattr(cfg.sim, key, 1)
        if not _is_int(value) or value < 1:
            problems.append(f"sim.{key}={value!r}: must be a positive integer (MuJoCo Warp buffer size); "
                            f"e.g. --set sim.{key}={getattr(type(cfg.sim), key, 32)}")
    c = cfg.commands
    for key in (*command_fraction_keys(c), "slow_scale", "slow_yaw_scale"):
        value = getattr(c, key)
        if not _is_number(value) or not 0 <= value <= 1:
            problems.append(f"commands.{key}={value!r}: must be a fraction in [0, 1]; e.g. --set commands.{key}=0.1")
    if not _is_number(c.min_norm) or c.min_norm < 0:
        problems.append(f"commands.min_norm={c.min_norm!r}: must be a speed >= 0 [m/s] (0 disables); "
                        "e.g. --set commands.min_norm=0.06")
    dec = cfg.control.decimation
    if not _is_int(dec) or dec < 1:
        problems.append(f"control.decimation={dec!r}: must be an integer >= 1 (physics steps per policy "
                        "step); e.g. --set control.decimation=4")
    for key, value, table in (("sim.integrator", cfg.sim.integrator, _INTEGRATORS),
                              ("sim.solver", cfg.sim.solver, _SOLVERS), ("sim.cone", cfg.sim.cone, _CONES)):
        if value not in table:
            problems.append(f"{key}={value!r}: not supported; choose one of {sorted(table)}")
    choices = [*BACKENDS, "auto"]
    if cfg.sim.physics not in choices:
        problems.append(f"sim.physics={cfg.sim.physics!r}: unknown backend; choose one of {choices} "
                        "(or pass --physics)")
    return problems


def range_keys(cfg: Any) -> list[str]:
    """Dotted keys of the [min, max] leaves of `cfg`: names ending in '_range', everything under
    commands.ranges, and `EXTRA_RANGE_KEYS`."""
    return [k for k in flat_keys(cfg)
            if k.endswith("_range") or k.startswith("commands.ranges.") or k in EXTRA_RANGE_KEYS]


def _range_problems(cfg: Any) -> list[str]:
    problems = []
    for key in range_keys(cfg):
        value = _get(cfg, key)
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_number(v) for v in value):
            problems.append(f"{key}={value!r}: must be a [min, max] pair of numbers; e.g. --set {key}=[0.5,1.0]")
        elif value[0] > value[1]:
            problems.append(f"{key}={list(value)!r}: min > max; swap them: --set {key}=[{value[1]},{value[0]}]")
        elif key == "commands.ranges.turn_ang_vel" and value[0] < 0:
            problems.append(f"{key}={list(value)!r}: a |yaw rate| range (the sign is drawn), so min must be >= 0; "
                            f"e.g. --set {key}=[0.3,{abs(value[1])}]")
    return problems


def _control_problems(cfg: Any) -> list[str]:
    problems = []
    for what in GAIN_KEYS:
        table = getattr(cfg.control, what)
        if not isinstance(table, dict):
            problems.append(f"control.{what}={table!r}: must be a dict joint-name substring -> value, "
                            "e.g. {'knee': 60.0}")
            continue
        for name, value in table.items():
            if not _is_number(value) or value < 0:
                problems.append(f"control.{what}[{name!r}]={value!r}: must be a number >= 0; "
                                f"fix control.{what} in the robot's config")
    scale = cfg.control.action_scale
    values = scale.items() if isinstance(scale, dict) else [(None, scale)]
    for name, value in values:
        if not _is_number(value) or value <= 0:
            key = "control.action_scale" + (f"[{name!r}]" if name is not None else "")
            problems.append(f"{key}={value!r}: must be a number > 0 (target = default + scale * action); "
                            "fix control.action_scale")
    return problems


def _term_problems(task_class: type, cfg: Any) -> list[str]:
    problems = []
    known_obs = sorted(k[5:] for k in dir(task_class) if k.startswith("_obs_"))
    if not cfg.env.observations:
        problems.append("env.observations=[]: the policy needs at least one observation term; "
                        f"choose from {known_obs}")
    for key in ("observations", "critic_observations"):
        for name in getattr(cfg.env, key):
            if not callable(getattr(task_class, f"_obs_{name}", None)):
                close = difflib.get_close_matches(str(name), known_obs, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problems.append(f"env.{key} term {name!r}: {task_class.__name__} has no method _obs_{name}; "
                                f"{hint}remove it or add _obs_{name} to the env class; known terms: {known_obs}")
    known_rew = sorted(k[8:] for k in dir(task_class) if k.startswith("_reward_"))
    for name, scale in flat_scales(cfg.rewards.scales).items():
        if not _is_number(scale):
            problems.append(f"rewards.scales.{name}={scale!r}: must be a number; 0 disables the term")
        elif scale != 0 and not callable(getattr(task_class, f"_reward_{name}", None)):
            close = difflib.get_close_matches(name, known_rew, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"rewards.scales.{name}={scale!r}: {task_class.__name__} has no method "
                            f"_reward_{name}; {hint}set the scale to 0, or add _reward_{name} to the env "
                            f"class; known terms: {known_rew}")
    return problems


def flat_scales(scales: Any) -> dict[str, Any]:
    """Name -> scale of a `rewards.scales` config object (its public, non-callable attributes)."""
    return {k: getattr(scales, k) for k in dir(scales) if not k.startswith("_") and not callable(getattr(scales, k))}


def _ppo_problems(env_cfg: Any, train_cfg: Any) -> list[str]:
    problems = []
    alg, run = train_cfg.algorithm, train_cfg.runner
    for key, value in (("algorithm.num_learning_epochs", alg.num_learning_epochs),
                       ("algorithm.num_mini_batches", alg.num_mini_batches),
                       ("runner.num_steps_per_env", run.num_steps_per_env)):
        if not _is_int(value) or value < 1:
            problems.append(f"{key}={value!r}: must be an integer >= 1; e.g. --set {key}=N")
    n, steps, mb = env_cfg.env.num_envs, run.num_steps_per_env, alg.num_mini_batches
    if all(_is_int(v) and v >= 1 for v in (n, steps, mb)) and (n * steps) % mb:
        divisors = [d for d in range(1, min(n * steps, 4 * mb) + 1) if (n * steps) % d == 0]
        divisors = sorted(sorted(divisors, key=lambda d: abs(d - mb))[:4])
        problems.append(f"algorithm.num_mini_batches={mb}: does not divide the batch num_envs * "
                        f"num_steps_per_env = {n} * {steps} = {n * steps}; choose a divisor, e.g. one of "
                        f"{divisors}, or change --num_envs")
    budget = getattr(run, "max_wall_time_min", None)
    if budget is not None and (not _is_number(budget) or not budget > 0):
        problems.append(f"runner.max_wall_time_min={budget!r}: must be a number of minutes > 0, or None for no "
                        "time limit; e.g. --max_wall_time_min 30 or --set runner.max_wall_time_min=None")
    timeout = getattr(run, "dist_timeout_s", 300.0)
    if not _is_number(timeout) or not timeout > 0:
        problems.append(f"runner.dist_timeout_s={timeout!r}: must be a number of seconds > 0 (the bound on "
                        "every collective of a multi-rank run); e.g. --set runner.dist_timeout_s=300")
    return problems


# -- the robot MJCF ------------------------------------------------------------------------------
def mjcf_problems(cfg: Any) -> list[str]:
    """Problems of the robot MJCF against the config: missing file or mesh, missing bodies / sites /
    joints the config names, hinge joints no control gain covers, num_actions != hinge joints."""
    try:
        path = resolve_asset_path(cfg.asset.file)
    except FileNotFoundError as e:
        return [f"asset.file={cfg.asset.file!r}: {e}"]
    try:
        model = mujoco.MjSpec.from_file(str(path)).compile()
    except Exception as e:  # mujoco raises ValueError or mujoco.FatalError, depending on the fault
        return [f"asset.file={cfg.asset.file!r}: the MJCF {path} does not load or compile ({str(e).strip()}); "
                "fix the file or the mesh / asset paths it references (relative to the MJCF's folder or "
                "its <compiler meshdir>)"]
    names = {kind: [getattr(model, kind)(i).name for i in range(count)]
             for kind, count in (("body", model.nbody), ("site", model.nsite), ("joint", model.njnt))}
    a, problems = cfg.asset, []

    def need(kind: str, key: str, name: Any) -> bool:
        if name in names[kind]:
            return True
        close = difflib.get_close_matches(str(name), names[kind], n=3)
        problems.append(f"{key}={name!r}: no {kind} of that name in {path.name}; closest: "
                        f"{close or names[kind][:6]}; fix {key} or add the {kind} to the MJCF")
        return False

    if need("body", "asset.base_body", a.base_body):
        body = model.body(a.base_body)
        if body.jntnum[0] < 1 or model.jnt_type[body.jntadr[0]] != mujoco.mjtJoint.mjJNT_FREE:
            problems.append(f"asset.base_body={a.base_body!r}: this body does not carry the free joint; "
                            "set asset.base_body to the body with <freejoint/>")
    need("site", "asset.imu_site", a.imu_site)
    if len(a.foot_sites) != len(a.foot_bodies):
        problems.append(f"asset.foot_sites={a.foot_sites!r} and asset.foot_bodies={a.foot_bodies!r}: must list "
                        "one entry per foot, in the same order")
    for key in ("foot_bodies", "penalize_contacts_on", "terminate_after_contacts_on"):
        for name in getattr(a, key):
            need("body", f"asset.{key}", name)
    for name in a.foot_sites:
        need("site", "asset.foot_sites", name)
    if cfg.domain_rand.randomize_base_mass and cfg.domain_rand.added_mass_body:
        need("body", "domain_rand.added_mass_body", cfg.domain_rand.added_mass_body)
    for name in cfg.init_state.default_joint_angles:
        need("joint", "init_state.default_joint_angles", name)
    problems += _joint_coverage_problems(cfg, model, path.name)
    return problems


def actuated_joints(model: mujoco.MjModel) -> list[str]:
    """The joints `build_model` actuates: every hinge joint, in MJCF order (= action order)."""
    return [model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE]


def _joint_coverage_problems(cfg: Any, model: mujoco.MjModel, file: str) -> list[str]:
    problems, joints, c = [], actuated_joints(model), cfg.control
    tables = [(w, getattr(c, w)) for w in GAIN_KEYS if isinstance(getattr(c, w), dict)]
    tables = [(w, t) for w, t in tables if w != "armature" or t]  # empty armature = 0 for every joint
    if isinstance(c.action_scale, dict):
        tables.append(("action_scale", c.action_scale))
    for what, table in tables:
        missing = []
        for joint in joints:
            try:
                match_joint_param(table, joint, what)
            except (KeyError, TypeError, ValueError):
                missing.append(joint)
        if missing:
            problems.append(f"control.{what}: no key matches the joints {missing} of {file} (keys match by "
                            f"substring of the joint name; keys now {sorted(table)}); add a key for them")
    if _is_int(cfg.env.num_actions) and cfg.env.num_actions != len(joints):
        problems.append(f"env.num_actions={cfg.env.num_actions}: {file} has {len(joints)} hinge joints "
                        f"(the actuated ones); set env.num_actions={len(joints)}")
    if any(model.jnt_type[i] == mujoco.mjtJoint.mjJNT_SLIDE for i in range(model.njnt)):
        slides = [model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_SLIDE]
        problems.append(f"asset.file: {file} has slide joints {slides}; the trainer actuates hinge joints "
                        "only, so they would move freely; make them hinges or remove them")
    return problems


def _get(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


# -- a checkpoint to load ------------------------------------------------------------------------
def checkpoint_problems(path: Any, env_cfg: Any, train_cfg: Any) -> list[str]:
    """What makes checkpoint `path` unfit for this config, found before anything is built: another
    robot (`asset.name`), other joints or joint order (the MJCF's hinge joints), or other network
    hidden sizes. Observation sizes need the env and are checked when the runner loads. Unreadable
    or old checkpoints without `env_info` report nothing here (the runner's load reports them)."""
    from gym.rl.checkpoint import hidden_dims, peek_checkpoint

    ckpt = peek_checkpoint(path)
    if ckpt is None:
        return []
    problems = []
    info = ckpt.get("env_info") or {}
    fix = "load a checkpoint of this robot (--load_run / --checkpoint) or pick the matching --task"
    if info.get("robot") not in (None, env_cfg.asset.name):
        problems.append(f"checkpoint {path}: trained for robot {info['robot']!r}, this config is robot "
                        f"{env_cfg.asset.name!r}; {fix}")
    saved_joints = info.get("joint_names")
    if saved_joints is not None:
        try:
            joints = actuated_joints(mujoco.MjSpec.from_file(str(resolve_asset_path(env_cfg.asset.file))).compile())
        except Exception:  # noqa: BLE001 - the MJCF check reports it
            joints = None
        if joints is not None and list(saved_joints) != joints:
            problems.append(f"checkpoint {path}: trained with joints {list(saved_joints)}, the MJCF has "
                            f"{joints}; {fix}")
    model = ckpt.get("model_state_dict") or {}
    for net in ("actor", "critic"):
        saved = hidden_dims(model, net)
        wanted = [int(d) for d in getattr(train_cfg.policy, f"{net}_hidden_dims")]
        if saved is not None and saved != wanted:
            problems.append(f"checkpoint {path}: {net} hidden sizes {saved}, policy.{net}_hidden_dims={wanted}; "
                            f"pass --set policy.{net}_hidden_dims={saved} or load a matching checkpoint")
    return problems
