"""Robot tasks. Adding a robot: a folder with its configs (and an env subclass only if rewards or
observations differ), then one `task_registry.register` line here."""

from gym.envs.asimov.asimov import Asimov
from gym.envs.asimov.asimov_config import AsimovCfg, AsimovCfgPPO
from gym.envs.asimov.asimov_rough_config import AsimovRoughCfg, AsimovRoughCfgPPO
from gym.envs.base.legged_robot import LeggedRobot
from gym.envs.base.legged_robot_config import LeggedRobotCfg, LeggedRobotCfgPPO
from gym.utils.task_registry import task_registry

task_registry.register("asimov", Asimov, AsimovCfg(), AsimovCfgPPO())
task_registry.register("asimov_rough", Asimov, AsimovRoughCfg(), AsimovRoughCfgPPO())

__all__ = ["Asimov", "AsimovCfg", "AsimovCfgPPO", "AsimovRoughCfg", "AsimovRoughCfgPPO", "LeggedRobot",
           "LeggedRobotCfg", "LeggedRobotCfgPPO", "task_registry"]
