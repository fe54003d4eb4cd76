"""The whole build on generated releases: outputs, guarantees (leakage, determinism, skips)."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from data_prep.build import LeakageError, SkipRateError, build
from data_prep.fixtures import generate_releases
from data_prep.mimic_cxr import load as load_mimic
from data_prep.mimic_cxr import report_samples
from data_prep.records import SkipLog, SourceMissingError
from rewards.__main__ import ground_truth_problem
from rewards.ground_truth import parse_ground_truth

def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def subject_of(image: str) -> str | None:
    match = re.search(r"/p\d{2}/p(\d{8})/", image)
    return match.group(1) if match else None


def test_sections_match_what_the_reports_say(releases):
    root, truth = releases
    skips = SkipLog()
    index = load_mimic(root / "mimic-cxr-jpg", root / "mimic-cxr-reports", ["PA", "AP"], skips)
    found = {(s.task, s.sample_id.rsplit("/s", 1)[1]): s.answer for s in report_samples(index, "___", skips)}
    checked = 0
    for study, expected in truth["mimic"].items():
        if study not in index.frontal_by_study:
            continue
        for task in ("findings", "impression"):
            assert found.get((task, study), "") == expected[task], (study, expected["variant"], task)
            checked += 1
    assert checked >= 20


def test_reports_from_tree_and_zip_agree(tmp_path):
    zipped, tree = tmp_path / "zip", tmp_path / "tree"
    generate_releases(zipped, seed=3, subjects=6)
    generate_releases(tree, seed=3, subjects=6, reports_as="tree")

    def samples(root):
        skips = SkipLog()
        index = load_mimic(root / "mimic-cxr-jpg", root / "mimic-cxr-reports", ["PA", "AP"], skips)
        return [(s.sample_id, s.answer) for s in report_samples(index, "___", skips)]

    assert samples(zipped) == samples(tree) and samples(zipped)


def test_stage1_is_a_llamafactory_sharegpt_dataset(built):
    out, manifest = built
    info = json.loads((out / "dataset_info.json").read_text())
    entry = info["deepmedix_stage1"]
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "images": "images"}
    rows = read_jsonl(out / entry["file_name"])
    assert len(rows) == manifest["outputs"]["stage1/train.jsonl"]["rows"] > 0
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant" and assistant["content"].strip()
        assert user["content"].count("<image>") == len(row["images"]) == 1
        assert (out / row["images"][0]).is_file()
    tasks = manifest["outputs"]["stage1/train.jsonl"]["by_task"]
    assert {"findings", "impression", "vqa", "grounding_phrase_to_box", "grounding_box_to_phrase"} <= set(tasks)


def test_grpo_rows_carry_valid_ground_truths_in_the_image_frame(built):
    out, _ = built
    for split in ("train", "val"):
        rows = pq.read_table(out / "grpo" / f"{split}.parquet").to_pylist()
        assert rows
        for row in rows:
            assert row["prompt"].count("<image>") == len(row["images"]) == 1
            assert ground_truth_problem(row["answer"], allow_plain=False) is None
            truth = parse_ground_truth(row["answer"])
            with Image.open(out / row["images"][0]) as image:
                assert image.size == (truth.frame.width, truth.frame.height)
                assert truth.frame.width % 28 == 0 and truth.frame.height % 28 == 0
            for x1, y1, x2, y2 in truth.boxes:
                assert 0 <= x1 < x2 <= truth.frame.width and 0 <= y1 < y2 <= truth.frame.height


def test_ms_cxr_boxes_are_scaled_into_the_frame(built, releases):
    out, _ = built
    root, truth = releases
    grounded = [parse_ground_truth(r["answer"]) for r in pq.read_table(out / "grpo" / "train.parquet").to_pylist()]
    grounded = [t for t in grounded if t.boxes]
    assert grounded, "no grounding sample reached GRPO"
    rows = {}
    for line in (root / "ms-cxr" / "MS_CXR_Local_Alignment_v1.1.0.csv").read_text().splitlines()[1:]:
        fields = line.split(",")
        rows.setdefault(fields[0], []).append(fields)
    for t in grounded:
        dicom = t.sample_id.split("/")[1]
        width, height = truth["mimic"][next(s for s, m in truth["mimic"].items() if dicom in m["image_sizes"])]["image_sizes"][dicom]
        expected = {
            (round(float(f[-7]) * t.frame.width / width, 2), round(float(f[-6]) * t.frame.height / height, 2))
            for f in rows[dicom]
        }
        assert {(b[0], b[1]) for b in t.boxes} <= expected


def test_no_evaluation_patient_in_any_training_output(built, releases):
    out, manifest = built
    _, truth = releases
    evaluation = {subject_of(item["images"][0]) for item in read_jsonl(out / "test" / "xraybench.jsonl")}
    evaluation.discard(None)
    training = {subject_of(r["images"][0]) for r in read_jsonl(out / "stage1" / "train.jsonl")}
    for name in ("grpo/train", "grpo/val", "cold_start/candidates"):
        training |= {subject_of(r["images"][0]) for r in pq.read_table(out / f"{name}.parquet").to_pylist()}
    assert evaluation and not (evaluation & training)
    assert not (set(truth["test_subjects"]) & training)  # no MIMIC test patient at all
    leaky = set(truth["ms_cxr"]["leaky_dicom_ids"])  # MS-CXR "train" rows on MIMIC test patients
    assert not any(Path(r["images"][0]).stem in leaky for r in read_jsonl(out / "stage1" / "train.jsonl"))
    assert manifest["leakage_check"]["overlap"] == 0


def test_xraybench_follows_the_paper_composition(built):
    out, manifest = built
    items = read_jsonl(out / "test" / "xraybench.jsonl")
    counts = {}
    for item in items:
        counts[(item["source"], item["subtype"])] = counts.get((item["source"], item["subtype"]), 0) + 1
    composition = {(r["source"], r["subtype"]): round(r["count"] * 0.01) for r in manifest["config"]["xraybench"]["composition"]}
    shortfalls = {(s["source"], s["subtype"]): s["drawn"] for s in manifest["outputs"]["test/xraybench.jsonl"]["shortfalls"]}
    for key, target in composition.items():
        assert counts.get(key, 0) == shortfalls.get(key, target), key
    assert all(ground_truth_problem(item["ground_truth"], allow_plain=False) is None for item in items)


def test_every_fault_is_a_counted_skip(built, releases):
    out, manifest = built
    _, truth = releases
    skipped = read_jsonl(out / "skipped.jsonl")
    reasons = {row["reason"] for row in skipped}
    assert {"missing_image", "unreadable_image", "box_outside_image", "unknown_question_type", "malformed_row"} <= reasons
    truncated = next(f["id"] for f in truth["faults"] if f["kind"] == "truncated_image")
    assert any(truncated in row["item"] and row["reason"] == "unreadable_image" for row in skipped)
    assert manifest["skipped"]["ms-cxr"]["box_outside_image"] == 1


def test_manifest_hashes_every_output(built):
    out, manifest = built
    from data_prep.writers import sha256_of

    for name, digest in manifest["sha256"].items():
        assert sha256_of(out / name) == digest
    listed = (out / "images" / "SHA256SUMS").read_text().splitlines()
    assert len(listed) == manifest["images"]["prepared"]


def test_two_builds_are_byte_identical(releases, tmp_path, make_config):
    first, second = tmp_path / "a", tmp_path / "b"
    build(make_config(releases[0], first))
    build(make_config(releases[0], second, "images.workers=2"))
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file() and "logs" not in p.parts)
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file() and "logs" not in p.parts)
    for name in files:
        if name.name != "manifest.json":
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
    manifest_a, manifest_b = (json.loads((d / "manifest.json").read_text()) for d in (first, second))
    assert manifest_a["sha256"] == manifest_b["sha256"]


def test_the_test_set_size_leaves_the_training_files_as_they_are(releases, tmp_path, make_config):
    """A larger XrayBench draw (the demo's held-out set) re-measures the same trained models: the
    training files must not depend on it."""
    small, large = tmp_path / "small", tmp_path / "large"
    build(make_config(releases[0], small))
    build(make_config(releases[0], large, "xraybench.scale=0.05"))
    assert len(read_jsonl(large / "test" / "xraybench.jsonl")) > len(read_jsonl(small / "test" / "xraybench.jsonl"))
    for name in ("stage1/train.jsonl", "grpo/train.parquet", "grpo/val.parquet", "cold_start/candidates.parquet"):
        assert (small / name).read_bytes() == (large / name).read_bytes(), name


def test_a_rerun_resumes_without_rewriting_images(releases, tmp_path, make_config):
    out = tmp_path / "out"
    build(make_config(releases[0], out))
    stamps = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.jpg")}
    build(make_config(releases[0], out))
    assert stamps and all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())


def test_missing_sources_are_skipped_with_a_message(releases, tmp_path, make_config):
    partial = tmp_path / "partial"
    shutil.copytree(releases[0] / "openi", partial / "openi")
    manifest = build(make_config(partial, tmp_path / "out"))
    assert manifest["sources"]["openi"].startswith("used")
    assert manifest["sources"]["mimic_cxr_jpg"].startswith("missing")
    assert manifest["outputs"]["grpo/train.parquet"]["by_source"] == {"openi": manifest["outputs"]["grpo/train.parquet"]["rows"]}


def test_missing_root_or_release_file_is_a_clear_error(releases, tmp_path, make_config):
    with pytest.raises(SourceMissingError, match="does not exist"):
        build(make_config(tmp_path / "nowhere", tmp_path / "out"))
    broken = tmp_path / "broken"
    shutil.copytree(releases[0] / "mimic-cxr-jpg", broken / "mimic-cxr-jpg")
    (broken / "mimic-cxr-jpg" / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    with pytest.raises(SourceMissingError, match="split.csv.gz is missing"):
        build(make_config(broken, tmp_path / "out"))


def test_a_high_skip_rate_stops_the_build(releases, tmp_path, make_config):
    with pytest.raises(SkipRateError, match="max_skip_fraction"):
        build(make_config(releases[0], tmp_path / "out", "max_skip_fraction=0.0"))
    assert (tmp_path / "out" / "skipped.jsonl").exists()  # the reasons are written before stopping


def test_local_xraybench_patients_are_kept_out_of_training(releases, tmp_path, make_config):
    root, truth = releases
    # A study with both sections, not of the first or last train patient with a frontal image: the
    # fixtures fault those (a missing and a truncated image), which would drop the patient's report
    # samples before the leakage check.
    frontal = [s for s, m in truth["mimic"].items() if m["split"] == "train" and m["frontal_dicom_ids"]]
    faulted = {truth["mimic"][frontal[0]]["subject_id"], truth["mimic"][frontal[-1]]["subject_id"]}
    train_study = next(s for s in frontal if truth["mimic"][s]["findings"] and truth["mimic"][s]["impression"]
                       and truth["mimic"][s]["subject_id"] not in faulted)
    study = truth["mimic"][train_study]
    subject = study["subject_id"]
    image = f"../mimic-cxr-jpg/files/p{subject[:2]}/p{subject}/s{train_study}/{study['frontal_dicom_ids'][0]}.jpg"
    local = root / "xraybench"
    local.mkdir(exist_ok=True)
    row = {"images": [image], "problem": "<image>Q?", "answer": "yes", "dataset": "Ext-VQA", "type": "presence"}
    (local / "test.jsonl").write_text(json.dumps(row) + "\n")
    try:
        out = tmp_path / "out"
        manifest = build(make_config(root, out, "xraybench.mode=local", "xraybench.columns.source=dataset",
                                     "xraybench.columns.question_type=type"))
    finally:
        shutil.rmtree(local)
    assert manifest["skipped"]["mimic-cxr"].get("patient_in_evaluation_set", 0) >= 1
    training = {subject_of(r["images"][0]) for r in read_jsonl(out / "stage1" / "train.jsonl")}
    assert subject not in training


def test_the_leakage_guard_itself_fires(releases, tmp_path, monkeypatch, make_config):
    import data_prep.build as build_module

    real_pools = build_module.task_pools
    monkeypatch.setattr(build_module, "task_pools", lambda samples, split, expand: real_pools(
        [dataclasses.replace(s, split="train") for s in samples], "train", expand))
    with pytest.raises(LeakageError, match="evaluation patients"):
        build(make_config(releases[0], tmp_path / "out"))


def test_images_index_maps_back_to_originals(built):
    out, _ = built
    rows = read_jsonl(out / "images" / "index.jsonl")
    assert rows
    for row in rows[:10]:
        with Image.open(out / row["path"]) as image:
            assert list(image.size) == row["frame"]
        assert row["original"].startswith(("mimic-cxr-jpg/files/", "openi/images/"))


def test_command_line_entry_with_the_demo_layer(releases, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "demo-data"
    result = subprocess.run(
        [sys.executable, "-m", "data_prep.build", "--config-name", "demo", f"data_root={releases[0]}",
         f"out_dir={out}", "images.workers=0"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout[re.search(r"^\{$", result.stdout, re.M).start():])  # after the log lines
    assert summary["rows"]["grpo/train.parquet"] > 0 and (out / "manifest.json").exists()
    demo = yaml.safe_load((Path(__file__).resolve().parents[2] / "recipes" / "data" / "demo.yaml").read_text())
    assert json.loads((out / "manifest.json").read_text())["config"]["stage1"]["size"] == demo["stage1"]["size"]
    sizes = summary["sizes (achieved/target)"]["stage1/train.jsonl"]  # target vs achieved, and why
    assert sizes["target"] == demo["stage1"]["size"] and "grounding_phrase_to_box" in sizes["by_task"]
    assert any("capped" in line for line in summary["warnings"])


@pytest.mark.slow
def test_llamafactory_reads_stage1_through_its_own_loader(built):
    from datasets import load_dataset
    from llamafactory.data.converter import align_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments
    from transformers import Seq2SeqTrainingArguments

    out, manifest = built
    (attr,) = get_dataset_list(["deepmedix_stage1"], str(out))
    data_args = DataArguments(dataset="deepmedix_stage1", dataset_dir=str(out), template="qwen2_vl")
    raw = load_dataset("json", data_files=str(out / attr.dataset_name), split="train")
    aligned = align_dataset(raw, attr, data_args, Seq2SeqTrainingArguments(output_dir=str(out / "tmp"), report_to=[]))
    assert len(aligned) == manifest["outputs"]["stage1/train.jsonl"]["rows"]
    for example in aligned:
        assert example["_prompt"][0]["role"] == "user" and example["_response"][0]["role"] == "assistant"
        assert len(example["_images"]) == 1 and Path(example["_images"][0]).is_file()  # resolved in dataset_dir


def test_cold_start_candidates_never_overlap_grpo(built):
    out, manifest = built
    candidates = pq.read_table(out / "cold_start" / "candidates.parquet").to_pylist()
    grpo = {r["sample_id"] for r in pq.read_table(out / "grpo" / "train.parquet").to_pylist()}
    assert candidates and not ({r["sample_id"] for r in candidates} & grpo)
    assert all(ground_truth_problem(r["answer"], allow_plain=False) is None for r in candidates)
    assert manifest["outputs"]["cold_start/candidates.parquet"]["rows"] == len(candidates)


def test_a_complete_build_has_no_empty_output(built):
    out, manifest = built
    assert manifest["empty_outputs"] == {}
    assert json.loads((out / "manifest.json").read_text())["empty_outputs"] == {}


def test_empty_outputs_are_flagged_and_refused_by_the_stages_that_read_them(releases, tmp_path, make_config, caplog):
    """Open-I alone, all of it in the training split and all of that taken by GRPO: every other
    output comes out empty. The build says so; each stage that reads one refuses it, naming the build."""
    import logging

    from omegaconf import OmegaConf

    from data_prep.cold_start import load_candidates
    from data_prep.outputs import EmptyOutputError
    from eval.infer import infer
    from training.check import empty_data_problems

    partial, out = tmp_path / "partial", tmp_path / "out"
    shutil.copytree(releases[0] / "openi", partial / "openi")
    with caplog.at_level(logging.WARNING, logger="data_prep.build"):
        manifest = build(make_config(partial, out, "openi.test_fraction=0.0", "openi.validate_fraction=0.0",
                                     "grpo.size=100000", "allow_empty=[openi/test]"))
    empty = {"stage1/train.jsonl", "grpo/val.parquet", "cold_start/candidates.parquet", "test/xraybench.jsonl",
             "test/grounding.jsonl"}
    assert set(manifest["empty_outputs"]) == empty and manifest["outputs"]["grpo/train.parquet"]["rows"] > 0
    assert json.loads((out / "manifest.json").read_text())["empty_outputs"] == manifest["empty_outputs"]
    assert "grpo.val_size=10 drew nothing" in manifest["empty_outputs"]["grpo/val.parquet"]
    assert "(openi)" in manifest["empty_outputs"]["test/xraybench.jsonl"]
    assert all(f"EMPTY OUTPUT {name}" in caplog.text for name in empty)

    with pytest.raises(EmptyOutputError, match=f"data build in {re.escape(str(out))} left cold_start/candidates"):
        load_candidates(out)
    items = OmegaConf.create({"items_file": str(out / "test" / "xraybench.jsonl"), "out": str(tmp_path / "p.jsonl"),
                              "shard": 0, "shards": 1, "image_root": None, "limit": None})
    with pytest.raises(EmptyOutputError, match="left test/xraybench.jsonl empty .*XrayBench's composition"):
        infer(items)
    problems = empty_data_problems([str(out / "grpo" / "train.parquet"), str(out / "grpo" / "val.parquet"),
                                    str(out / "stage1" / "train.jsonl")])
    assert len(problems) == 2 and "left grpo/val.parquet empty" in problems[0] and str(out) in problems[0]
    assert "left stage1/train.jsonl empty" in problems[1]


def test_grounding_test_set_holds_ms_cxr_phrases_of_test_patients(built, releases):
    out, manifest = built
    items = read_jsonl(out / "test" / "grounding.jsonl")
    assert items and manifest["outputs"]["test/grounding.jsonl"]["rows"] == len(items)
    test_subjects = set(releases[1]["test_subjects"])
    for item in items:
        assert item["task"] == "grounding" and item["source"] == "ms-cxr" and "Locate the finding" in item["prompt"]
        truth = parse_ground_truth(item["ground_truth"])
        assert [list(b) for b in truth.boxes] and truth.frame.width == item["frame"]["width"]
        written = [[float(v) for v in box.split(", ")] for box in item["answer"].strip("[]").split("], [")]
        assert all(abs(a - b) <= 0.5 for w, t in zip(written, truth.boxes) for a, b in zip(w, t))
        assert subject_of(item["images"][0]) in test_subjects
    training = {subject_of(r["images"][0]) for r in read_jsonl(out / "stage1" / "train.jsonl")}
    assert not training & {subject_of(item["images"][0]) for item in items}
