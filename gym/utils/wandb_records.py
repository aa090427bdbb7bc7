"""Read back what a wandb run folder recorded (`run-<id>.wandb`), offline, without the wandb server.

wandb writes every run, online or offline, to a local transaction log: a `:W&B` header followed by
LevelDB-log framed `wandb.proto.wandb_internal_pb2.Record` protobufs (the file `wandb sync`
uploads). wandb 0.31 has no Python reader for it any more (the Go core reads it), so this module
unframes the log and parses each record with wandb's own protobuf classes:

    records = read_wandb_records(run.dir)     # run.dir: wandb/offline-run-<date>-<id>/
    records.config["train_cfg"]["runner"]["num_steps_per_env"], records.history[0]["_step"]
    records.artifacts[0]["files"]             # ["model_2.pt"]

Used by the tests and handy for checking an offline run (or a sweep trial) before `wandb sync`.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MAGIC = b":W&B"
_FILE_HEADER = 7  # ":W&B" + uint16 magic + uint8 version
_BLOCK = 32768  # LevelDB log block size
_RECORD_HEADER = 7  # uint32 crc + uint16 length + uint8 type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class WandbRecords:
    """What one wandb run folder holds: run identity, config, history rows, summary, artifacts."""

    run_id: str = ""
    project: str = ""
    entity: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    display_name: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # nested, as passed to wandb.init / config.update
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per step, with "_step"
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # name, type, aliases, files, metadata
    exit_code: int | None = None


def wandb_file(run_folder: str | Path) -> Path:
    """The `run-<id>.wandb` log of a wandb run folder (or the file itself); FileNotFoundError if none."""
    path = Path(run_folder)
    if path.is_file():
        return path
    found = sorted(path.glob("run-*.wandb"))
    if not found:
        raise FileNotFoundError(f"no run-<id>.wandb file in {path}: pass a wandb run folder such as "
                                "wandb/offline-run-<date>-<id> (see wandb_run.json in the training run folder)")
    return found[0]


def iter_record_bytes(data: bytes) -> list[bytes]:
    """Unframe a wandb transaction log into the serialized protobuf records, in order.

    Raises ValueError for a file that is not a wandb log. A record cut short at the end (a crash
    while writing) is dropped.
    """
    if data[:4] != _MAGIC:
        raise ValueError("not a wandb transaction log (no ':W&B' header)")
    out: list[bytes] = []
    pending: bytes | None = None
    pos = _FILE_HEADER
    while pos + _RECORD_HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _RECORD_HEADER:  # block trailer: zero padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + _RECORD_HEADER])
        if kind == 0:  # zero-filled (preallocated) space: skip the rest of the block
            pos += left_in_block
            continue
        start, pos = pos + _RECORD_HEADER, pos + _RECORD_HEADER + length
        if pos > len(data):
            break
        chunk = data[start:pos]
        if kind == _FULL:
            out.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE and pending is not None:
            pending += chunk
        elif kind == _LAST and pending is not None:
            out.append(pending + chunk)
            pending = None
    return out


def _set_nested(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _item_key(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def read_wandb_records(run_folder: str | Path, wait_s: float = 0.0) -> WandbRecords:
    """Parse the run log of `run_folder` (a wandb run folder or its `.wandb` file) into WandbRecords.

    wandb's core process writes the log asynchronously: right after `run.finish()` returns in the
    same process the tail may still be in flight, so `wait_s` > 0 polls (every 50 ms, up to that
    many seconds) until the log holds the run's exit record.
    """
    deadline = time.monotonic() + wait_s
    while True:
        result = _parse(wandb_file(run_folder))
        if result.exit_code is not None or time.monotonic() >= deadline:
            return result
        time.sleep(0.05)


def _parse(path: Path) -> WandbRecords:
    from wandb.proto import wandb_internal_pb2 as pb

    result = WandbRecords()
    for raw in iter_record_bytes(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            result.run_id, result.project, result.entity = run.run_id, run.project, run.entity
            result.group, result.tags, result.display_name = run.run_group, list(run.tags), run.display_name
            for item in run.config.update:
                _set_nested(result.config, _item_key(item), _config_value(item.value_json))
        elif kind == "config":
            for item in record.config.update:
                _set_nested(result.config, _item_key(item), _config_value(item.value_json))
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                row["/".join(_item_key(item))] = json.loads(item.value_json)
            result.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                result.summary["/".join(_item_key(item))] = json.loads(item.value_json)
        elif kind == "artifact":
            art = record.artifact
            result.artifacts.append({
                "name": art.name, "type": art.type, "aliases": list(art.aliases),
                "files": [entry.path for entry in art.manifest.contents],
                "metadata": json.loads(art.metadata) if art.metadata else {},
            })
        elif kind == "exit":
            result.exit_code = record.exit.exit_code
    return result


def _config_value(value_json: str) -> Any:
    """wandb stores each config value as {"value": ..., "desc": ...}; `_wandb` holds its own data."""
    value = json.loads(value_json)
    return value["value"] if isinstance(value, dict) and "value" in value else value
