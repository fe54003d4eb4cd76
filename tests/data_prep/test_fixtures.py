"""The synthetic releases: deterministic, in the real formats, and broken only where asked.

Every check reads the files back with generic tools (gzip, csv, zipfile, json, PIL), never with
the generator's own code, so a format slip shows up here before it misleads a parser's tests.
"""

import csv
import gzip
import hashlib
import io
import json
import re
import shutil
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from data_prep.fixtures import generate_releases, main

SUBJECT = re.compile(r"^1\d{7}$")
STUDY = re.compile(r"^5\d{7}$")
DICOM = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")
MIMIC_PATH = re.compile(r"^files/p(1\d)/p(1\d{7})/s(5\d{7})/([0-9a-f]{8}(?:-[0-9a-f]{8}){4})\.jpg$")
REPORT_ENTRY = re.compile(r"^files/p(1\d)/p(1\d{7})/s(5\d{7})\.txt$")
OPENI_NAME = re.compile(r"^(\d+)_IM-\d{4}-\d{4}\.dcm\.png$")
# Headers and keys exactly as the dataset reference gives them.
METADATA_HEADER = (
    "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,"
    "StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
    "PatientOrientationCodeSequence_CodeMeaning"
)
OPENI_HEADER = "uid,MeSH,Problems,image,indication,comparison,findings,impression"
MS_CXR_HEADER = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split"
MEDICAL_HEADER = "subject_id,study_id,dicom_id,question_type,question,answer,split"
EXT_KEYS = ["split", "idx", "subject_id", "study_id", "image_id", "image_path", "question", "semantic_type",
            "content_type", "template", "template_program", "template_arguments", "answer"]
LABELS = {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
          "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
          "Pneumothorax", "Support Devices"}
MS_CATEGORIES = {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Lung Opacity", "Pleural Effusion",
                 "Pneumonia", "Pneumothorax"}
CONTENT_TYPES = {"anatomy", "attribute", "presence", "abnormality", "plane", "gender", "size"}
VARIANTS = {"standard", "impression_only", "findings_and_impression", "conclusion", "addendum", "wet_read",
            "last_paragraph", "repeated_header", "misspelled_header"}
FAULT_KINDS = {
    ("mimic-cxr-jpg", "truncated_image"), ("mimic-cxr-jpg", "missing_image"),
    ("mimic-cxr-reports", "empty_report"), ("openi", "missing_image"), ("openi", "corrupt_image"),
    ("ms-cxr", "box_outside_image"), ("mimic-ext-mimic-cxr-vqa", "unknown_content_type"),
    ("medical-cxr-vqa", "malformed_row"),
}


# ---- reading helpers ------------------------------------------------------------------------


def hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    reader = csv.DictReader(io.StringIO(text))
    return reader.fieldnames, list(reader)


def jpg(root: Path) -> Path:
    return root / "mimic-cxr-jpg"


def metadata(root: Path) -> list[dict[str, str]]:
    return read_csv(jpg(root) / "mimic-cxr-2.0.0-metadata.csv.gz")[1]


def mimic_split(root: Path) -> dict[str, str]:
    """subject_id -> split, from the split file."""
    return {r["subject_id"]: r["split"] for r in read_csv(jpg(root) / "mimic-cxr-2.0.0-split.csv.gz")[1]}


def reports(root: Path) -> dict[str, str]:
    with zipfile.ZipFile(root / "mimic-cxr-reports/mimic-cxr-reports.zip") as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def image_path(root: Path, subject: str, study: str, dicom: str) -> Path:
    return jpg(root) / f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"


def decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except OSError:
        return False


