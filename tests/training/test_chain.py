"""The demo chain for real: tiny Qwen2.5-VL, 2 LLaMA-Factory steps per SFT stage, 2 TRL GRPO steps.

The chain of `make demo` (recipes/run/demo.yaml) with overrides that pin its sizes here, so that
the test stays seconds-sized whatever the demo layer says: a small world, 2 steps per stage, the
final model's evaluation only. Whether the demo learns: test_demo_learns.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


PLUMBING = [
    "generate_releases=24", "overrides.stage1.max_steps=2", "overrides.stage2.max_steps=2",
    "overrides.stage3.trainer.max_steps=2", "overrides.stage3.worker.rollout.n=2",
    "overrides.stage3.worker.actor.global_batch_size=1", "overrides.stage3.data.rollout_batch_size=2",
    "overrides.stage3.worker.actor.micro_batch_size_per_device_for_update=1",
    "overrides.stage3.worker.actor.micro_batch_size_per_device_for_experience=2",
    "data.overrides='seed=0 stage1.size=64 grpo.size=32 cold_start.candidates=48'",
    "cold_start.overrides='teacher.kind=offline size=32'", "eval.stages=[]",
    "eval.infer_overrides='backend=hf sampling.max_new_tokens=32'",
]


def run_chain(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training.run", "--config-name", "demo", f"run_dir={run_dir}", *PLUMBING, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**__import__("os").environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo-run")
    result = run_chain(run_dir, "stage=all")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return run_dir, result


def trainer_steps(output_dir: Path) -> int:
    return json.loads((output_dir / "trainer_state.json").read_text())["global_step"]


def test_each_sft_stage_trains_two_steps_and_hands_over(chain):
    run_dir, _ = chain
    stage1 = yaml.safe_load((run_dir / "configs" / "stage1.yaml").read_text())
    stage2 = yaml.safe_load((run_dir / "configs" / "stage2.yaml").read_text())
    assert stage1["model_name_or_path"] == str(run_dir / "tiny-qwen2.5-vl")
    assert stage2["model_name_or_path"] == str(run_dir / "stage1")
    assert trainer_steps(run_dir / "stage1") == 2 and trainer_steps(run_dir / "stage2") == 2
    weights = [load_file(run_dir / name / "model.safetensors") for name in ("tiny-qwen2.5-vl", "stage1", "stage2")]
    changed = [name for name in weights[0] if not weights[0][name].equal(weights[1][name])]
    assert changed, "stage 1 did not change any weight"
    assert any(not weights[1][name].equal(weights[2][name]) for name in changed), "stage 2 did not train"
    trained_on = [json.loads(line) for line in (run_dir / "data" / "cold_start" / "train.jsonl").read_text().splitlines()]
    assert trained_on and "not a model" in trained_on[0]["teacher"]


def test_grpo_runs_two_steps_with_our_reward(chain):
    run_dir, result = chain
    stage3 = yaml.safe_load((run_dir / "configs" / "stage3.yaml").read_text())
    assert stage3["worker"]["actor"]["model"]["model_path"] == str(run_dir / "stage2")
    log = (run_dir / "logs" / "stage3.log").read_text()
    assert "GRPO (TRL) finished: 2 steps" in log and "rewards/compute_score/mean" in log
    records = [json.loads(line) for line in (run_dir / "stage3" / "experiment_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]  # EasyR1's file-logger format, every reward component
    assert {"overall", "answer", "format", "coordinate"} <= set(records[0]["reward"])
    assert 0 <= records[0]["reward_groups"]["zero_spread_share"] <= 1
    assert (run_dir / "stage3" / "model.safetensors").exists()


def test_a_second_run_resumes_everything(chain):
    run_dir, _ = chain
    again = run_chain(run_dir, "stage=all")
    assert again.returncode == 0
    assert again.stdout.count("already complete") == 8 and "llamafactory-cli" not in again.stdout


def test_the_chain_ends_with_an_evaluation_report(chain):
    run_dir, _ = chain
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert {"mimic-cxr/findings", "mimic-cxr/impression"} <= set(metrics["reports"])
    assert "BLEU-4" in metrics["reports"]["mimic-cxr/findings"] and metrics["vqa_overall"]["n"] > 0
    assert "CheXbert" in metrics["not_computed"].get("Micro-14", "") or "Micro-14" in metrics["not_computed"]
    report = run_dir / "eval" / "report"
    assert (report / "report_generation.md").exists() and (report / "lengths.png").exists()
