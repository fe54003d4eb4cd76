"""One real step of the TRL GRPO backend on a tiny Qwen2.5-VL: its rollouts see the image, and the
recipe's ``freeze_vision_tower`` holds.

A policy that never receives the radiograph can still learn the format and the answers' prior (the
demo's GRPO drifts to the majority yes/no), so the vision tower must encode every rollout prompt's
image, at its frame. EasyR1 reads ``worker.actor.model.freeze_vision_tower``; a backend that dropped
it would train a tower the recipe froze."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from training import grpo_trl, tiny_model
from training.render import render

pytestmark = pytest.mark.slow  # a TRL trainer on CPU: ~20 s a test


def one_step_config(compose_run, tmp_path, **actor_model):
    """A rendered demo stage-3 config for one GRPO step of 2 prompts x 2 rollouts on a tiny model."""
    model_dir = tiny_model.build(tmp_path / "tiny", min_pixels=3136, max_pixels=12544)
    data_dir = tmp_path / "data"
    (data_dir / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for name in ("a", "b"):
        pixels = rng.integers(0, 255, (336, 336), dtype=np.uint8)
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(data_dir / "images" / f"{name}.png")
        truth = {"answer": "yes", "frame": {"height": 112, "width": 112}, "task": "closed", "sample_id": name}
        rows.append({"prompt": "<image>Is there cardiomegaly in this chest X-ray? Answer yes or no.",
                     "images": [f"images/{name}.png"], "answer": json.dumps(truth), "sample_id": name})
    (data_dir / "grpo").mkdir()
    pd.DataFrame(rows).to_parquet(data_dir / "grpo" / "train.parquet")
    cfg = compose_run("demo", f"run_dir={tmp_path / 'run'}", f"data_dir={data_dir}", f"handover.stage2_dir={model_dir}")
    config = OmegaConf.create(render(cfg, "stage3")[0])
    config.worker.rollout.n = 2
    config.worker.actor.global_batch_size = config.data.rollout_batch_size = 2
    config.data.max_response_length = 8
    config.trainer.max_steps = 1
    for key, value in actor_model.items():
        config.worker.actor.model[key] = value
    config_path = tmp_path / "stage3.yaml"
    config_path.write_text(OmegaConf.to_yaml(config))
    return config_path, model_dir


def test_every_rollout_prompt_reaches_the_vision_tower(compose_run, tmp_path, monkeypatch):
    from transformers import AutoModelForImageTextToText

    config_path, _ = one_step_config(compose_run, tmp_path)
    seen = []  # the image grids the vision tower encoded
    load = AutoModelForImageTextToText.from_pretrained

    def load_and_watch(*args, **kwargs):
        model = load(*args, **kwargs)
        def record(module, args, kwargs):
            grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
            seen.append(None if grid is None else grid.tolist())

        model.model.visual.register_forward_pre_hook(record, with_kwargs=True)
        return model

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", load_and_watch)
    summary = grpo_trl.train(config_path, tmp_path / "out")
    assert summary["steps"] == 1
    grids = [grid for call in seen if call for grid in call]
    # 2 prompts x 2 rollouts, each with its 112 x 112 image (a 1 x 8 x 8 grid of 14-pixel patches),
    # in generation and again in the policy's forward pass
    assert len(grids) >= 4 and all(grid == [1, 8, 8] for grid in grids), seen


@pytest.mark.parametrize("frozen", [True, False])
def test_freeze_vision_tower_holds_the_towers_weights(compose_run, tmp_path, monkeypatch, frozen):
    from safetensors.torch import load_file

    config_path, model_dir = one_step_config(compose_run, tmp_path, freeze_vision_tower=frozen)
    config = OmegaConf.load(config_path)
    config.worker.actor.optim.lr = 1e-2  # one step must visibly move whatever trains
    config.algorithm.kl_coef = 0.0
    OmegaConf.save(config, config_path)
    # a reward that differs within each group, so that the step has an advantage to follow
    import rewards.trl_adapter as adapter
    wrap = adapter.easyr1_reward_as_trl

    def varied(function, **kwargs):
        score = wrap(function, **kwargs)
        def reward(*args, **inner):
            return [float(i % 2) for i in range(len(score(*args, **inner)))]
        reward.__name__ = score.__name__
        return reward

    monkeypatch.setattr(adapter, "easyr1_reward_as_trl", varied)
    grpo_trl.train(config_path, tmp_path / "out")
    before, after = load_file(model_dir / "model.safetensors"), load_file(tmp_path / "out" / "model.safetensors")
    vision = [name for name in before if ".visual." in name or name.startswith("visual.")]
    language = [name for name in before if name not in vision and ("language_model" in name or ".layers." in name)]
    assert vision and language
    assert any(not torch.equal(before[name], after[name]) for name in language)  # the step trained
    tower_moved = any(not torch.equal(before[name], after[name]) for name in vision)
    assert tower_moved is not frozen


def test_freeze_vision_tower_refuses_a_model_without_one():
    with pytest.raises(ValueError, match="no vision tower"):
        grpo_trl.freeze_vision_tower(torch.nn.Linear(2, 2))