def sections(text: str) -> dict[str, str]:
    """MIT-LCP-style sectioning as the dataset reference describes it (last occurrence wins),
    whitespace-normalised. Written here from the description, independent of the generator."""
    header = re.compile(r"\n ([A-Z ()/,-]+):\s")
    synonyms = {
        "conclusion": "impression",
        "findings and impression": "impression",
        "impresson": "impression",
    }
    found = []
    match = header.search(text)
    if match is None:
        found.append(("full report", text))
    else:
        found.append(("preamble", text[: match.start(1)]))
    while match is not None:
        name = match.group(1).strip().lower()
        start = match.end()
        newline = text.find("\n", start)
        match = header.search(text, start if newline == -1 else newline)
        found.append((synonyms.get(name, name), text[start : match.start() if match else len(text)]))
    found = [(n, t) for n, t in found if n not in ("findings", "impression") or t.strip()]
    if not {n for n, _ in found} & {"findings", "impression"}:
        name, last = found[-1]
        if "\n \n" in last:
            head, _, tail = last.partition("\n \n")
            found[-1] = (name, head)
            found.append(("last_paragraph", tail))
    return {n: " ".join(t.split()) for n, t in found}


# ---- shared trees ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    return root, generate_releases(root, seed=0)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    root = tmp_path_factory.mktemp("faulty")
    return root, generate_releases(root, seed=0, inject_faults=True)


# ---- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_trees(clean, tmp_path):
    root, truth = clean
    again = generate_releases(tmp_path, seed=0)
    assert hashes(tmp_path) == hashes(root)
    assert again == truth == json.loads((root / "fixture_truth.json").read_text())


def test_gzip_headers_carry_no_timestamp_and_a_fixed_name(clean):
    root, _ = clean
    for path in sorted(root.rglob("*.gz")):
        data = path.read_bytes()
        assert data[4:8] == b"\0\0\0\0", path  # MTIME
        assert data[3] & 0x08 and data[10:].split(b"\0")[0].decode() == path.name[:-3]


def test_other_seed_differs_and_overwrites_an_earlier_fixture_completely(clean, tmp_path):
    root, _ = clean
    fresh, reused = tmp_path / "fresh", tmp_path / "reused"
    generate_releases(fresh, seed=1)
    shutil.copytree(root, reused)
    generate_releases(reused, seed=1)
    assert hashes(reused) == hashes(fresh)
    different = {k for k, v in hashes(fresh).items() if hashes(root).get(k) != v}
    assert "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz" in different


def test_refuses_to_write_over_release_folders_it_did_not_write(tmp_path):
    (tmp_path / "mimic-cxr-jpg").mkdir()
    (tmp_path / "mimic-cxr-jpg" / "real.csv.gz").write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        generate_releases(tmp_path)
    assert (tmp_path / "mimic-cxr-jpg" / "real.csv.gz").read_bytes() == b"precious"


# ---- MIMIC-CXR-JPG --------------------------------------------------------------------------


def test_layout_has_every_release_file(clean):
    root, _ = clean
    for name in [
        "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz",
        "mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz",
        "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz",
        "mimic-cxr-jpg/mimic-cxr-2.0.0-negbio.csv.gz",
        "mimic-cxr-jpg/IMAGE_FILENAMES",
        "mimic-cxr-reports/mimic-cxr-reports.zip",
        "mimic-cxr-reports/cxr-study-list.csv.gz",
        "openi/indiana_reports.csv",
        "openi/indiana_projections.csv",
        "ms-cxr/MS_CXR_Local_Alignment_v1.1.0.csv",
        "ms-cxr/MS_CXR_Local_Alignment_v1.1.0.json",
        "mimic-ext-mimic-cxr-vqa/dataset/train.json",
        "mimic-ext-mimic-cxr-vqa/dataset/valid.json",
        "mimic-ext-mimic-cxr-vqa/dataset/test.json",
        "medical-cxr-vqa/medical-cxr-vqa-questions.csv",
        "fixture_truth.json",
    ]:
        assert (root / name).is_file(), name
    assert not list(root.rglob("*.partial"))


