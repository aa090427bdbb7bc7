from pathlib import Path

from setuptools import find_packages, setup

requirements = [
    line.split("#")[0].strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="legged-gym-warp",
    version="0.1.0",
    description="legged_gym-style RL trainer for legged robots on MuJoCo Warp",
    packages=find_packages(include=["gym", "gym.*"]),
    python_requires=">=3.10",
    install_requires=requirements,
    extras_require={"test": ["pytest>=8", "ruff>=0.6"]},
)
