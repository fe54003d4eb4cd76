"""`check-recipes` catches, before any GPU is touched, what would otherwise fail or misbehave on a GPU
node: string booleans, a cutoff too short for the image, EasyR1's per-GPU batch rules, missing
folders, a data build in another frame, online-filtering bounds outside this reward's range."""

import json

import pytest
import yaml

from rewards.deepmedix import RewardConfig
from training import check
from training.render import ROOT, render
from training.run import StageFailed, check_all


def stage_problems(compose_run, tmp_path, *overrides):
    return check_all(compose_run("default", f"run_dir={tmp_path}", *overrides))


@pytest.mark.parametrize(
    "override, stage, expected",
    [
        ("+overrides.stage1.bf16=flase", "stage1", "bf16: expected true or false, got 'flase'"),
        ("+overrides.stage2.do_train=yes please", "stage2", "do_train: expected true or false"),
        ("+overrides.stage3.data.shuffle=flase", "stage3", "data.shuffle: expected"),
        ("+overrides.stage3.worker.actor.padding_free=flase", "stage3", "padding_free: expected"),
    ],
)
def test_string_booleans_are_refused(compose_run, tmp_path, override, stage, expected):
    problems = stage_problems(compose_run, tmp_path, override)[stage]
    assert any(expected in p for p in problems), problems


def test_cutoff_len_must_hold_the_image_and_prompt(compose_run, tmp_path):
    problems = stage_problems(compose_run, tmp_path, "+overrides.stage1.cutoff_len=400")["stage1"]
    assert any("cutoff_len=400 is below an image's up to 334 tokens (max_pixels=262144)" in p for p in problems)
    assert stage_problems(compose_run, tmp_path, "+overrides.stage1.cutoff_len=600")["stage1"] == []


@pytest.mark.parametrize("key", ["worker.actor.loss_type=gspo", "worker.actor.tau_positive=1.0",
                                 "worker.actor.tau_negative=1.05", "trainer.ray_timeline=/tmp/timeline.json"])
def test_easyr1_keys_of_the_pinned_commit_are_accepted(compose_run, tmp_path, key):
    assert stage_problems(compose_run, tmp_path, f"+overrides.stage3.{key}")["stage3"] == []


def test_easyr1_keys_the_pinned_commit_lacks_are_refused(compose_run, tmp_path):
    problems = stage_problems(compose_run, tmp_path, "+overrides.stage3.worker.actor.ulysses_sequence_parallel_size=2")
    assert any("ulysses_sequence_parallel_size: unknown key" in p for p in problems["stage3"]), problems


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["launch.nnodes=3"], "rollout_batch_size (128) must be divisible by the 24 GPUs"),
        (["+overrides.stage3.worker.actor.micro_batch_size_per_device_for_update=3"],
         "(320) over 8 data-parallel GPUs = 40 per GPU, not divisible by micro_batch_size_per_device_for_update (3)"),
        (["+overrides.stage3.worker.actor.fsdp.enable_cpu_offload=true"], "enable_cpu_offload needs no gradient"),
        (["+overrides.stage3.worker.actor.ulysses_size=3"], "ulysses_size (3) must divide the 8 GPUs"),
        (["launch.gpus_per_node=6", "+overrides.stage3.worker.rollout.tensor_parallel_size=4"],
         "must be divisible by rollout.tensor_parallel_size (4)"),
    ],
)
def test_per_gpu_batch_rules_for_the_world_size(compose_run, tmp_path, overrides, expected):
    problems = stage_problems(compose_run, tmp_path, *overrides)["stage3"]
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("gpus", [1, 8, 16])
def test_shipped_grpo_recipe_fits_1_8_and_16_gpus(compose_run, tmp_path, gpus):
    nodes, per_node = (2, 8) if gpus == 16 else (1, gpus)
    config, _ = render(compose_run("default", f"run_dir={tmp_path}", f"launch.nnodes={nodes}",
                                   f"launch.gpus_per_node={per_node}"), "stage3")
    assert check.easyr1_world_problems(config) == []


def test_per_gpu_rules_do_not_apply_to_the_single_process_trl_backend(compose_run, tmp_path):
    assert stage_problems(compose_run, tmp_path, "grpo_backend=trl", "launch.nnodes=3")["stage3"] == []


def test_image_dir_must_exist_unless_the_data_stage_writes_it(compose_run, tmp_path):
    assert stage_problems(compose_run, tmp_path)["stage3"] == []  # data/ not built yet: the data stage writes it
    problems = stage_problems(compose_run, tmp_path, "+overrides.stage3.data.image_dir=/nowhere/images")["stage3"]
    assert "data.image_dir /nowhere/images does not exist" in problems
    config, _ = render(compose_run("default", f"run_dir={tmp_path}"), "stage3")
    assert any("data.image_dir" in p for p in check.easyr1_problems(config))  # at launch nothing is pending


def test_easyr1_dir_is_checked_up_front(compose_run, tmp_path):
    problems = stage_problems(compose_run, tmp_path, "launch.easyr1_dir=/nowhere/EasyR1")["stage3"]
    assert any("launch.easyr1_dir=/nowhere/EasyR1" in p and "model_merger.py does not exist" in p for p in problems)
    checkout = tmp_path / "EasyR1"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / "scripts" / "model_merger.py").write_text("")
    assert stage_problems(compose_run, tmp_path, f"launch.easyr1_dir={checkout}")["stage3"] == []


