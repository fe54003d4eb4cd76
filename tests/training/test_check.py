import json

import pytest

from training import check
from training.render import render
from training.run import StageFailed, check_all, run_logged


@pytest.mark.parametrize("config_name", ["default", "demo"])
def test_shipped_recipes_pass(compose_run, tmp_path, config_name):
    problems = check_all(compose_run(config_name, f"run_dir={tmp_path}"))
    assert problems == {"stage1": [], "stage2": [], "stage3": []}


@pytest.mark.parametrize(
    "override, expected",
    [
        ("+overrides.stage1.learning_rat=1e-5", "LLaMA-Factory"),
        ("+overrides.stage1.template=qwen9_vl", "not a LLaMA-Factory template"),
        ("+overrides.stage1.stage=sftt", "not a LLaMA-Factory stage"),
        ("+overrides.stage1.finetuning_type=partial", "LLaMA-Factory"),
        ("+overrides.stage1.image_max_pixels=1003520", "image_max_pixels=1003520 differs from the run's frame.max_pixels=262144"),
        ("+overrides.stage2.deepspeed=/nowhere/ds.json", "deepspeed config"),
        ("base_model=/nowhere/model", "does not exist"),
    ],
)
def test_broken_llamafactory_recipes_fail_loudly(compose_run, tmp_path, override, expected):
    problems = check_all(compose_run("default", f"run_dir={tmp_path}", override))
    assert any(expected in p for p in problems["stage1"] + problems["stage2"]), problems


@pytest.mark.parametrize(
    "override, expected",
    [
        ("+overrides.stage3.worker.reward.reward_type=batch", "no longer exists"),
        ("+overrides.stage3.data.prompt_keys=question", "unknown key"),
        ("+overrides.stage3.worker.rollout.n=1", "must be > 1"),
        ("+overrides.stage3.worker.actor.global_batch_size=100", "divisible by worker.actor.global_batch_size"),
        ("+overrides.stage3.worker.actor.micro_batch_size_per_device_for_experience=7", "micro_batch_size_per_device_for_experience"),
        ("+overrides.stage3.data.max_prompt_length=400", "exceeds max_prompt_length"),
        ("+overrides.stage3.worker.rollout.max_num_batched_tokens=1000", "max_num_batched_tokens"),
        ("+overrides.stage3.worker.rollout.tensor_parallel_size=3", "tensor_parallel_size"),
        ("+overrides.stage3.data.format_prompt=/nowhere/format.jinja", "format_prompt"),
        ("+overrides.stage3.worker.reward.reward_function=/nowhere/reward.py:compute_score", "does not exist"),
        ("+overrides.stage3.worker.reward.reward_function=rewards/easyr1_entry.py:nope", "has no function"),
        ("reward.format_weight=2.0", "format_weight"),
        ("+reward.coordinate_capp=0.2", "unknown reward kwargs"),
        ("+overrides.stage3.data.rollout_batch_size=one", "expected"),
    ],
)
def test_broken_easyr1_recipes_fail_loudly(compose_run, tmp_path, override, expected):
    problems = check_all(compose_run("default", f"run_dir={tmp_path}", override))["stage3"]
    assert any(expected in p for p in problems), problems


def test_a_setting_the_trl_backend_cannot_run_is_reported_before_stage_1(compose_run, tmp_path):
    problems = check_all(compose_run("demo", f"run_dir={tmp_path}", "+overrides.stage3.algorithm.adv_estimator=rloo"))
    assert any("grpo_backend=trl cannot run algorithm.adv_estimator='rloo'" in p for p in problems["stage3"]), problems


def test_datasets_must_be_registered_once_data_exists(compose_run, tmp_path):
    cfg = compose_run("default", f"run_dir={tmp_path}")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text(json.dumps({"deepmedix_stage1": {"file_name": "x.jsonl"}}))
    notes = []
    problems = check_all(cfg, notes)
    assert any("x.jsonl does not exist" in p for p in problems["stage1"])
    # before cold start has run, its dataset is a note, not a problem
    assert problems["stage2"] == [] and notes == ["dataset 'deepmedix_cold_start' is produced by cold_start (not there yet)"]


def test_check_stage_refuses_to_launch(compose_run, tmp_path):
    from training.run import run

    with pytest.raises(StageFailed, match="nothing was launched"):
        run(compose_run("default", f"run_dir={tmp_path}", "+overrides.stage3.worker.rollout.n=1", "stage=check"))


def test_a_failing_trainer_names_its_stage_and_log(compose_run, tmp_path):
    cfg = compose_run("default", f"run_dir={tmp_path}")
    with pytest.raises(StageFailed, match=r"stage stage1 failed with exit code 3; its log: .*logs/stage1.log"):
        run_logged("stage1", ["python3", "-c", "print('boom'); raise SystemExit(3)"], cfg)
    assert "boom" in (tmp_path / "logs" / "stage1.log").read_text()


def test_schema_accepts_what_the_recipe_uses(compose_run, tmp_path):
    config, _ = render(compose_run("default", f"run_dir={tmp_path}"), "stage3")
    assert check.schema_problems(config, check.EASYR1_SCHEMA) == []


def test_stage_overrides_from_make_variables():
    from training.run import as_overrides

    assert as_overrides("stage1.size=100 seed=1") == ["stage1.size=100", "seed=1"]
    assert as_overrides(["teacher.kind=offline", "size=32"]) == ["teacher.kind=offline", "size=32"]


def test_ablation_sweep_renders_one_run_per_setting(tmp_path):
    import subprocess
    import sys

    from training.render import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "training.run", "-m", "stage=check", "reward.preset=paper,upstream",
         f"run_dir={tmp_path}/" + "${reward.preset}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    import yaml

    for preset in ("paper", "upstream"):
        rendered = yaml.safe_load((tmp_path / preset / "configs" / "stage3.yaml").read_text())
        assert rendered["worker"]["reward"]["reward_function_kwargs"]["preset"] == preset


def test_a_handed_over_stage2_must_exist(compose_run, tmp_path):
    problems = check_all(compose_run("default", f"run_dir={tmp_path}", f"handover.stage2_dir={tmp_path}/nowhere"))
    assert any("no stage of this run writes it" in p for p in problems["stage3"])
    (tmp_path / "base-stage2").mkdir()
    assert check_all(compose_run("default", f"run_dir={tmp_path}", f"handover.stage2_dir={tmp_path}/base-stage2"))[
        "stage3"] == []