def test_metadata_columns_ids_views_dates_and_real_image_sizes(clean):
    root, truth = clean
    header, rows = read_csv(jpg(root) / "mimic-cxr-2.0.0-metadata.csv.gz")
    assert ",".join(header) == METADATA_HEADER
    views_by_study = defaultdict(list)
    for row in rows:
        assert (
            DICOM.match(row["dicom_id"])
            and SUBJECT.match(row["subject_id"])
            and STUDY.match(row["study_id"])
        )
        assert 21000101 <= int(row["StudyDate"]) < 22000101
        assert re.fullmatch(r"(0|[1-9]\d{0,5})\.\d{1,3}", row["StudyTime"]), row["StudyTime"]
        assert float(row["StudyTime"]) < 240000
        assert row["ViewPosition"] in {"PA", "AP", "LATERAL", "LL", ""}
        with Image.open(image_path(root, row["subject_id"], row["study_id"], row["dicom_id"])) as image:
            assert image.format == "JPEG" and image.mode == "L"
            assert (int(row["Columns"]), int(row["Rows"])) == image.size
            assert 280 <= image.width <= 420 and 320 <= image.height <= 480
        views_by_study[row["study_id"]].append(row["ViewPosition"])
    assert len(views_by_study) == len(truth["mimic"])
    assert all(1 <= len(v) <= 3 for v in views_by_study.values())
    assert any(v == ["LATERAL"] for v in views_by_study.values()), "a lateral-only study"
    assert any("" in v for v in views_by_study.values()), "a study without ViewPosition"
    assert (
        sum(("PA" in v or "AP" in v) and "LATERAL" in v for v in views_by_study.values())
        >= len(views_by_study) / 3
    )
    studies_per_subject = defaultdict(set)
    for row in rows:
        studies_per_subject[row["subject_id"]].add(row["study_id"])
    assert len(studies_per_subject) == truth["subjects"] and all(
        1 <= len(s) <= 3 for s in studies_per_subject.values()
    )


def test_split_is_by_subject_with_enough_test_and_validate_patients(clean):
    root, truth = clean
    header, rows = read_csv(jpg(root) / "mimic-cxr-2.0.0-split.csv.gz")
    assert header == ["dicom_id", "study_id", "subject_id", "split"]
    assert {r["split"] for r in rows} == {"train", "validate", "test"}
    splits_of = defaultdict(set)
    for row in rows:
        splits_of[row["subject_id"]].add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values()), "no patient in two splits"
    by_split = defaultdict(set)
    for subject, (split,) in splits_of.items():
        by_split[split].add(subject)
    assert len(by_split["test"]) >= 3 and len(by_split["validate"]) >= 2
    assert sorted(by_split["test"]) == truth["test_subjects"]
    assert {r["dicom_id"] for r in rows} == {r["dicom_id"] for r in metadata(root)}


@pytest.mark.parametrize("subjects", [1, 3, 8])
def test_few_subjects_still_give_a_consistent_split(tmp_path, subjects):
    truth = generate_releases(tmp_path, seed=3, subjects=subjects)
    split = mimic_split(tmp_path)
    assert len(split) == subjects
    if subjects >= 8:
        assert list(split.values()).count("test") >= 3 and list(split.values()).count("validate") >= 2
    assert truth["test_subjects"] == sorted(s for s, v in split.items() if v == "test")


def test_chexpert_and_negbio_labels(clean):
    root, truth = clean
    orders = []
    for name in ("chexpert", "negbio"):
        header, rows = read_csv(jpg(root) / f"mimic-cxr-2.0.0-{name}.csv.gz")
        assert (
            header[:2] == ["subject_id", "study_id"] and set(header[2:]) == LABELS and len(header) == 16
        )
        assert sorted(r["study_id"] for r in rows) == sorted(truth["mimic"])
        assert {r[label] for r in rows for label in LABELS} <= {"1.0", "0.0", "-1.0", ""}
        orders.append(header[2:])
    assert orders[0] != orders[1], "parse by name: the two files order their columns differently"
    header, rows = read_csv(jpg(root) / "mimic-cxr-2.1.0-test-set-labeled.csv")
    assert header[0] == "study_id" and "Airspace Opacity" in header and "Lung Opacity" not in header
    assert {r["study_id"] for r in rows} == {
        s for s, v in truth["mimic"].items() if v["split"] == "test"
    }


def test_image_filenames_lists_every_image(clean):
    root, _ = clean
    lines = (jpg(root) / "IMAGE_FILENAMES").read_text().splitlines()
    assert lines == sorted(lines)
    for line in lines:
        match = MIMIC_PATH.match(line)
        assert match and match.group(1) == match.group(2)[:2] and (jpg(root) / line).is_file()
    assert {MIMIC_PATH.match(line).group(4) for line in lines} == {r["dicom_id"] for r in metadata(root)}


