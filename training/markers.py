"""Completion markers: a stage is complete only if its outputs exist and what it ran on is unchanged.

``<run_dir>/logs/<stage>.complete`` records the stage's **inputs** (its settings, the rendered trainer
config, digests of the files earlier stages wrote, the identity of the upstream stage's output) and
their sha256, the **fingerprint**. ``<stage>.started`` records the same when a trainer stage starts,
so that a crashed run resumes only into an output made from the same inputs. Each completion also
gets a fresh ``output_id``: a stage that reruns changes the inputs of every later stage, even when
its own settings did not change. The raw releases are identified by their path only (hashing
hundreds of GB per run is not affordable); everything the data build writes is covered by its
manifest, which lists the sha256 of every output file.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from data_prep.writers import sha256_of, write_json
from training.render import absolute, render, run_path

TRAINER_STAGES = ("stage1", "stage2", "stage3")  # an output from other inputs is never resumed into


def marker(cfg: DictConfig, stage: str) -> Path:
    return run_path(cfg, "logs", f"{stage}.complete")


def started(cfg: DictConfig, stage: str) -> Path:
    return run_path(cfg, "logs", f"{stage}.started")


def read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def last_record(cfg: DictConfig, stage: str) -> dict | None:
    """What the stage's output was last made from: its ``started`` record (a run in progress or
    crashed), else its completion marker; None if neither."""
    return read(started(cfg, stage)) or read(marker(cfg, stage))


def stage_result(cfg: DictConfig, stage: str) -> dict:
    """What a completed stage returned (its marker's ``result``; empty if none)."""
    return (read(marker(cfg, stage)) or {}).get("result") or {}


def file_digest(path: Path) -> str:
    return sha256_of(path) if path.is_file() else "missing"


def folder_signature(path: Path) -> str:
    """A folder handed over from elsewhere: its files' names, sizes and modification times."""
    if not path.is_dir():
        return "missing"
    entries = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file())
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def upstream(cfg: DictConfig, stage: str) -> str:
    """The identity of an earlier stage's output: its completion's output_id."""
    recorded = read(marker(cfg, stage)) or {}
    return recorded.get("output_id", "not complete")


def handed_over(cfg: DictConfig, folder: str, own_stage: str) -> str:
    """Stage 1/2's output: this run's own (its output_id) or a folder from another run (its signature)."""
    if Path(absolute(folder)) == run_path(cfg, own_stage):
        return upstream(cfg, own_stage)
    return f"{absolute(folder)} {folder_signature(Path(absolute(folder)))}"


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def stage_inputs(cfg: DictConfig, stage: str) -> dict[str, Any]:
    data_dir = Path(absolute(cfg.data_dir))
    frame = plain(cfg.frame)
    if stage == "model":
        return {"base_model": str(cfg.base_model), "tiny_model": bool(cfg.get("tiny_model")), "frame": frame}
    if stage == "data":
        return {"data_root": absolute(cfg.data_root) if cfg.data_root else None, "data_dir": str(data_dir),
                "data": plain(cfg.data), "frame": frame, "generate_releases": cfg.get("generate_releases", 0),
                "generate_findings": plain(cfg.get("generate_findings")),
                "generate_image_size": plain(cfg.get("generate_image_size"))}
    if stage == "cold_start":
        return {"data_dir": str(data_dir), "overrides": plain(cfg.cold_start.overrides),
                "data": file_digest(data_dir / "manifest.json")}
    if stage in ("stage1", "stage2", "stage3"):
        config, _ = render(cfg, stage)
        inputs = {"config": config, "data": file_digest(data_dir / "manifest.json")}
        if stage == "stage1":
            inputs["model"] = upstream(cfg, "model") if cfg.get("tiny_model") else str(cfg.base_model)
        elif stage == "stage2":
            inputs["cold_start"] = file_digest(data_dir / "cold_start" / "train.jsonl")
            inputs["stage1"] = handed_over(cfg, cfg.handover.stage1_dir, "stage1")
        else:
            inputs["backend"] = cfg.grpo_backend
            inputs["stage2"] = handed_over(cfg, cfg.handover.stage2_dir, "stage2")
        return inputs
    if stage == "merge":
        return {"stage3": upstream(cfg, "stage3"), "merge": plain(cfg.get("merge", {})), "backend": cfg.grpo_backend}
    if stage == "eval":
        # every model evaluated: the merged final one and, under eval.stages, each stage's own (a
        # stage retrained alone, without the merge, must not leave its old predictions standing)
        compared = {name: upstream(cfg, "model" if name == "base" else name)
                    for name in (cfg.eval.get("stages") or [])}
        return {"model": upstream(cfg, "merge"), "stages": compared,
                "items": file_digest(data_dir / "test" / "xraybench.jsonl"),
                "grounding_items": file_digest(data_dir / "test" / "grounding.jsonl"),
                "eval": plain(cfg.eval), "frame": frame}
    raise KeyError(stage)


