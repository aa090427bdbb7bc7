"""legged-gym-warp: a legged_gym-style RL trainer for legged robots on MuJoCo Warp."""

import os
from pathlib import Path

GYM_ROOT_DIR = Path(__file__).resolve().parent.parent
GYM_ENVS_DIR = GYM_ROOT_DIR / "gym" / "envs"
RESOURCES_DIR = GYM_ROOT_DIR / "resources"
# Runs go to logs/ in the checkout; LEGGED_GYM_LOGS_DIR moves them (e.g. to a bigger disk).
LOGS_DIR = Path(os.environ.get("LEGGED_GYM_LOGS_DIR", GYM_ROOT_DIR / "logs"))

__all__ = ["GYM_ENVS_DIR", "GYM_ROOT_DIR", "LOGS_DIR", "RESOURCES_DIR"]