# ---- MIMIC-CXR reports ----------------------------------------------------------------------


def test_reports_zip_layout_and_line_format(clean):
    root, truth = clean
    texts = reports(root)
    assert sorted(REPORT_ENTRY.match(n).group(3) for n in texts) == sorted(truth["mimic"])
    for name, text in texts.items():
        match = REPORT_ENTRY.match(name)
        assert match.group(1) == match.group(2)[:2]
        assert "                                 FINAL REPORT\n" in text and text.endswith("\n")
        for line in text.splitlines():
            assert line.startswith(" ") and len(line) <= 79, (name, line)
            assert line.strip() or line == " ", (name, repr(line))
    header, rows = read_csv(root / "mimic-cxr-reports/cxr-study-list.csv.gz")
    assert header == ["subject_id", "study_id", "path"] and {r["path"] for r in rows} == set(texts)


def test_reports_section_exactly_as_the_truth_says(clean):
    root, truth = clean
    texts = reports(root)
    assert {v["variant"] for v in truth["mimic"].values()} == VARIANTS
    for study_id, expected in truth["mimic"].items():
        got = sections(texts[expected["report_path"]])
        for name in ("findings", "impression", "last_paragraph"):
            assert got.get(name, "") == expected[name], (study_id, expected["variant"], name)
        assert expected["findings"] or expected["impression"] or expected["last_paragraph"]
        text = texts[expected["report_path"]]
        assert "___" in text  # PHI placeholder
        if expected["variant"] == "repeated_header":
            assert text.count("\n IMPRESSION:") == 2
        if expected["variant"] in ("addendum", "wet_read"):
            assert "\n " + "_" * 78 + "\n" in text.split("FINAL REPORT")[0]


def test_reports_as_tree_holds_the_same_texts(clean, tmp_path):
    root, _ = clean
    generate_releases(tmp_path, seed=0, reports_as="tree")
    assert not (tmp_path / "mimic-cxr-reports/mimic-cxr-reports.zip").exists()
    tree = {
        p.relative_to(tmp_path / "mimic-cxr-reports").as_posix(): p.read_text()
        for p in (tmp_path / "mimic-cxr-reports/files").rglob("*.txt")
    }
    assert tree == reports(root)
    same = {k: v for k, v in hashes(tmp_path).items() if not k.startswith("mimic-cxr-reports/files/")}
    expected = {k: v for k, v in hashes(root).items() if not k.endswith(".zip")}
    assert {k for k in same if same[k] != expected.get(k)} == {"fixture_truth.json"}


# ---- Open-I ---------------------------------------------------------------------------------


def test_openi_reports_and_projections(clean):
    root, truth = clean
    header, rows = read_csv(root / "openi/indiana_reports.csv")
    assert ",".join(header) == OPENI_HEADER
    assert len(rows) == max(6, truth["subjects"]) and all(r["uid"].isdigit() for r in rows)
    assert sum("XXXX" in "".join(r.values()) for r in rows) > len(rows) / 2
    assert any(re.search(r"\w-XXXX|XXXX-\w", "".join(r.values())) for r in rows), "XXXX mid-word"
    assert sum(not r["findings"] for r in rows) >= 1 and sum(not r["impression"] for r in rows) == 1
    assert {r["uid"]: {"findings": r["findings"], "impression": r["impression"]} for r in rows} == {
        uid: {k: v[k] for k in ("findings", "impression")} for uid, v in truth["openi"].items()
    }

    header, projections = read_csv(root / "openi/indiana_projections.csv")
    assert header == ["uid", "filename", "projection"]
    views = defaultdict(list)
    folder = root / "openi/images/images_normalized"
    for row in projections:
        assert (
            row["projection"] in ("Frontal", "Lateral")
            and OPENI_NAME.match(row["filename"]).group(1) == row["uid"]
        )
        views[row["uid"]].append(row["projection"])
        with Image.open(folder / row["filename"]) as image:
            assert image.format == "PNG" and image.mode == "L"
    assert set(views) == {r["uid"] for r in rows} and all(1 <= len(v) <= 3 for v in views.values())
    assert any(v == ["Frontal"] for v in views.values())
    assert sum(v == ["Lateral"] for v in views.values()) == 1
    stray = {p.name for p in folder.iterdir()} - {r["filename"] for r in projections}
    assert stray == set(truth["openi_unreferenced"]) and len(stray) == 1


