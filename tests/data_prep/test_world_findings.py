"""A world drawn with fewer findings (the learning demo's): only those appear, in every release, and
the presence questions ask only about them, so a "no" is read from the pixels, not from the name."""

import csv
import json
import re

import pytest

from data_prep.fixtures import generate_releases
from data_prep.fixtures.world import ALL_FINDINGS, check_findings

PALETTE = ("Cardiomegaly", "Pleural Effusion", "Pneumothorax", "Support Devices")


@pytest.fixture(scope="module")
def palette_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("palette")
    return root, generate_releases(root, seed=3, subjects=30, findings=PALETTE)


def test_only_the_chosen_findings_are_drawn(palette_world):
    _, truth = palette_world
    assert truth["findings"] == list(PALETTE)
    drawn = {label for study in truth["mimic"].values() for label in study["positive_labels"]}
    assert drawn and drawn <= set(PALETTE)
    assert {"Cardiomegaly", "Pleural Effusion", "Pneumothorax"} & drawn  # abnormal studies carry a boxed one


def test_presence_questions_name_only_what_the_world_can_show(palette_world):
    root, _ = palette_world
    with open(root / "medical-cxr-vqa" / "medical-cxr-vqa-questions.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["question_type"] == "presence"]
    named = {re.search(r"evidence of (.*) in this image", row["question"]).group(1) for row in rows}
    assert named <= {label.lower() for label in PALETTE}
    assert {row["answer"] for row in rows} == {"yes", "no"}  # both answers occur: the image decides
    ext = json.loads((root / "mimic-ext-mimic-cxr-vqa" / "dataset" / "train.json").read_text())
    asked = {record["template_arguments"]["attribute"]["0"] for record in ext if record["content_type"] == "presence"}
    assert asked <= {"enlarged cardiac silhouette", "pleural effusion", "pneumothorax", "endotracheal tube"}


def test_the_default_world_draws_all_ten(tmp_path):
    truth = generate_releases(tmp_path, seed=0, subjects=8)
    assert truth["findings"] == list(ALL_FINDINGS) and len(ALL_FINDINGS) == 10


def test_unknown_or_unboxable_choices_are_refused():
    with pytest.raises(ValueError, match="unknown finding"):
        check_findings(["Cardiomegaly", "Nodule"])
    with pytest.raises(ValueError, match="no MS-CXR category"):
        check_findings(["Support Devices", "Fracture"])
    assert check_findings(["Pneumothorax", "Cardiomegaly", "Cardiomegaly"]) == ("Cardiomegaly", "Pneumothorax")


def test_the_command_line_takes_the_findings(tmp_path):
    from data_prep.fixtures import main

    assert main([str(tmp_path), "--subjects", "8", "--findings", "Cardiomegaly, Pneumothorax"]) == 0
    assert json.loads((tmp_path / "fixture_truth.json").read_text())["findings"] == ["Cardiomegaly", "Pneumothorax"]
    with pytest.raises(SystemExit):
        main([str(tmp_path / "other"), "--findings", "Fracture"])
