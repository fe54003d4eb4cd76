import yaml

from training.render import ROOT, render


def test_stages_hand_over_and_share_frame_and_reward(compose_run, tmp_path):
    cfg = compose_run("default", f"run_dir={tmp_path}", "reward.format_weight=0.3", "frame.max_pixels=200704",
                      "+overrides.stage1.learning_rate=2.0e-5", "+overrides.stage3.worker.rollout.n=8")
    stage1, path1 = render(cfg, "stage1")
    stage2, _ = render(cfg, "stage2")
    stage3, path3 = render(cfg, "stage3")
    assert stage1["model_name_or_path"] == "Qwen/Qwen2.5-VL-7B-Instruct"  # a hub id stays a hub id
    assert stage2["model_name_or_path"] == str(tmp_path / "stage1") == stage1["output_dir"]
    assert stage3["worker"]["actor"]["model"]["model_path"] == str(tmp_path / "stage2") == stage2["output_dir"]
    assert stage1["image_max_pixels"] == stage2["image_max_pixels"] == stage3["data"]["max_pixels"] == 200704
    assert stage1["learning_rate"] == 2.0e-5 and stage3["worker"]["rollout"]["n"] == 8
    reward = stage3["worker"]["reward"]
    assert reward["reward_function"] == f"{ROOT}/rewards/easyr1_entry.py:compute_score"
    assert reward["reward_function_kwargs"]["format_weight"] == 0.3
    assert stage3["data"]["format_prompt"] == str(ROOT / "recipes" / "prompts" / "xray_format.jinja")
    assert stage1["deepspeed"] == str(ROOT / "recipes" / "deepspeed" / "ds_z3_config.json")
    assert yaml.safe_load(path1.read_text()) == stage1 and yaml.safe_load(path3.read_text()) == stage3


def test_every_recipe_opens_with_its_launch_command():
    for recipe in sorted((ROOT / "recipes" / "qwen2_5_vl_7b").glob("*.yaml")):
        head = recipe.read_text().splitlines()[:4]
        assert head[0].startswith("# Stage") and any("make stage" in line for line in head), recipe