# ---- MS-CXR ---------------------------------------------------------------------------------


def test_ms_cxr_boxes_sit_on_frontal_images_and_hold_the_split_trap(clean):
    root, truth = clean
    header, rows = read_csv(root / "ms-cxr/MS_CXR_Local_Alignment_v1.1.0.csv")
    assert ",".join(header) == MS_CXR_HEADER
    meta = {r["dicom_id"]: r for r in metadata(root)}
    split = mimic_split(root)
    boxes_per_phrase = defaultdict(int)
    for row in rows:
        match = MIMIC_PATH.match(row["path"])
        assert match and match.group(4) == row["dicom_id"]
        assert meta[row["dicom_id"]]["ViewPosition"] in ("PA", "AP")
        with Image.open(jpg(root) / row["path"]) as image:
            assert image.size == (int(row["image_width"]), int(row["image_height"]))
        x, y, w, h = (int(row[k]) for k in "xywh")
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= int(row["image_width"]) and y + h <= int(row["image_height"])
        assert row["category_name"] in MS_CATEGORIES and row["split"] in ("train", "val", "test")
        boxes_per_phrase[row["dicom_id"], row["category_name"], row["label_text"]] += 1
    assert max(boxes_per_phrase.values()) >= 2, "a phrase with two boxes"
    leaky = {
        r["dicom_id"]
        for r in rows
        if r["split"] == "train" and split[MIMIC_PATH.match(r["path"]).group(2)] == "test"
    }
    assert leaky and leaky <= set(truth["ms_cxr"]["leaky_dicom_ids"])

    coco = json.loads((root / "ms-cxr/MS_CXR_Local_Alignment_v1.1.0.json").read_text())
    images = {i["id"]: i for i in coco["images"]}
    categories = {c["id"]: c["name"] for c in coco["categories"]}
    assert set(categories.values()) == MS_CATEGORIES
    from_json = sorted(
        (
            images[a["image_id"]]["file_name"][:-4],
            categories[a["category_id"]],
            a["label_text"],
            images[a["image_id"]]["path"],
            *a["bbox"],
        )
        for a in coco["annotations"]
    )
    from_csv = sorted(
        (r["dicom_id"], r["category_name"], r["label_text"], r["path"], *(int(r[k]) for k in "xywh"))
        for r in rows
    )
    assert from_json == from_csv
    assert all(
        (i["width"], i["height"])
        == (int(meta[i["file_name"][:-4]]["Columns"]), int(meta[i["file_name"][:-4]]["Rows"]))
        for i in images.values()
    )


# ---- MIMIC-Ext-MIMIC-CXR-VQA ----------------------------------------------------------------


