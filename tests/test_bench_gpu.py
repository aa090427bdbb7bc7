"""`benchmarks/bench_gpu.py` runs end to end on Warp's CPU device with tiny sizes, so CI keeps it working.

One subprocess run (about 25 s on 2 cores once Warp's kernel cache is filled) serves every test. It
includes num_envs 0, which the physics rejects: that size must become a row with the error while the
other sizes are still measured. Nothing here asserts on speed. `GYM_TEST_DEVICE=cuda:0` (the suite's
device switch, see tests/conftest.py) runs the same tiny sizes on a GPU instead.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIZES = [8, 16]
DEVICE = os.environ.get("GYM_TEST_DEVICE", "cpu")
RATES = {"(a)": "raw_phys_steps_per_s", "(b)": "physics_steps_per_s", "(c)": "env_steps_per_s", "(d)": "ppo_fps"}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """(stdout, parsed --json file) of one tiny run on Warp's CPU device."""
    out = tmp_path_factory.mktemp("bench_gpu") / "rows.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--device", DEVICE,
           "--num_envs", "0", *map(str, SIZES), "--steps", "3", "--warmup_steps", "2", "--iterations", "2",
           "--skip_cold", "--startup_envs", str(SIZES[0]), "--startup_repeats", "1", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"bench_gpu.py failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout, json.loads(out.read_text())


def _table(stdout: str) -> tuple[list[str], dict[int, dict[str, str]]]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("|")]
    assert len(lines) >= 2, f"no markdown table in the output:\n{stdout}"
    header = _cells(lines[0])
    rows = {int(cells[0]): dict(zip(header, cells)) for cells in map(_cells, lines[2:])}
    return header, rows


def test_table_has_a_row_per_size_with_positive_finite_rates(bench_run: tuple[str, dict]) -> None:
    stdout, _ = bench_run
    header, rows = _table(stdout)
    assert sorted(rows) == [0, *SIZES]
    for prefix in [*RATES, "c/(a/", "d/c"]:
        column = next(h for h in header if h.startswith(prefix))
        for n in SIZES:
            value = _number(rows[n][column])
            assert math.isfinite(value) and value > 0, (n, column, rows[n][column])
    memory = next(h for h in header if h.startswith("(e)"))
    startup = next(h for h in header if h.startswith("(f)"))
    for n in SIZES:
        assert rows[n]["error"] == ""
        if DEVICE == "cpu":
            assert rows[n][memory] == "-"  # no GPU memory on Warp's CPU device
        else:  # torch / warp pool (or n/a) / driver delta [GiB]
            parts = [p for p in rows[n][memory].split(" / ") if p != "n/a"]
            assert parts and all(math.isfinite(_number(p)) and _number(p) >= 0 for p in parts), rows[n][memory]
    warm, cold = rows[SIZES[0]][startup].split(" / ")
    assert _number(warm) > 0 and cold == "-"  # --skip_cold
    resets = next(h for h in header if h.startswith("(g)"))
    for n in SIZES:  # reset / step and forward / step time ratios; their order is timing, not asserted here
        reset, forward = (_number(v) for v in rows[n][resets].split(" / "))
        assert math.isfinite(reset) and math.isfinite(forward) and reset > 0 and forward > 0, rows[n][resets]
    assert "graph capture:" in stdout and "warp: " in stdout and "mujoco_warp: " in stdout


def test_failing_size_is_a_row_with_the_error(bench_run: tuple[str, dict]) -> None:
    stdout, data = bench_run
    _, rows = _table(stdout)
    assert rows[0]["error"]  # e.g. "ValueError: num_envs must be >= 1, got 0"
    assert all(rows[0][h] == "-" for h in rows[0] if h.startswith(("(a)", "(b)", "(c)", "(d)")))
    row0 = next(r for r in data["rows"] if r["num_envs"] == 0)
    assert row0["error"] and "env_steps_per_s" not in row0


def test_json_holds_the_rows(bench_run: tuple[str, dict]) -> None:
    _, data = bench_run
    rows = {r["num_envs"]: r for r in data["rows"]}
    assert sorted(rows) == [0, *SIZES]
    for n in SIZES:
        assert "error" not in rows[n]
        for key in RATES.values():
            assert math.isfinite(rows[n][key]) and rows[n][key] > 0, (n, key, rows[n][key])
    assert rows[SIZES[0]]["startup_warm_s"] > 0
    assert data["machine"]["device"] == DEVICE
    assert data["decimation"] >= 1
    assert set(data["graph_capture"]) == {"(a) raw mujoco_warp.step", "(b) WarpPhysics.step", "(c) env.step"}