def fingerprint(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """What differs between two recorded inputs, as ``key: old -> new`` (nested keys dotted)."""
    found = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            found += changes(a, b, path + ".")
        elif a != b:
            found.append(f"{path}: {json.dumps(a, default=str)[:120]} -> {json.dumps(b, default=str)[:120]}")
    return found


def missing_outputs(cfg: DictConfig, stage: str) -> list[str]:
    """The outputs a complete stage must have left, that are not there."""
    data_dir, out = Path(absolute(cfg.data_dir)), run_path(cfg, stage)
    if stage == "model":
        wanted = [Path(absolute(cfg.base_model)) / "config.json"] if cfg.get("tiny_model") else []
    elif stage == "data":
        wanted = [data_dir / name for name in ("manifest.json", "dataset_info.json", "grpo/train.parquet",
                                               "test/xraybench.jsonl")]
    elif stage == "cold_start":
        wanted = [data_dir / "cold_start" / "train.jsonl", data_dir / "cold_start" / "report.json"]
    elif stage in ("stage1", "stage2") or (stage == "stage3" and cfg.grpo_backend == "trl"):
        wanted = [out / "config.json"]
        if not list(out.glob("*.safetensors")):
            return [f"{out}/*.safetensors"]
    elif stage == "stage3":
        wanted = [out / "checkpoint_tracker.json"]
    elif stage == "merge":
        merged = stage_result(cfg, "merge").get("model")
        wanted = [Path(merged) / "config.json"] if merged else []
    elif stage == "eval":
        wanted = [run_path(cfg, "eval", "metrics.json"), run_path(cfg, "eval", "predictions.jsonl")]
    else:
        raise KeyError(stage)
    return [str(path) for path in wanted if not path.exists()]


def status(cfg: DictConfig, stage: str, inputs: dict[str, Any]) -> tuple[str, list[str]]:
    """("complete", []), ("changed", what changed), ("outputs missing", which) or ("not run", [])."""
    recorded = read(marker(cfg, stage))
    if recorded is None:
        return "not run", []
    if "fingerprint" not in recorded:
        return "changed", ["the marker was written by an older version of training.run (no fingerprint)"]
    if recorded["fingerprint"] != fingerprint(inputs):
        return "changed", changes(recorded.get("inputs", {}), inputs) or ["fingerprint differs"]
    missing = missing_outputs(cfg, stage)
    return ("outputs missing", missing) if missing else ("complete", [])


def record(path: Path, stage: str, inputs: dict[str, Any], **extra: Any) -> dict:
    detail = {"stage": stage, "fingerprint": fingerprint(inputs), "inputs": inputs,
              "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    write_json(path, detail)
    return detail


def mark_started(cfg: DictConfig, stage: str, inputs: dict[str, Any]) -> None:
    record(started(cfg, stage), stage, inputs)


def mark_complete(cfg: DictConfig, stage: str, inputs: dict[str, Any], result: Any = None) -> dict:
    detail = record(marker(cfg, stage), stage, inputs, output_id=uuid.uuid4().hex, result=result)
    started(cfg, stage).unlink(missing_ok=True)
    return detail
