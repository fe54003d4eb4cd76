"""eval.infer's resume: it never deletes predictions and never mixes two setups' answers (no model
needed: every check runs before the model is loaded; tests/eval/test_infer.py runs the real thing)."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from eval.infer import check_resume, infer, run_provenance
from eval.jsonl import JsonlError
from eval.predictions import PredictionsFileError
from rewards.settings import ConfigValueError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(tmp_path):
    (tmp_path / "data" / "test").mkdir(parents=True)
    items = [{"id": f"item-{i}", "source": "mimic-ext-vqa", "task": "vqa", "images": [f"images/{i}.jpg"],
              "prompt": "Is there an effusion?", "answer": "yes"} for i in range(5)]
    items_file = tmp_path / "data" / "test" / "items.jsonl"
    items_file.write_text("".join(json.dumps(item) + "\n" for item in items))
    return tmp_path, items_file


def config(tmp_path, items_file, **extra):
    base = OmegaConf.load(ROOT / "recipes" / "eval" / "xraybench.yaml")
    base.pop("hydra")
    return OmegaConf.merge(base, {"model": str(tmp_path / "no-model-here"), "items_file": str(items_file),
                                  "out": str(tmp_path / "predictions.jsonl")}, extra)


def write_rows(out: Path, provenance: dict | None, ids=range(3)) -> bytes:
    rows = [{"id": f"item-{i}", "dataset": "mimic-ext-vqa", "task": "vqa", "prediction": "yes", "reference": "yes",
             **({"provenance": provenance} if provenance is not None else {})} for i in ids]
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    out.write_bytes(data)
    return data


@pytest.mark.parametrize("change, named", [
    ({"model": "another/model"}, "model: "),
    ({"sampling": {"seed": 1}}, "sampling: "),
    ({"sampling": {"temperature": 0.0}}, "sampling: "),
    ({"reasoning_format": False}, "reasoning_format: True in the file, False now"),
    ({"backend": "vllm"}, "backend: 'hf' in the file, 'vllm' now"),
])
def test_a_resume_with_another_setup_is_refused_before_anything_runs(world, change, named):
    """Issue 16.3: rerunning with another model or sampling kept the old model's rows, exit 0."""
    tmp_path, items_file = world
    out = tmp_path / "predictions.jsonl"
    data = write_rows(out, run_provenance(config(tmp_path, items_file)))
    with pytest.raises(PredictionsFileError, match="will not resume") as error:
        infer(config(tmp_path, items_file, **change))
    assert named in str(error.value) and out.read_bytes() == data


def test_a_changed_items_file_or_a_file_without_provenance_is_refused(world):
    tmp_path, items_file = world
    out = tmp_path / "predictions.jsonl"
    write_rows(out, run_provenance(config(tmp_path, items_file)))
    items_file.write_text(items_file.read_text().replace("effusion", "pneumothorax"))
    with pytest.raises(PredictionsFileError, match="items_sha256: "):
        infer(config(tmp_path, items_file))
    data = write_rows(out, None)
    with pytest.raises(PredictionsFileError, match="records no provenance"):
        infer(config(tmp_path, items_file))
    assert out.read_bytes() == data


def test_the_same_setup_passes_the_checks_and_limit_is_not_part_of_it(world):
    tmp_path, items_file = world
    out = tmp_path / "predictions.jsonl"
    write_rows(out, run_provenance(config(tmp_path, items_file, limit=2, batch_size=1)))
    check_resume(out, run_provenance(config(tmp_path, items_file)))  # no error


def test_resume_stops_at_a_damaged_line_without_changing_the_file(world):
    """Issue 16.1: a bad line in the middle was taken as the end of the file and everything after it cut."""
    tmp_path, items_file = world
    out = tmp_path / "predictions.jsonl"
    data = write_rows(out, run_provenance(config(tmp_path, items_file)))
    damaged = data.replace(b"\n", b"\n\x00garbage\n", 1)
    out.write_bytes(damaged)
    with pytest.raises(PredictionsFileError, match=r"predictions.jsonl:2: not valid JSON"):
        infer(config(tmp_path, items_file))
    assert out.read_bytes() == damaged


def test_damaged_items_and_string_booleans_are_refused(world):
    tmp_path, items_file = world
    with pytest.raises(ConfigValueError, match="reasoning_format must be true or false, got 'no'"):
        infer(config(tmp_path, items_file, reasoning_format="no"))
    items_file.write_text(items_file.read_text() + '{"id": "item-0"}\n\n{"id": "item-9", \n')
    with pytest.raises(JsonlError, match=r"(?s)2 bad line.*items.jsonl:6: missing.*items.jsonl:8: not valid JSON") as error:
        infer(config(tmp_path, items_file))
    assert "nothing was changed" in str(error.value)


def test_a_second_run_into_the_same_file_is_refused_while_the_first_writes(world):
    from eval.predictions import PredictionWriter

    tmp_path, items_file = world
    out = tmp_path / "predictions.jsonl"
    data = write_rows(out, run_provenance(config(tmp_path, items_file)))
    first = PredictionWriter(out)  # a run in progress
    try:
        with pytest.raises(PredictionsFileError, match="another run is writing to this file now"):
            infer(config(tmp_path, items_file))
        with pytest.raises(PredictionsFileError, match="another run is writing"):
            PredictionWriter(out)
    finally:
        first.close()
    assert out.read_bytes() == data
    check_resume(out, run_provenance(config(tmp_path, items_file)))  # free again
