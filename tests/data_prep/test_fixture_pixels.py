"""The generated world shows its findings: pixels agree with MS-CXR's boxes and with the labels.

Read back with generic tools (csv, PIL, numpy), never with the generator's own code."""

import csv
import gzip
import io

import numpy as np
import pytest
from PIL import Image

from data_prep.fixtures import generate_releases

BRIGHT = {"Lung Opacity", "Consolidation", "Pneumonia", "Atelectasis", "Pleural Effusion", "Edema"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pixels")
    return root, generate_releases(root, seed=3, subjects=40)


def mirrored(box, width):
    """The same place in the other lung (the image mirrored left-right)."""
    x, y, w, h = box
    return width - x - w, y, w, h


def mean(pixels, box):
    x, y, w, h = box
    return float(pixels[y : y + h, x : x + w].mean())


def test_each_box_sits_on_its_finding(world):
    root, _ = world
    with open(root / "ms-cxr" / "MS_CXR_Local_Alignment_v1.1.0.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    checked = 0
    for row in rows:
        pixels = np.asarray(Image.open(root / "mimic-cxr-jpg" / row["path"]).convert("L"), dtype=np.float32)
        box = tuple(int(row[k]) for k in "xywh")
        label, width = row["category_name"], int(row["image_width"])
        if label in BRIGHT:  # bright patches (lungs ~150, a heart ~200): brighter than the other lung
            x, y, w, h = box
            inside = np.percentile(pixels[y : y + h, x : x + w], 90)
            assert inside > 215, (label, inside)
            if mean(pixels, mirrored(box, width)) < 165:  # the other side neither ill nor behind the heart
                assert mean(pixels, box) > mean(pixels, mirrored(box, width)) + 25, label
            checked += 1
        elif label == "Pneumothorax":  # darker than the lung around it
            assert mean(pixels, box) < 120, (label, mean(pixels, box))
            checked += 1
        elif label == "Cardiomegaly":  # a heart wider than half the box's region is bright across it
            x, y, w, h = box
            assert pixels[y + h // 2, x + w // 8 : x + w - w // 8].mean() > 180
            checked += 1
    assert checked >= 10


def test_normal_studies_show_no_finding(world):
    root, truth = world
    labels = gzip.decompress((root / "mimic-cxr-jpg" / "mimic-cxr-2.0.0-chexpert.csv.gz").read_bytes()).decode()
    normal = {r["study_id"] for r in csv.DictReader(io.StringIO(labels)) if r["No Finding"] == "1.0"
              and r["Support Devices"] != "1.0"}
    brightest = []
    for study_id in normal:
        for dicom in truth["mimic"][study_id]["frontal_dicom_ids"]:
            folder = truth["mimic"][study_id]["report_path"].removesuffix(".txt")
            pixels = np.asarray(Image.open(root / "mimic-cxr-jpg" / folder / f"{dicom}.jpg").convert("L"))
            h, w = pixels.shape
            lungs = np.concatenate([pixels[int(0.5 * h) : int(0.85 * h), int(0.12 * w) : int(0.3 * w)].ravel(),
                                    pixels[int(0.5 * h) : int(0.85 * h), int(0.75 * w) : int(0.88 * w)].ravel()])
            brightest.append(np.percentile(lungs, 95))
    assert brightest and max(brightest) < 200  # lungs are ~150; a finding's patch is 230 or brighter
