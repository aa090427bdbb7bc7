"""legged-gym-warp: a legged_gym-style RL trainer for legged robots on MuJoCo Warp."""

from pathlib import Path

GYM_ROOT_DIR = Path(__file__).resolve().parent.parent
GYM_ENVS_DIR = GYM_ROOT_DIR / "gym" / "envs"
RESOURCES_DIR = GYM_ROOT_DIR / "resources"
LOGS_DIR = GYM_ROOT_DIR / "logs"

__all__ = ["GYM_ROOT_DIR", "GYM_ENVS_DIR", "RESOURCES_DIR", "LOGS_DIR"]
