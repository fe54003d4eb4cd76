"""The TRL backend's experiment log, in EasyR1's file-logger format, so one reader serves both.

EasyR1 writes ``<trainer.save_checkpoint_path>/experiment_log.jsonl``: one JSON record per step,
``{"step": n, **unflatten_dict(metrics)}``, where its reward metrics are ``reward/<key>`` (the
batch mean of every key the reward function returns: ``overall``, ``answer``, ``format``,
``coordinate``, ...) and so appear as ``{"reward": {"overall": ..., ...}}``. TRL logs only the
sum it trains on, so the backend wraps the EasyR1 reward function (``RewardRecorder``) to keep
every component of every scored response, and ``ExperimentLog`` (a ``TrainerCallback``) writes,
at each TRL log: the mean of each component over the responses scored since the last record,
``reward_groups/zero_spread_share`` (the share of GRPO groups whose rewards are all equal: their
advantages are 0 and they teach nothing) and TRL's own loss / KL / learning rate under ``actor/``.
``eval.stages.read_experiment_log`` reads it back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

LOG_FILE = "experiment_log.jsonl"
TRL_KEYS = {"loss": "actor/pg_loss", "kl": "actor/kl_loss", "learning_rate": "actor/lr",
            "grad_norm": "actor/grad_norm", "completions/mean_length": "response_length/mean"}


def unflatten(metrics: dict[str, Any]) -> dict[str, Any]:
    """``{"reward/overall": x}`` -> ``{"reward": {"overall": x}}``, as EasyR1's logger writes."""
    nested: dict[str, Any] = {}
    for key, value in metrics.items():
        *parents, leaf = key.split("/")
        pointer = nested
        for part in parents:
            pointer = pointer.setdefault(part, {})
        pointer[leaf] = value
    return nested


class RewardRecorder:
    """Wraps an EasyR1 batch reward function: returns its results unchanged and keeps them, with
    the group size, for the log."""

    def __init__(self, function: Callable[..., list[dict[str, float]]], group_size: int):
        self.function, self.group_size = function, group_size
        self.pending: list[dict[str, float]] = []
        self.__name__ = getattr(function, "__name__", "reward")

    def __call__(self, reward_inputs: list[dict[str, Any]], *args: Any, **kwargs: Any) -> list[dict[str, float]]:
        results = self.function(reward_inputs, *args, **kwargs)
        self.pending.extend(results)
        return results

    def drain(self) -> dict[str, float]:
        """The means of every component since the last call, and the zero-spread share of the
        groups (TRL scores a prompt's ``group_size`` responses consecutively)."""
        results, self.pending = self.pending, []
        if not results:
            return {}
        metrics = {f"reward/{key}": sum(float(r[key]) for r in results) / len(results)
                   for key in results[0] if all(isinstance(r.get(key), (int, float)) for r in results)}
        groups = [results[i : i + self.group_size] for i in range(0, len(results) - self.group_size + 1, self.group_size)]
        if groups:
            flat = sum(1 for g in groups if max(r["overall"] for r in g) - min(r["overall"] for r in g) <= 1e-9)
            metrics["reward_groups/zero_spread_share"] = flat / len(groups)
            metrics["reward_groups/count"] = len(groups)
        return metrics


class ExperimentLog(TrainerCallback):
    """Appends one EasyR1-format record per TRL log step to ``<output_dir>/experiment_log.jsonl``."""

    def __init__(self, output_dir: Path, recorder: RewardRecorder):
        self.path = Path(output_dir) / LOG_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")  # EasyR1's logger starts the file afresh too
        self.recorder = recorder

    def on_log(self, args, state, control, logs=None, **kwargs):
        metrics = self.recorder.drain()
        for key, name in TRL_KEYS.items():
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                metrics[name] = float(value)
        if metrics:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": state.global_step, **unflatten(metrics)}) + "\n")