def test_ext_vqa_records(clean):
    root, _ = clean
    meta = {r["dicom_id"]: r for r in metadata(root)}
    split = mimic_split(root)
    content_types, empty_answers = set(), 0
    for name, mimic_name in (("train", "train"), ("valid", "validate"), ("test", "test")):
        text = (root / f"mimic-ext-mimic-cxr-vqa/dataset/{name}.json").read_text()
        records = json.loads(text)
        assert isinstance(records, list) and records and text.startswith('[\n    {\n        "split"')
        assert [r["idx"] for r in records] == list(range(len(records)))
        for r in records:
            assert list(r) == EXT_KEYS and r["split"] == name and split[r["subject_id"]] == mimic_name
            assert (
                isinstance(r["idx"], int)
                and isinstance(r["subject_id"], str)
                and isinstance(r["study_id"], str)
            )
            assert (
                r["image_path"]
                == f"p{r['subject_id'][:2]}/p{r['subject_id']}/s{r['study_id']}/{r['image_id']}.jpg"
            )
            assert (jpg(root) / "files" / r["image_path"]).is_file()
            assert meta[r["image_id"]]["ViewPosition"] in ("PA", "AP")
            assert (
                r["semantic_type"] in ("verify", "choose", "query")
                and r["content_type"] in CONTENT_TYPES
            )
            assert re.fullmatch(r"program_\d+", r["template_program"]) and "${" not in r["question"]
            args = r["template_arguments"]
            assert list(args) == ["object", "attribute", "category", "viewpos", "gender"]
            assert set(args["viewpos"].values()) <= {"AP", "PA"} and set(args["gender"].values()) <= {
                "M",
                "F",
            }
            answer = r["answer"]
            assert (
                isinstance(answer, list)
                and answer == sorted(answer)
                and all(a == a.lower() for a in answer)
            )
            if r["semantic_type"] == "verify":
                assert answer in (["yes"], ["no"])
            if r["content_type"] == "plane" and args["viewpos"]:
                assert answer == (
                    ["yes"] if args["viewpos"]["0"] == meta[r["image_id"]]["ViewPosition"] else ["no"]
                )
            content_types.add(r["content_type"])
            empty_answers += answer == []
    assert content_types == CONTENT_TYPES and empty_answers > 0


# ---- Medical-CXR-VQA ------------------------------------------------------------------------


def test_medical_cxr_vqa_questions(clean):
    root, _ = clean
    path = root / "medical-cxr-vqa/medical-cxr-vqa-questions.csv"
    assert {len(row) for row in csv.reader(io.StringIO(path.read_text()))} == {7}
    header, rows = read_csv(path)
    assert ",".join(header) == MEDICAL_HEADER
    meta = {r["dicom_id"]: r for r in metadata(root)}
    split = mimic_split(root)
    dicoms_per_study = defaultdict(set)
    for r in rows:
        assert (
            meta[r["dicom_id"]]["ViewPosition"] in ("PA", "AP")
            and meta[r["dicom_id"]]["study_id"] == r["study_id"]
        )
        assert (
            r["split"] == {"train": "train", "validate": "val", "test": "test"}[split[r["subject_id"]]]
        )
        assert r["question"] == r["question"].lower()
        dicoms_per_study[r["study_id"]].add(r["dicom_id"])
        kind, answer = r["question_type"], r["answer"]
        if kind == "presence":
            assert answer in ("yes", "no")
        elif kind == "view":
            assert (
                answer
                == {"AP": "antero-posterior", "PA": "postero-anterior"}[
                    meta[r["dicom_id"]]["ViewPosition"]
                ]
            )
        elif kind == "level":
            assert answer in ("mild", "moderate", "severe")
        elif kind == "location":
            assert answer.endswith(" area") or answer in ("left side", "right side")
        elif kind == "abnormality":
            assert answer and answer.split(", ") == sorted(answer.split(", "))
        else:
            assert kind == "type" and answer.isalpha()
    assert {r["question_type"] for r in rows} == {
        "abnormality",
        "presence",
        "view",
        "location",
        "level",
        "type",
    }
    assert all(len(d) == 1 for d in dicoms_per_study.values()), "one frontal image per study"


# ---- faults ---------------------------------------------------------------------------------


def test_clean_tree_has_nothing_broken(clean):
    root, truth = clean
    assert truth["faults"] == []
    for row in metadata(root):
        assert decodes(image_path(root, row["subject_id"], row["study_id"], row["dicom_id"]))
    assert all(decodes(p) for p in (root / "openi/images/images_normalized").iterdir())
    assert all(sections(t) for t in reports(root).values())
    assert all(
        r["content_type"] in CONTENT_TYPES
        for n in ("train", "valid", "test")
        for r in json.loads((root / f"mimic-ext-mimic-cxr-vqa/dataset/{n}.json").read_text())
    )


