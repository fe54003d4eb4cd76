"""The TRL backend's experiment log: EasyR1's file-logger records, every reward component."""

import json
from types import SimpleNamespace

from training.grpo_log import ExperimentLog, RewardRecorder, unflatten


def fake_reward(inputs, **kwargs):
    return [{"overall": float(i["response"]), "answer": float(i["response"]) / 2, "format": 1.0} for i in inputs]


def test_recorder_passes_results_through_and_logs_means_and_flat_groups(tmp_path):
    recorder = RewardRecorder(fake_reward, group_size=2)
    results = recorder([{"response": r} for r in ("1", "1", "0", "2")], preset="paper")
    assert [r["overall"] for r in results] == [1.0, 1.0, 0.0, 2.0]
    log = ExperimentLog(tmp_path, recorder)
    log.on_log(None, SimpleNamespace(global_step=1), None, logs={"loss": 0.5, "kl": 0.01, "reward": 1.0})
    log.on_log(None, SimpleNamespace(global_step=2), None, logs={"loss": float("nan")})  # nothing new: no record
    records = [json.loads(line) for line in (tmp_path / "experiment_log.jsonl").read_text().splitlines()]
    assert records == [{
        "step": 1,
        "reward": {"overall": 1.0, "answer": 0.5, "format": 1.0},
        "reward_groups": {"zero_spread_share": 0.5, "count": 2},
        "actor": {"pg_loss": 0.5, "kl_loss": 0.01},
    }]


def test_unflatten_is_easyr1s():
    assert unflatten({"reward/overall": 1, "step_time": 2, "a/b/c": 3}) == {
        "reward": {"overall": 1}, "step_time": 2, "a": {"b": {"c": 3}}}
