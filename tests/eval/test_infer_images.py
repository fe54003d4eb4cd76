"""eval.infer checks every image it will need before the model loads: a missing one is an error naming
it and image_root, not a FileNotFoundError traceback hours into the run, after part of the file."""

import json

import pytest
from omegaconf import OmegaConf
from PIL import Image

from eval.infer import ROOT, infer
from eval.jsonl import JsonlError


def test_missing_images_are_named_before_anything_runs(tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "test").mkdir()
    items = [{"id": f"item-{i}", "source": "mimic-ext-vqa", "task": "vqa", "images": [f"images/{i}.jpg"],
              "prompt": "Is there an effusion?", "answer": "yes"} for i in range(4)]
    for i in range(3):  # images/3.jpg is missing
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / "images" / f"{i}.jpg")
    items_file = tmp_path / "data" / "test" / "items.jsonl"
    items_file.write_text("".join(json.dumps(item) + "\n" for item in items))
    base = OmegaConf.load(ROOT / "recipes" / "eval" / "xraybench.yaml")
    base.pop("hydra")
    cfg = OmegaConf.merge(base, {"model": str(tmp_path / "no-model-here"), "items_file": str(items_file),
                                 "out": str(tmp_path / "predictions.jsonl")})
    with pytest.raises(JsonlError, match=r"1 item\(s\) point at images .*images/3.jpg.*image_root="):
        infer(cfg)
    assert not (tmp_path / "predictions.jsonl").exists()


@pytest.mark.parametrize("override, message", [
    ({"limit": -1}, "limit must be an integer >= 1 or null, got -1"),
    ({"limit": 0}, "limit must be an integer >= 1 or null"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"sampling": {"max_new_tokens": True}}, "sampling.max_new_tokens must be an integer >= 1"),
    ({"shard": 2, "shards": 2}, "shard must be an integer in 0..1, got 2"),
])
def test_counts_are_checked_before_anything_runs(tmp_path, override, message):
    """limit=-1 ran every item but the last, silently; batch_size=0 failed deep inside."""
    from rewards.settings import ConfigValueError

    base = OmegaConf.load(ROOT / "recipes" / "eval" / "xraybench.yaml")
    base.pop("hydra")
    cfg = OmegaConf.merge(base, {"model": "m", "items_file": str(tmp_path / "items.jsonl"),
                                 "out": str(tmp_path / "p.jsonl")}, override)
    with pytest.raises(ConfigValueError, match=message):
        infer(cfg)


def test_the_data_parallel_launcher_names_a_missing_items_file(tmp_path):
    """It hashed the items file for the provenance first: a FileNotFoundError traceback."""
    from eval.infer import infer_data_parallel

    base = OmegaConf.load(ROOT / "recipes" / "eval" / "xraybench.yaml")
    base.pop("hydra")
    cfg = OmegaConf.merge(base, {"model": "m", "items_file": str(tmp_path / "gone.jsonl"),
                                 "out": str(tmp_path / "p.jsonl"), "data_parallel": 2})
    with pytest.raises(JsonlError, match="gone.jsonl: the evaluation items file does not exist"):
        infer_data_parallel(cfg, [])