def test_faults_are_injected_and_listed(faulty):
    root, truth = faulty
    faults = {(f["source"], f["kind"]): f["id"] for f in truth["faults"]}
    assert set(faults) == FAULT_KINDS and len(truth["faults"]) == len(FAULT_KINDS)
    meta = {r["dicom_id"]: r for r in metadata(root)}

    truncated = meta[faults["mimic-cxr-jpg", "truncated_image"]]
    assert truncated["ViewPosition"] in ("PA", "AP")
    assert not decodes(
        image_path(root, truncated["subject_id"], truncated["study_id"], truncated["dicom_id"])
    )
    missing = meta[faults["mimic-cxr-jpg", "missing_image"]]
    assert not image_path(root, missing["subject_id"], missing["study_id"], missing["dicom_id"]).exists()

    lines = (root / "medical-cxr-vqa/medical-cxr-vqa-questions.csv").read_text().splitlines()
    widths = [len(row) for row in csv.reader(lines)]
    bad_line = int(faults["medical-cxr-vqa", "malformed_row"])
    assert widths[bad_line - 1] != 7 and sum(w != 7 for w in widths) == 1

    report = truth["mimic"][faults["mimic-cxr-reports", "empty_report"]]
    text = reports(root)[report["report_path"]]
    assert not {"findings", "impression", "last_paragraph"} & set(sections(text))

    split, idx = faults["mimic-ext-mimic-cxr-vqa", "unknown_content_type"].split(":")
    records = json.loads((root / f"mimic-ext-mimic-cxr-vqa/dataset/{split}.json").read_text())
    assert records[int(idx)]["content_type"] == "weather"

    _, rows = read_csv(root / "ms-cxr/MS_CXR_Local_Alignment_v1.1.0.csv")
    outside = [r for r in rows if int(r["x"]) + int(r["w"]) > int(r["image_width"])]
    assert [r["dicom_id"] for r in outside] == [faults["ms-cxr", "box_outside_image"]]

    folder = root / "openi/images/images_normalized"
    _, projections = read_csv(root / "openi/indiana_projections.csv")
    names = {r["filename"] for r in projections}
    assert (
        faults["openi", "missing_image"] in names
        and not (folder / faults["openi", "missing_image"]).exists()
    )
    assert faults["openi", "corrupt_image"] in names and not decodes(
        folder / faults["openi", "corrupt_image"]
    )


def test_faults_touch_only_the_faulted_files(clean, faulty):
    (clean_root, _), (faulty_root, truth) = clean, faulty
    before, after = hashes(clean_root), hashes(faulty_root)
    assert set(before) == set(after)
    meta = {r["dicom_id"]: r for r in metadata(faulty_root)}
    truncated = meta[next(f["id"] for f in truth["faults"] if f["kind"] == "truncated_image")]
    corrupt = next(f["id"] for f in truth["faults"] if f["kind"] == "corrupt_image")
    allowed = {
        "fixture_truth.json",
        "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz",
        "mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz",
        image_path(faulty_root, truncated["subject_id"], truncated["study_id"], truncated["dicom_id"])
        .relative_to(faulty_root)
        .as_posix(),
        "mimic-cxr-reports/mimic-cxr-reports.zip",
        "openi/indiana_projections.csv",
        f"openi/images/images_normalized/{corrupt}",
        "ms-cxr/MS_CXR_Local_Alignment_v1.1.0.csv",
        "ms-cxr/MS_CXR_Local_Alignment_v1.1.0.json",
        "mimic-ext-mimic-cxr-vqa/dataset/train.json",
        "medical-cxr-vqa/medical-cxr-vqa-questions.csv",
    }
    assert {k for k in after if after[k] != before[k]} == allowed


# ---- CLI ------------------------------------------------------------------------------------


def test_cli_writes_a_tree_and_prints_one_line(tmp_path, capsys):
    assert (
        main([str(tmp_path), "--seed", "2", "--subjects", "8", "--faults", "--reports-as", "tree"]) == 0
    )
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "8 patients" in out and "8 faults" in out
    truth = json.loads((tmp_path / "fixture_truth.json").read_text())
    assert truth["seed"] == 2 and truth["reports_as"] == "tree" and len(truth["faults"]) == 8
    assert list((tmp_path / "mimic-cxr-reports/files").rglob("s5*.txt"))
