"""Inference with the tiny Qwen2.5-VL on CPU: resume after a kill, and data-parallel shards."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from eval.infer import infer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from training.tiny_model import build

    root = tmp_path_factory.mktemp("infer")
    model = build(root / "model")
    (root / "data" / "images").mkdir(parents=True)
    items = []
    for i in range(7):
        Image.effect_noise((112, 84), 30).save(root / "data" / "images" / f"{i}.jpg")
        task = "findings" if i % 2 else "vqa"
        items.append({"id": f"item-{i}", "source": "mimic-cxr" if task == "findings" else "mimic-ext-vqa", "task": task,
                      "subtype": "presence" if task == "vqa" else "findings", "images": [f"images/{i}.jpg"],
                      "prompt": "Is there an effusion?" if task == "vqa" else "Describe the findings.",
                      "answer": "yes" if task == "vqa" else "Lungs are clear.", "answer_kind": "closed"})
    (root / "data" / "test").mkdir()
    items_file = root / "data" / "test" / "items.jsonl"
    items_file.write_text("".join(json.dumps(item) + "\n" for item in items))
    return root, model, items_file


def config(model, items_file, out, **extra):
    base = OmegaConf.load(ROOT / "recipes" / "eval" / "xraybench.yaml")
    base.pop("hydra")
    return OmegaConf.merge(base, {"model": str(model), "items_file": str(items_file), "out": str(out),
                                  "batch_size": 3, "sampling": {"max_new_tokens": 6}}, extra)


def test_killed_run_resumes_without_duplicates(setup):
    root, model, items_file = setup
    out = root / "resume" / "predictions.jsonl"
    first = infer(config(model, items_file, out, limit=4))
    assert first["generated"] == 4
    with out.open("ab") as handle:
        handle.write(b'{"id": "item-4", "datas')  # killed while writing item 4
    second = infer(config(model, items_file, out))
    assert second["already_done"] == 4 and second["generated"] == 3
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == [f"item-{i}" for i in range(7)] and len(ids) == len(set(ids))
    assert infer(config(model, items_file, out))["generated"] == 0
    row = json.loads(out.read_text().splitlines()[0])
    assert {"id", "dataset", "task", "prediction", "reference", "raw_output", "reasoning", "boxes"} <= set(row)


def test_data_parallel_shards_merge_in_item_order(setup):
    root, model, items_file = setup
    out = root / "parallel" / "predictions.jsonl"
    result = subprocess.run([sys.executable, "-m", "eval.infer", f"model={model}", f"items_file={items_file}",
                             f"out={out}", "data_parallel=2", "sampling.max_new_tokens=4", "batch_size=2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [f"item-{i}" for i in range(7)]
    assert (out.parent / "predictions.jsonl.shard0-of-2").exists() and (out.parent / "predictions.jsonl.shard1-of-2").exists()


def test_rows_record_their_provenance_and_another_setup_is_refused(setup):
    from eval.infer import run_provenance
    from eval.predictions import PredictionsFileError

    root, model, items_file = setup
    out = root / "provenance" / "predictions.jsonl"
    infer(config(model, items_file, out, limit=2))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["provenance"] for row in rows] == [run_provenance(config(model, items_file, out))] * 2
    before = out.read_bytes()
    with pytest.raises(PredictionsFileError, match="sampling: "):
        infer(config(model, items_file, out, sampling={"seed": 1}))
    assert out.read_bytes() == before