def test_merging_the_best_checkpoint_needs_a_validation_at_every_save(compose_run, tmp_path):
    """EasyR1 scores each checkpoint with the latest validation reward: one saved between validations
    would be ranked by an earlier step's score."""
    problems = stage_problems(compose_run, tmp_path, "+overrides.stage3.trainer.save_freq=3")["stage3"]
    assert any("save_freq (3) is not a multiple of trainer.val_freq (5)" in p for p in problems)
    assert not any("val_freq" in p for p in stage_problems(compose_run, tmp_path, "+overrides.stage3.trainer.save_freq=10")[
        "stage3"])
    assert not any("val_freq" in p for p in stage_problems(
        compose_run, tmp_path, "+overrides.stage3.trainer.save_freq=3", "merge.checkpoint=last")["stage3"])


def test_a_relative_easyr1_dir_is_checked_where_the_merge_looks(compose_run, tmp_path, monkeypatch):
    """Relative paths of the run config are relative to the repository (training.render.absolute), for the
    check as for the merge stage, whatever the current directory."""
    vendored = ROOT.parent / "shared" / "vendor" / "easyr1-b44b311"
    if not (vendored / "scripts" / "model_merger.py").is_file():
        pytest.skip("the pinned EasyR1 sources are not beside the repository")
    monkeypatch.chdir(tmp_path)
    assert stage_problems(compose_run, tmp_path, "launch.easyr1_dir=../shared/vendor/easyr1-b44b311")["stage3"] == []


def write_manifest(data_dir, max_pixels, min_pixels=3136):
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"config": {"frame": {"min_pixels": min_pixels, "max_pixels": max_pixels}}, "outputs": {}}
    (data_dir / "manifest.json").write_text(json.dumps(manifest))


def test_data_built_in_another_frame_fails_every_stage_check(compose_run, tmp_path):
    write_manifest(tmp_path / "data", max_pixels=12544)
    problems = stage_problems(compose_run, tmp_path)
    for stage in ("stage1", "stage2", "stage3"):
        assert any("built with frame.max_pixels=12544, but this run's frame.max_pixels=262144" in p
                   for p in problems[stage]), (stage, problems[stage])
    write_manifest(tmp_path / "data", max_pixels=262144)
    assert stage_problems(compose_run, tmp_path) == {"stage1": [], "stage2": [], "stage3": []}


@pytest.mark.parametrize("stage", ["stage1", "cold_start", "stage2", "stage3", "eval"])
def test_every_stage_refuses_data_built_in_another_frame(compose_run, tmp_path, monkeypatch, stage):
    import training.run as run_module

    ran = []
    monkeypatch.setitem(run_module.RUNNERS, stage, lambda cfg: ran.append(stage))
    write_manifest(tmp_path / "data", max_pixels=1003520)
    with pytest.raises(StageFailed, match=r"frame.max_pixels=1003520, but this run's frame.max_pixels=262144"):
        run_module.run(compose_run("default", f"run_dir={tmp_path}", f"stage={stage}"))
    assert ran == []


def test_data_args_cannot_override_the_run_frame(compose_run, tmp_path, monkeypatch):
    import training.run as run_module

    override = "data.overrides='frame.max_pixels=12544 stage1.size=100'"  # what DATA_ARGS gives
    problems = stage_problems(compose_run, tmp_path, override)
    assert any("'frame.max_pixels=12544' differs from the run's frame.max_pixels=262144" in p for p in problems["stage1"])
    monkeypatch.setattr(run_module, "run_logged", lambda *args, **kwargs: pytest.fail("the data build ran"))
    cfg = compose_run("default", f"run_dir={tmp_path}", override, f"data_root={tmp_path}", "stage=data")
    with pytest.raises(StageFailed, match="set the run's frame.max_pixels instead"):
        run_module.run(cfg)
    assert check.data_override_problems(["frame.max_pixels=262144", "seed=1"], cfg.frame) == []


def test_online_filtering_bounds_are_set_for_this_reward():
    recipe = yaml.safe_load((ROOT / "recipes/qwen2_5_vl_7b/stage3_grpo.yaml").read_text())
    algorithm = recipe["algorithm"]
    least, most = RewardConfig(**{k: v for k, v in recipe["worker"]["reward"]["reward_function_kwargs"].items()}
                               ).overall_range()
    assert (least, most) == (-0.2, 1.6)
    margin = 0.01 * (most - least)
    assert algorithm["filter_key"] == "overall" and algorithm["online_filtering"] is False
    assert algorithm["filter_low"] == pytest.approx(least + margin) and algorithm["filter_high"] == pytest.approx(most - margin)
    assert recipe["worker"]["rollout"]["limit_images"] == 1


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], None),
        (["+overrides.stage3.algorithm.filter_low=0.01", "+overrides.stage3.algorithm.filter_high=0.99"],
         "EasyR1's defaults (0.01, 0.99)"),
        (["+overrides.stage3.algorithm.filter_high=2.0"], "must lie inside the reward's range [-0.2, 1.6]"),
        (["+overrides.stage3.algorithm.filter_key=accuracy"], "'accuracy' is not a key the reward returns"),
        (["reward.answer_weight=1.0", "+overrides.stage3.algorithm.filter_high=1.582"], "[-0.2, 1.15]"),
    ],
)
def test_online_filtering_is_checked_against_the_reward(compose_run, tmp_path, overrides, expected):
    problems = stage_problems(compose_run, tmp_path, "+overrides.stage3.algorithm.online_filtering=true",
                              *overrides)["stage3"]
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems
