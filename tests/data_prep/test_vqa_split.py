"""XrayBench's VQA items come from each VQA release's own test split, not from MIMIC's test patients."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from data_prep import medical_cxr_vqa, mimic_ext_vqa
from data_prep.build import build
from data_prep.records import SkipLog
from tests.data_prep.test_parsers_unit import DICOM, mimic_index


def ext_record(idx: int) -> dict:
    return {"split": "test", "idx": idx, "subject_id": "10000032", "study_id": "50414267", "image_id": DICOM,
            "image_path": f"p10/p10000032/s50414267/{DICOM}.jpg", "question": "Is there edema?",
            "semantic_type": "verify", "content_type": "presence", "template": "t", "template_program": "program_1",
            "template_arguments": {}, "answer": ["no"]}


def test_ext_vqa_takes_the_split_of_its_file(tmp_path):
    (tmp_path / "dataset").mkdir()
    for name in ("train", "valid", "test"):
        (tmp_path / "dataset" / f"{name}.json").write_text(json.dumps([ext_record(0)]))
    kinds = {"presence": "multi_object"}
    samples = mimic_ext_vqa.vqa_samples(tmp_path, mimic_index(split="train"), kinds, SkipLog())
    assert {s.sample_id.split("/")[1]: s.split for s in samples} == {"train": "train", "valid": "validate", "test": "test"}
    by_mimic = mimic_ext_vqa.vqa_samples(tmp_path, mimic_index(split="train"), kinds, SkipLog(), split="mimic")
    assert {s.split for s in by_mimic} == {"train"}


def test_medical_cxr_vqa_takes_its_split_column(tmp_path):
    header = "subject_id,study_id,dicom_id,question_type,question,answer,split\n"
    rows = [f"10000032,50414267,{DICOM},view,which view?,postero-anterior,{label}\n" for label in ("Test", "val", "odd")]
    (tmp_path / "medical-cxr-vqa-questions.csv").write_text(header + "".join(rows))
    skips = SkipLog()
    samples = medical_cxr_vqa.vqa_samples(tmp_path, mimic_index(split="train"), {"view": "closed"}, skips)
    assert [s.split for s in samples] == ["test", "validate"]
    assert skips.counts()["medical-cxr-vqa"] == {"unknown_split_label": 1}
    assert {s.split for s in medical_cxr_vqa.vqa_samples(tmp_path, mimic_index(split="train"), {"view": "closed"},
                                                         SkipLog(), split="mimic")} == {"train"}
    (tmp_path / "medical-cxr-vqa-questions.csv").write_text(header.replace(",split", "") + rows[0].rsplit(",", 1)[0])
    with pytest.raises(ValueError, match="split"):
        medical_cxr_vqa.vqa_samples(tmp_path, mimic_index(), {"view": "closed"}, SkipLog())


def test_rebuilt_xraybench_draws_vqa_from_the_release_test_split(releases, tmp_path, make_config):
    """Move Ext-VQA questions of MIMIC *training* patients into its test file (as in the real
    release, whose gold test patients are not MIMIC's test patients): XrayBench takes them, and
    those patients leave every training output."""
    root = tmp_path / "releases"
    shutil.copytree(releases[0], root)
    dataset = root / "mimic-ext-mimic-cxr-vqa" / "dataset"
    train, test = (json.loads((dataset / f"{name}.json").read_text()) for name in ("train", "test"))
    moved_subjects = sorted({r["subject_id"] for r in train})[:2]
    moved = [dict(r, split="test") for r in train if r["subject_id"] in moved_subjects]
    (dataset / "train.json").write_text(json.dumps([r for r in train if r["subject_id"] not in moved_subjects], indent=4))
    (dataset / "test.json").write_text(json.dumps(test + moved, indent=4))
    out = tmp_path / "out"
    build(make_config(root, out, "xraybench.scale=1"))
    items = [json.loads(line) for line in (out / "test" / "xraybench.jsonl").read_text().splitlines()]
    ext = [item for item in items if item["source"] == "mimic-ext-vqa"]
    assert ext and all(item["id"].startswith("mimic-ext-vqa/test/") for item in ext)
    drawn_moved = {item["id"] for item in ext} & {f"mimic-ext-vqa/test/{len(test) + k}" for k in range(len(moved))}
    assert drawn_moved, "no question of a MIMIC training patient was drawn from the release's test file"
    training = [row for name in ("grpo/train.parquet", "grpo/val.parquet", "cold_start/candidates.parquet")
                for row in pq.read_table(out / name).to_pylist()]
    training_images = {image for row in training for image in row["images"]}
    training_images |= {image for line in (out / "stage1" / "train.jsonl").read_text().splitlines()
                        for image in json.loads(line)["images"]}
    for subject in moved_subjects:
        assert not any(f"/p{subject}/" in image for image in training_images), subject
