"""The TRL GRPO backend's rollouts see the image: a policy that never receives the radiograph can
still learn the format and the answers' prior (the demo's GRPO drifts to the majority yes/no), so
the backend's real ``train`` runs one step on a tiny Qwen2.5-VL and the vision tower must have
encoded every rollout prompt's image, at its frame."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from training import grpo_trl, tiny_model
from training.render import render

pytestmark = pytest.mark.slow  # a TRL trainer on CPU: ~20 s


def test_every_rollout_prompt_reaches_the_vision_tower(compose_run, tmp_path, monkeypatch):
    from transformers import AutoModelForImageTextToText

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
    config_path = tmp_path / "stage3.yaml"
    config_path.write_text(OmegaConf.to_yaml(config))

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
