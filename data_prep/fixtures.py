"""Small synthetic copies of the six chest X-ray releases, in exactly their real file formats.

The real releases are credentialed (PhysioNet) or large, so the parsers, the demo and the tests run
on these copies instead. Every format detail (file names, columns, id formats, the report layout
and its quirks) follows the project's dataset reference (``datasets.md``); the copies differ from
the real data only in size and in being invented.

One invented "world" (patients, studies, images, and what each study shows) feeds every release,
so they agree with each other the way the real ones do: a report names the findings its CheXpert
row labels, MS-CXR boxes sit on that study's frontal image, VQA answers follow its findings.

Everything is deterministic: one ``random.Random(seed)`` and one ``numpy.random.default_rng(seed)``
drawn in a fixed order, sorted outputs, gzip with ``mtime=0`` and a fixed name, zip entries with a
fixed date. Same arguments, same bytes. Fault injection only edits what was drawn, so a faulty
tree differs from the clean one in the faulted records and nothing else.

``generate_releases`` returns (and writes to ``fixture_truth.json``, beside the release folders)
what a correct parser should find: see its docstring.

CLI: ``python -m data_prep.fixtures OUT_DIR [--seed N] [--subjects N] [--faults]
[--reports-as zip|tree]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import json
import os
import random
import shutil
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MIMIC_JPG = "mimic-cxr-jpg"
MIMIC_REPORTS = "mimic-cxr-reports"
OPENI = "openi"
MS_CXR = "ms-cxr"
EXT_VQA = "mimic-ext-mimic-cxr-vqa"
MEDICAL_VQA = "medical-cxr-vqa"
RELEASES = (MIMIC_JPG, MIMIC_REPORTS, OPENI, MS_CXR, EXT_VQA, MEDICAL_VQA)
TRUTH_FILE = "fixture_truth.json"

ZIP_DATE = (2019, 9, 1, 0, 0, 0)  # any fixed date: zip entries carry one
FRONTAL_VIEWS = ("PA", "AP")
LATERAL_VIEWS = ("LATERAL", "LL")

# CheXpert's 14 labels in the order of MIMIC's chexpert file (alphabetical) and, to exercise
# parsing by column name, the paper's order for the negbio file.
CHEXPERT_LABELS = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
    "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other",
    "Pneumonia", "Pneumothorax", "Support Devices",
)
NEGBIO_ORDER = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)
MS_CXR_CATEGORIES = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Lung Opacity", "Pleural Effusion",
    "Pneumonia", "Pneumothorax",
)
SECONDARY_LABELS = MS_CXR_CATEGORIES + ("Support Devices", "Fracture")
LEVELS = ("mild", "moderate", "severe")

# The report layouts a sectioner must survive (see _report_lines). The first is the common one.
REPORT_VARIANTS = (
    "standard",                 # FINDINGS + IMPRESSION
    "impression_only",          # no FINDINGS header
    "findings_and_impression",  # "FINDINGS AND IMPRESSION:" (counts as impression)
    "conclusion",               # "CONCLUSION:" instead of IMPRESSION
    "addendum",                 # FINAL ADDENDUM block, a line of underscores, then the report
    "wet_read",                 # WET READ block, a line of underscores, then the report
    "last_paragraph",           # neither section: the last section's final paragraph counts
    "repeated_header",          # IMPRESSION twice: the last one counts
    "misspelled_header",        # "IMPRESSON:"
)

# A study's shape: the ViewPosition of each image, and how often it occurs.
STUDY_KINDS = {
    "pa_lat": (("PA", "LATERAL"), 0.55),
    "ap": (("AP",), 0.17),
    "pa": (("PA",), 0.07),
    "ap_lat": (("AP", "LATERAL"), 0.07),
    "pa_lat_ll": (("PA", "LATERAL", "LL"), 0.08),
    "lateral_only": (("LATERAL",), 0.03),
    "no_view": (("", "LATERAL"), 0.03),
}
VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral",
                "LL": "left lateral", "": ""}
SPLIT_FILE = {"train": "train", "validate": "valid", "test": "test"}  # Ext-VQA file names
MEDICAL_SPLIT = {"train": "train", "validate": "val", "test": "test"}  # Medical-CXR-VQA spelling


# --------------------------------------------------------------------------------------------
# Deterministic bytes: every file goes through these.
# --------------------------------------------------------------------------------------------

def _write(path: Path, data: bytes) -> None:
    """Write then rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _csv_bytes(header, rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _gzip_bytes(inner_name: str, data: bytes) -> bytes:
    """gzip with no timestamp and a fixed name in the header, so equal input gives equal bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename=inner_name, mode="wb", fileobj=buffer, mtime=0) as gz:
        gz.write(data)
    return buffer.getvalue()


def _write_csv_gz(path: Path, header, rows) -> None:
    _write(path, _gzip_bytes(path.name.removesuffix(".gz"), _csv_bytes(header, rows)))


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _radiograph(rnd: random.Random, np_rng: np.random.Generator, width: int, height: int,
                lateral: bool) -> Image.Image:
    """8-bit grayscale noise with bright ellipses where lungs and heart would be: a real image
    that decodes, resizes and crops like a radiograph, at a fraction of the size."""
    canvas = Image.new("L", (width, height), 25)
    draw = ImageDraw.Draw(canvas)
    if lateral:
        shapes = [((0.18, 0.12, 0.85, 0.88), 150), ((0.30, 0.40, 0.62, 0.80), 195)]
    else:  # patient's right lung, left lung, heart (left of the patient = right of the image)
        shapes = [((0.10, 0.12, 0.47, 0.88), 150), ((0.53, 0.12, 0.90, 0.88), 150),
                  ((0.40, 0.45, 0.70, 0.82), 200)]
    for (x0, y0, x1, y1), shade in shapes:
        jitter = [rnd.uniform(-0.02, 0.02) for _ in range(4)]
        draw.ellipse([(x0 + jitter[0]) * width, (y0 + jitter[1]) * height,
                      (x1 + jitter[2]) * width, (y1 + jitter[3]) * height], fill=shade)
    # Coarse noise, upsampled: texture that JPEG/PNG store in a few KB, unlike per-pixel noise.
    coarse = np_rng.normal(0.0, 12.0, size=(height // 8 + 1, width // 8 + 1)).astype(np.float32)
    noise = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
    pixels = np.asarray(canvas, dtype=np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _image_size(rnd: random.Random) -> tuple[int, int]:
    return rnd.randint(280, 420), rnd.randint(320, 480)


def _dicom_id(rnd: random.Random) -> str:
    return "-".join(f"{rnd.getrandbits(32):08x}" for _ in range(5))


def _normalise(text: str) -> str:
    """Whitespace-normalised text: how the truth dict states what a sectioner extracts."""
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# The shared world: patients, studies, images and what each study shows.
# --------------------------------------------------------------------------------------------

@dataclass
class Finding:
    label: str        # CheXpert label
    side: str | None  # the patient's side: "left", "right", "bilateral"; None for heart, devices
    level: str        # mild / moderate / severe
    uncertain: bool = False

    @property
    def sides(self) -> list[str]:
        return ["left", "right"] if self.side == "bilateral" else [self.side] if self.side else []


@dataclass
class CxrImage:
    dicom_id: str
    view: str  # ViewPosition; "" where the DICOM had none
    width: int
    height: int


@dataclass
class Study:
    subject_id: str
    study_id: str
    kind: str
    date: int
    time: float
    images: list[CxrImage]
    findings: list[Finding]
    findings_sentences: list[str]
    impression_sentences: list[str]
    negated: set[str]  # CheXpert labels the report explicitly rules out
    variant: str = "standard"

    @property
    def folder(self) -> str:
        return f"files/p{self.subject_id[:2]}/p{self.subject_id}/s{self.study_id}"

    @property
    def frontal(self) -> CxrImage | None:
        return next((image for image in self.images if image.view in FRONTAL_VIEWS), None)


@dataclass
class Subject:
    subject_id: str
    split: str
    gender: str
    studies: list[Study]


# What each abnormality reads like: (FINDINGS sentence, IMPRESSION phrase), first letter capitalised;
# sizes follow the level (a mild effusion is "small").
SIZE_WORD = {"mild": "small", "moderate": "moderate", "severe": "large"}
ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}


def _finding_text(rnd: random.Random, f: Finding) -> tuple[str, str]:
    size, level, side = SIZE_WORD[f.level], f.level, f.side or ""
    if f.label == "Pleural Effusion":
        if f.side == "bilateral":
            text = (f"{size} bilateral pleural effusions are present.",
                    f"{size} bilateral pleural effusions.")
        else:
            text = (f"{size} {side} pleural effusion is {rnd.choice(['new', 'unchanged'])}.",
                    f"{size} {side} pleural effusion.")
    elif f.label == "Pneumothorax":
        text = (f"There is a {size} {side} apical pneumothorax.", f"{size} {side} apical pneumothorax.")
    elif f.label == "Atelectasis":
        where = "bibasilar" if f.side == "bilateral" else f"{side} basilar"
        text = (f"{level} {where} atelectasis is seen.", f"{level} {where} atelectasis.")
    elif f.label == "Cardiomegaly":
        text = (f"The heart is {ADVERB[f.level]} enlarged.", f"{level} cardiomegaly.")
    elif f.label == "Edema":
        text = (f"There is {level} pulmonary edema.", f"{level} pulmonary edema.")
    elif f.label == "Consolidation":
        text = (f"Focal consolidation is present in the {side} lower lobe.",
                f"{side} lower lobe consolidation.")
    elif f.label == "Pneumonia" and f.uncertain:
        text = (f"Patchy opacity in the {side} lower lobe could reflect pneumonia.",
                f"{side} lower lobe opacity, possibly pneumonia.")
    elif f.label == "Pneumonia":
        text = (f"Airspace opacity in the {side} lower lobe is consistent with pneumonia.",
                f"{side} lower lobe pneumonia.")
    elif f.label == "Lung Opacity":
        text = (f"{level} opacity is noted at the {side} lung base.", f"{side} basilar opacity.")
    elif f.label == "Support Devices":
        text = ("An endotracheal tube terminates 4 cm above the carina.",
                "Endotracheal tube in standard position.")
    else:  # Fracture: worth a finding, never an impression
        text = (f"Healed {side} rib fractures are noted.", "")
    return text[0][0].upper() + text[0][1:], text[1][:1].upper() + text[1][1:]


# Normal sentences: the CheXpert labels each rules out (0.0 in the label files), and the labels
# whose presence would contradict it ("any": every abnormality).
LUNG_LABELS = {"Lung Opacity", "Atelectasis", "Pneumonia", "Consolidation", "Edema", "Pneumothorax"}
NEGATIVE_SENTENCES = (
    ("There is no pleural effusion or pneumothorax.", {"Pleural Effusion", "Pneumothorax"}, set()),
    ("The cardiomediastinal silhouette is within normal limits.",
     {"Cardiomegaly", "Enlarged Cardiomediastinum"}, set()),
    ("No focal consolidation is seen.", {"Consolidation"}, {"Pneumonia"}),
    ("There is no pulmonary edema.", {"Edema"}, set()),
    ("The lungs are clear.", LUNG_LABELS - {"Pneumothorax"}, LUNG_LABELS),
    ("No acute osseous abnormality is detected.", {"Fracture"}, set()),
    ("Hilar contours are unremarkable.", set(), set()),
    ("Compared to the prior study from ___, there is no significant interval change.", set(), "any"),
)
NORMAL_IMPRESSIONS = (
    ("No acute cardiopulmonary process.", set()),
    ("No acute intrathoracic abnormality.", set()),
    ("No evidence of pneumonia.", {"Pneumonia"}),
)


def _draw_finding(rnd: random.Random, label: str) -> Finding:
    if label in ("Cardiomegaly", "Support Devices"):
        side = None
    elif label == "Edema" or (label in ("Pleural Effusion", "Atelectasis") and rnd.random() < 0.25):
        side = "bilateral"
    else:
        side = rnd.choice(["left", "right"])
    uncertain = label == "Pneumonia" and rnd.random() < 0.5
    return Finding(label, side, rnd.choice(LEVELS), uncertain)


def _draw_content(rnd: random.Random, abnormal: bool):
    """What a study shows and how its report says it: findings, sentences, ruled-out labels."""
    findings: list[Finding] = []
    if abnormal:  # always one MS-CXR category, so every abnormal frontal image can carry a box
        findings.append(_draw_finding(rnd, rnd.choice(MS_CXR_CATEGORIES)))
        if rnd.random() < 0.45:
            second = rnd.choice([label for label in SECONDARY_LABELS if label != findings[0].label])
            findings.append(_draw_finding(rnd, second))
    positive = {f.label for f in findings}
    texts = [_finding_text(rnd, f) for f in findings]
    allowed = [(s, labels) for s, labels, clashes in NEGATIVE_SENTENCES
               if not (labels | (set(SECONDARY_LABELS) if clashes == "any" else clashes)) & positive]
    negatives = rnd.sample(allowed, k=min(len(allowed), rnd.randint(2, 3)))
    findings_sentences = [t[0] for t in texts] + [s for s, _ in negatives]
    negated = set().union(*(labels for _, labels in negatives))
    impression = [t[1] for t in texts if t[1]]
    if not impression or positive <= {"Support Devices", "Fracture"}:
        sentence, labels = rnd.choice([n for n in NORMAL_IMPRESSIONS if not n[1] & positive])
        impression.append(sentence)
        negated |= labels
    return findings, findings_sentences, impression, negated


def _assign_splits(rnd: random.Random, subject_ids: list[str]) -> dict[str, str]:
    """MIMIC's official split is by patient; with 8+ patients keep >= 3 test and >= 2 validate."""
    n = len(subject_ids)
    n_test = max(3, round(0.2 * n)) if n >= 8 else int(n >= 2)
    n_val = max(2, round(0.1 * n)) if n >= 8 else int(n >= 3)
    order = rnd.sample(subject_ids, n)
    return {s: "test" if i < n_test else "validate" if i < n_test + n_val else "train"
            for i, s in enumerate(order)}


def _build_world(rnd: random.Random, n_subjects: int) -> list[Subject]:
    """Patients with 1-3 studies each. Each patient's first study has a frontal image and an
    MS-CXR finding (so every patient can be grounded and asked about); two later studies take the
    rare shapes (lateral only; no ViewPosition); the first studies drawn get one report variant
    each, so all variants occur from 9 studies on."""
    subject_ids = sorted(str(i) for i in rnd.sample(range(10_000_000, 20_000_000), n_subjects))
    counts = [rnd.randint(1, 3) for _ in subject_ids]
    while sum(c - 1 for c in counts) < 2 and any(c < 3 for c in counts):
        counts[next(i for i, c in enumerate(counts) if c < 3)] += 1
    study_ids = [str(i) for i in rnd.sample(range(50_000_000, 60_000_000), sum(counts))]
    splits = _assign_splits(rnd, subject_ids)
    kinds = list(STUDY_KINDS)
    weights = [STUDY_KINDS[k][1] for k in kinds]

    subjects, later = [], []
    for subject_id, count in zip(subject_ids, counts):
        day = dt.date(2100, 1, 1) + dt.timedelta(days=rnd.randrange(0, 95 * 365))
        studies = []
        for k in range(count):
            kind = rnd.choice(["pa_lat", "pa_lat", "ap"]) if k == 0 else rnd.choices(kinds, weights)[0]
            content = _draw_content(rnd, abnormal=k == 0 or rnd.random() < 0.6)
            seconds = rnd.randrange(86_400)
            clock = (seconds // 3600) * 10_000 + (seconds // 60 % 60) * 100 + seconds % 60
            studies.append(Study(subject_id, study_ids.pop(0), kind, int(day.strftime("%Y%m%d")),
                                 round(clock + rnd.randrange(1000) / 1000, 3), [], *content))
            if k:
                later.append(studies[-1])
            day += dt.timedelta(days=rnd.randint(1, 400))
        subjects.append(Subject(subject_id, splits[subject_id], rnd.choice("MF"), studies))

    for study, kind in zip(rnd.sample(later, min(2, len(later))), ("lateral_only", "no_view")):
        study.kind = kind
    all_studies = [st for s in subjects for st in s.studies]
    for position, study in enumerate(rnd.sample(all_studies, len(all_studies))):
        study.variant = (REPORT_VARIANTS[position] if position < len(REPORT_VARIANTS) else
                         rnd.choices(REPORT_VARIANTS, [10, 2] + [1] * (len(REPORT_VARIANTS) - 2))[0])
    for study in all_studies:
        study.images = [CxrImage(_dicom_id(rnd), view, *_image_size(rnd))
                        for view in STUDY_KINDS[study.kind][0]]
    for subject in subjects:  # every release lists patients, then studies, in id order
        subject.studies.sort(key=lambda st: st.study_id)
    return subjects


def _studies(world: list[Subject]):
    for subject in world:
        for study in subject.studies:
            yield subject, study


# --------------------------------------------------------------------------------------------
# MIMIC-CXR-JPG: images, metadata, split, CheXpert/NegBio labels, IMAGE_FILENAMES.
# --------------------------------------------------------------------------------------------

METADATA_COLUMNS = (
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
)


def _procedure(study: Study) -> str:
    return "CHEST (PORTABLE AP)" if study.kind == "ap" else "CHEST (PA AND LAT)"


TEST_SET_NAME = {"Lung Opacity": "Airspace Opacity"}  # the labeled test set's spelling


def _label_values(study: Study) -> dict[str, str]:
    """CheXpert-style values from what the report says: 1.0 / -1.0 stated, 0.0 ruled out, else blank."""
    values = {label: "" for label in CHEXPERT_LABELS}
    for label in study.negated:
        values[label] = "0.0"
    for f in study.findings:
        values[f.label] = "-1.0" if f.uncertain else "1.0"
    if not {f.label for f in study.findings} - {"Support Devices"}:
        values["No Finding"] = "1.0"
    return values


def _write_mimic_jpg(ctx: _Context, world: list[Subject]) -> None:
    """The image release: the files every other MIMIC-based release points into."""
    base = ctx.root / MIMIC_JPG
    metadata, split_rows, paths = [], [], []
    for subject, study in _studies(world):
        for image in study.images:
            picture = _radiograph(ctx.rnd, ctx.np_rng, image.width, image.height,
                                  lateral=image.view in LATERAL_VIEWS)
            path = f"{study.folder}/{image.dicom_id}.jpg"
            _write(base / path, _encode(picture, "JPEG", quality=95))
            paths.append(path)
            orientation = "" if not image.view else "Recumbent" if study.kind == "ap" else "Erect"
            metadata.append([image.dicom_id, subject.subject_id, study.study_id, _procedure(study),
                             image.view, image.height, image.width, study.date, repr(study.time),
                             _procedure(study), VIEW_MEANING[image.view], orientation])
            split_rows.append([image.dicom_id, study.study_id, subject.subject_id, subject.split])
        ctx.truth["mimic"][study.study_id] = {
            "subject_id": subject.subject_id, "split": subject.split,
            "frontal_dicom_ids": [i.dicom_id for i in study.images if i.view in FRONTAL_VIEWS],
            "image_sizes": {i.dicom_id: [i.width, i.height] for i in study.images},
            "view_positions": {i.dicom_id: i.view for i in study.images},
            "positive_labels": sorted({f.label for f in study.findings}),
        }

    # Faults: a metadata row without its file, and a frontal JPEG cut to 40% of its bytes.
    missing_id = _dicom_id(ctx.rnd)  # drawn either way: the clean tree must not depend on faults
    with_frontal = [(s, st) for s, st in _studies(world) if st.frontal]
    targets = [(s, st) for s, st in with_frontal if s.split == "train"] or with_frontal
    if ctx.inject_faults and targets:
        subject, study = targets[0]
        metadata.append([missing_id, subject.subject_id, study.study_id, _procedure(study), "PA",
                         study.frontal.height, study.frontal.width, study.date, repr(study.time),
                         _procedure(study), "postero-anterior", "Erect"])
        split_rows.append([missing_id, study.study_id, subject.subject_id, subject.split])
        ctx.fault(MIMIC_JPG, "missing_image", missing_id)
        subject, study = targets[-1]
        target = base / f"{study.folder}/{study.frontal.dicom_id}.jpg"
        data = target.read_bytes()
        _write(target, data[: int(len(data) * 0.4)])
        ctx.fault(MIMIC_JPG, "truncated_image", study.frontal.dicom_id)

    metadata.sort(key=lambda r: (r[1], r[2], r[0]))
    split_rows.sort(key=lambda r: (r[2], r[1], r[0]))
    _write_csv_gz(base / "mimic-cxr-2.0.0-metadata.csv.gz", METADATA_COLUMNS, metadata)
    _write_csv_gz(base / "mimic-cxr-2.0.0-split.csv.gz",
                  ("dicom_id", "study_id", "subject_id", "split"), split_rows)
    _write(base / "IMAGE_FILENAMES", "".join(f"{p}\n" for p in sorted(paths)).encode())

    chexpert, negbio, test_labeled = [], [], []
    for subject, study in _studies(world):
        values = _label_values(study)
        chexpert.append([subject.subject_id, study.study_id] + [values[label] for label in CHEXPERT_LABELS])
        if ctx.rnd.random() < 0.2:  # NegBio disagrees with CheXpert now and then
            blank = [label for label in CHEXPERT_LABELS if values[label] == ""]
            if blank:
                values[ctx.rnd.choice(blank)] = "0.0"
        negbio.append([subject.subject_id, study.study_id] + [values[label] for label in NEGBIO_ORDER])
        if subject.split == "test":  # radiologist labels: no subject_id, "Airspace Opacity"
            values = {TEST_SET_NAME.get(label, label): v for label, v in _label_values(study).items()}
            test_labeled.append([study.study_id] + [values[label] for label in sorted(values)])
    airspace = sorted(TEST_SET_NAME.get(label, label) for label in CHEXPERT_LABELS)
    _write_csv_gz(base / "mimic-cxr-2.0.0-chexpert.csv.gz",
                  ("subject_id", "study_id", *CHEXPERT_LABELS), sorted(chexpert))
    _write_csv_gz(base / "mimic-cxr-2.0.0-negbio.csv.gz",
                  ("subject_id", "study_id", *NEGBIO_ORDER), sorted(negbio))
    _write(base / "mimic-cxr-2.1.0-test-set-labeled.csv",
           _csv_bytes(("study_id", *airspace), sorted(test_labeled)))
    ctx.counts[MIMIC_JPG] = {"subjects": len(world), "studies": len(chexpert), "images": len(paths),
                             "metadata_rows": len(metadata)}


# --------------------------------------------------------------------------------------------
# MIMIC-CXR reports: free text in the real layout, zipped or extracted.
# --------------------------------------------------------------------------------------------

TITLE = " " * 33 + "FINAL REPORT"
ADDENDUM_TITLE = " " * 33 + "FINAL ADDENDUM"
RULE = " " + "_" * 78
INDICATIONS = ("?pleural effusion", "shortness of breath", "fever and cough, evaluate for pneumonia",
               "chest pain", "s/p line placement", "hypoxia")


def _wrapped(text: str, lead: str = "", indent: str = " ") -> list[str]:
    """Hard-wrap at 79 characters with every line starting with ``indent`` (one space)."""
    return [indent + line for line in textwrap.wrap(lead + text, width=79 - len(indent),
                                                     break_long_words=False, break_on_hyphens=False)]


def _inline(header: str, text: str) -> list[str]:
    return _wrapped(text, lead=f"{header}:  ")


def _block(header: str, text: str) -> list[str]:
    return [f" {header}: ", " ", *_wrapped(text)]


def _report(rnd: random.Random, subject: Subject, study: Study) -> tuple[str, dict[str, str]]:
    """One report in study.variant's layout, and what MIT-LCP's sectioner extracts from it."""
    findings, impression = "  ".join(study.findings_sentences), "  ".join(study.impression_sentences)
    reason = rnd.choice(INDICATIONS)
    person = "woman" if subject.gender == "F" else "man"
    portable = study.kind == "ap"
    head = [
        _inline("EXAMINATION", _procedure(study)),
        _inline("INDICATION", f"___ year old {person} with {reason}  // {reason}"),
        _inline("TECHNIQUE", "Portable AP chest" if portable else "Chest PA and lateral"),
        _inline("COMPARISON", rnd.choice(["___", "None."])),
    ]
    notification = ("The findings were discussed with Dr. ___ by Dr. ___ on the telephone on ___ "
                    f"at {rnd.randint(1, 12)}:{rnd.randrange(60):02d} {rnd.choice(['AM', 'PM'])}.")
    preamble: list[str] = []
    extracted = {"findings": findings, "impression": impression, "last_paragraph": ""}
    variant = study.variant
    body = head + [_block("FINDINGS", findings), _block("IMPRESSION", impression)]
    if variant == "impression_only":
        section = _inline if rnd.random() < 0.5 else _block  # text on the header line, or below it
        body = [head[0], head[1], head[3], section("IMPRESSION", impression)]
        extracted.update(findings="")
    elif variant == "findings_and_impression":
        body = head + [_block("FINDINGS AND IMPRESSION", f"{findings}  {impression}")]
        extracted.update(findings="", impression=f"{findings}  {impression}")
    elif variant == "conclusion":
        body = head + [_block("FINDINGS", findings), _block("CONCLUSION", impression)]
    elif variant == "addendum":
        preamble = [ADDENDUM_TITLE, *_inline("ADDENDUM", notification), " ", RULE]
    elif variant == "wet_read":
        hour = f"{rnd.randint(1, 12)}:{rnd.randrange(60):02d} {rnd.choice(['AM', 'PM'])}"
        wet = rnd.choice(["Preliminary read, final report to follow.",
                          "Please refer to the final report."])
        preamble = [f" WET READ: ___ ___ ___ {hour}", *_wrapped(wet, indent="  "), RULE]
    elif variant == "last_paragraph":  # the paragraph after COMPARISON's first blank line
        body = [head[0], head[1], head[3], _wrapped(f"{findings}  {impression}")]
        extracted.update(findings="", impression="", last_paragraph=f"{findings}  {impression}")
    elif variant == "repeated_header":
        first = rnd.choice(["Limited study due to patient rotation.",
                            "Preliminary impression, see below."])
        body = head + [_block("FINDINGS", findings), _block("IMPRESSION", first),
                       _inline("NOTIFICATION", notification), _block("IMPRESSION", impression)]
    elif variant == "misspelled_header":
        body = head + [_block("FINDINGS", findings), _block("IMPRESSON", impression)]
    lines = preamble + [TITLE]
    for k, section in enumerate(body):
        lines += ([] if k == 0 else [" "]) + section
    return "\n".join(lines) + "\n", {k: _normalise(v) for k, v in extracted.items()}


def _write_mimic_reports(ctx: _Context, world: list[Subject]) -> None:
    """One report per study as ``files/pXX/p<subject>/s<study>.txt``, plus the study/record lists."""
    base = ctx.root / MIMIC_REPORTS
    texts = {}
    for subject, study in _studies(world):
        text, extracted = _report(ctx.rnd, subject, study)
        texts[f"{study.folder}.txt"] = text
        ctx.truth["mimic"][study.study_id].update(extracted, variant=study.variant,
                                                  report_path=f"{study.folder}.txt")
    studies = [study for _, study in _studies(world)]
    standard = [study for study in studies if study.variant == "standard"] or studies
    if ctx.inject_faults:  # a report whose body is gone: nothing to extract
        study = standard[-1]
        texts[f"{study.folder}.txt"] = TITLE + "\n"
        ctx.truth["mimic"][study.study_id].update(findings="", impression="", last_paragraph="",
                                                  variant="empty_body")
        ctx.fault(MIMIC_REPORTS, "empty_report", study.study_id)

    if ctx.reports_as == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(texts):
                entry = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, texts[name])
        _write(base / "mimic-cxr-reports.zip", buffer.getvalue())
    else:
        for name in sorted(texts):
            _write(base / name, texts[name].encode())
    _write_csv_gz(base / "cxr-study-list.csv.gz", ("subject_id", "study_id", "path"),
                  [[s.subject_id, st.study_id, f"{st.folder}.txt"] for s, st in _studies(world)])
    _write_csv_gz(base / "cxr-record-list.csv.gz", ("subject_id", "study_id", "dicom_id", "path"),
                  [[s.subject_id, st.study_id, i.dicom_id, f"{st.folder}/{i.dicom_id}.dcm"]
                   for s, st in _studies(world) for i in sorted(st.images, key=lambda i: i.dicom_id)])
    ctx.counts[MIMIC_REPORTS] = {"reports": len(texts)}


# --------------------------------------------------------------------------------------------
# Open-I (Kaggle copy): two CSVs and normalised PNGs, with its XXXX de-identification.
# --------------------------------------------------------------------------------------------

OPENI_COLUMNS = ("uid", "MeSH", "Problems", "image", "indication", "comparison", "findings",
                 "impression")
OPENI_ABNORMAL = (  # (MeSH, Problems, findings sentence, impression)
    ("Cardiomegaly/mild", "Cardiomegaly", "The heart is mildly enlarged.", "Mild cardiomegaly."),
    ("Calcified Granuloma/lung/upper lobe/right", "Calcified Granuloma",
     "Calcified granuloma in the right upper lobe.", "No acute disease. Old granulomatous disease."),
    ("Opacity/lung/base/left/patchy", "Opacity", "Patchy XXXX opacity at the left lung base.",
     "Left basilar opacity, atelectasis versus pneumonia."),
    ("Pleural Effusion/right/small", "Pleural Effusion", "Small right pleural effusion is present.",
     "Small right pleural effusion."),
    ("Spine/degenerative/mild", "Spine", "Mild degenerative changes of the thoracic spine.",
     "No acute cardiopulmonary abnormality."),
    ("Pulmonary Atelectasis/base/left", "Pulmonary Atelectasis",
     "Streaky left basilar opacities consistent with atelectasis.", "Left basilar atelectasis."),
    ("Emphysema", "Emphysema", "The lungs are hyperexpanded with flattened XXXX.",
     "Emphysema. No acute process."),
)
OPENI_NORMAL_FINDINGS = (
    "The heart is normal in size.", "The mediastinum is unremarkable.",
    "Heart size and pulmonary vascularity appear within normal limits.",
    "No pneumothorax or pleural effusion is seen.", "There is no focal airspace disease.",
    "The visualized XXXX structures are intact.", "Lungs are clear without XXXX of consolidation.",
)
OPENI_NORMAL_IMPRESSIONS = ("No active disease.", "Normal chest x-XXXX.",
                            "No acute cardiopulmonary abnormality.", "No acute pulmonary disease.")
OPENI_INDICATIONS = ("XXXX-year-old male with chest pain.",
                     "XXXX-year-old female, shortness of breath.", "Positive PPD",
                     "Cough and fever for XXXX days", "Preoperative evaluation")
OPENI_COMPARISONS = ("None.", "XXXX, XXXX", "Chest x-XXXX XXXX", "Prior study dated XXXX.")
OPENI_IMAGE = ("Xray Chest PA and Lateral", "Chest, 2 views, frontal and lateral",
               "PA and lateral views of the chest XXXX, XXXX at XXXX hours")


def _write_openi(ctx: _Context, n_reports: int) -> None:
    """Reports and projections CSVs plus PNGs; missing fields left empty as in the Kaggle copy."""
    rnd, base = ctx.rnd, ctx.root / OPENI
    uids = sorted(rnd.sample(range(1, 4 * n_reports + 1), n_reports))
    no_impression = rnd.randrange(n_reports)
    others = [i for i in range(n_reports) if i != no_impression]
    no_findings = set(rnd.sample(others, max(1, round(0.13 * n_reports))))
    frontal_only, lateral_only = rnd.sample(others, 2)

    reports, projections = [], []
    for i, uid in enumerate(uids):
        abnormal = rnd.sample(OPENI_ABNORMAL, rnd.choice([0, 0, 1, 1, 2]))
        mesh = ";".join(a[0] for a in abnormal) or "normal"
        problems = ";".join(a[1] for a in abnormal) or "normal"
        normal = rnd.sample(OPENI_NORMAL_FINDINGS, rnd.randint(2, 3))
        findings = "" if i in no_findings else " ".join([a[2] for a in abnormal] + normal)
        impression = "" if i == no_impression else (
            " ".join(a[3] for a in abnormal) or rnd.choice(OPENI_NORMAL_IMPRESSIONS))
        indication = "" if rnd.random() < 0.1 else rnd.choice(OPENI_INDICATIONS)
        comparison = "" if rnd.random() < 0.3 else rnd.choice(OPENI_COMPARISONS)
        reports.append([uid, mesh, problems, rnd.choice(OPENI_IMAGE), indication, comparison,
                        findings, impression])

        views = (["Frontal"] if i == frontal_only else ["Lateral"] if i == lateral_only else
                 rnd.choices([["Frontal", "Lateral"], ["Frontal"], ["Frontal", "Frontal", "Lateral"],
                              ["Frontal", "Lateral", "Lateral"]], [75, 10, 8, 7])[0])
        series = rnd.randint(1, 3000)
        numbers = rnd.sample([1001, 2001, 3001, 4001, 5001], len(views))
        images = {}
        for view, number in zip(views, numbers):
            name = f"{uid}_IM-{series:04d}-{number:04d}.dcm.png"
            picture = _radiograph(rnd, ctx.np_rng, *_image_size(rnd), lateral=view == "Lateral")
            _write(base / "images/images_normalized" / name, _encode(picture, "PNG", compress_level=1))
            projections.append([uid, name, view])
            images[name] = view
        ctx.truth["openi"][str(uid)] = {"findings": findings, "impression": impression,
                                        "images": images}

    # Real folders hold a few PNGs the CSV never names.
    stray = f"{uids[0]}_IM-9999-9001.dcm.png"
    picture = _radiograph(rnd, ctx.np_rng, *_image_size(rnd), lateral=False)
    _write(base / "images/images_normalized" / stray, _encode(picture, "PNG", compress_level=1))
    ctx.truth["openi_unreferenced"] = [stray]

    if ctx.inject_faults:  # a projection row without its PNG; a PNG that is not an image
        missing = f"{uids[-1]}_IM-9998-9002.dcm.png"
        projections.append([uids[-1], missing, "Lateral"])
        ctx.fault(OPENI, "missing_image", missing)
        corrupt = next(name for _, name, view in projections if view == "Frontal")
        _write(base / "images/images_normalized" / corrupt, b"this is not a PNG image\n" * 8)
        ctx.fault(OPENI, "corrupt_image", corrupt)

    _write(base / "indiana_reports.csv", _csv_bytes(OPENI_COLUMNS, reports))
    projections.sort(key=lambda r: (r[0], r[1]))
    _write(base / "indiana_projections.csv", _csv_bytes(("uid", "filename", "projection"), projections))
    ctx.counts[OPENI] = {"reports": len(reports), "projections": len(projections),
                         "images": sum(len(v["images"]) for v in ctx.truth["openi"].values()) + 1}


# --------------------------------------------------------------------------------------------
# MS-CXR: phrase grounding boxes on MIMIC frontal images, CSV and COCO JSON.
# --------------------------------------------------------------------------------------------

MS_CXR_COLUMNS = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h",
                  "image_width", "image_height", "split")
LUNG_X = {"right": (0.10, 0.47), "left": (0.53, 0.90)}  # the patient's right is the image's left
ZONE_Y = {"apical": (0.10, 0.38), "lower": (0.50, 0.88), "base": (0.65, 0.92), "whole": (0.12, 0.88)}
HEART = (0.33, 0.45, 0.72, 0.85)


def _regions(f: Finding) -> list[tuple[float, float, float, float]]:
    """Where a finding sits, as fractions of the image (x0, y0, x1, y1): one region per box."""
    if f.label == "Cardiomegaly":
        return [HEART]
    zone = {"Pleural Effusion": "base", "Pneumothorax": "apical", "Edema": "whole"}.get(f.label, "lower")
    return [(LUNG_X[s][0], ZONE_Y[zone][0], LUNG_X[s][1], ZONE_Y[zone][1]) for s in f.sides]


def _box(rnd: random.Random, region, width: int, height: int) -> list[int]:
    """A box (x, y, w, h) in original pixels inside ``region``, so inside the image."""
    x0, y0, x1, y1 = (round(region[0] * width), round(region[1] * height),
                      round(region[2] * width), round(region[3] * height))
    w, h = rnd.randint((x1 - x0) // 2, x1 - x0), rnd.randint((y1 - y0) // 2, y1 - y0)
    return [rnd.randint(x0, x1 - w), rnd.randint(y0, y1 - h), w, h]


def _write_ms_cxr(ctx: _Context, world: list[Subject]) -> None:
    """Boxes for the MS-CXR categories a study shows. Its split is drawn on its own, unlike
    MIMIC's, so some MS-CXR 'train' images belong to MIMIC test patients (a leakage trap)."""
    rnd = ctx.rnd
    candidates = [(s, st) for s, st in _studies(world)
                  if st.frontal and any(f.label in MS_CXR_CATEGORIES for f in st.findings)]
    chosen = rnd.sample(candidates, min(len(candidates), max(3, (len(candidates) + 1) // 2)))
    test_candidates = [c for c in candidates if c[0].split == "test"]
    if test_candidates and not any(s.split == "test" for s, _ in chosen):
        chosen[-1] = test_candidates[0]

    phrases = []  # (subject, study, finding, label_text, ms_split, regions)
    for subject, study in chosen:
        ms_split = rnd.choices(["train", "val", "test"], [70, 10, 20])[0]
        for f in study.findings:
            if f.label in MS_CXR_CATEGORIES:
                phrases.append([subject, study, f, _finding_text(rnd, f)[1], ms_split, _regions(f)])
    if phrases and not any(len(p[5]) > 1 for p in phrases):  # a phrase with two boxes, always
        phrase = next((p for p in phrases if p[2].side), phrases[0])
        x0, _, x1, _ = phrase[5][0]
        phrase[5] = [(x0, ZONE_Y["apical"][0], x1, ZONE_Y["apical"][1]),
                     (x0, ZONE_Y["lower"][0], x1, ZONE_Y["lower"][1])]
    leaky = [p for p in phrases if p[0].split == "test"]
    if leaky and not any(p[4] == "train" for p in leaky):  # the trap, always
        for p in phrases:
            if p[1] is leaky[0][1]:
                p[4] = "train"

    rows = []
    for _subject, study, f, label_text, ms_split, regions in phrases:
        image = study.frontal
        for region in regions:
            box = _box(rnd, region, image.width, image.height)
            rows.append([image.dicom_id, f.label, label_text, f"{study.folder}/{image.dicom_id}.jpg",
                         *box, image.width, image.height, ms_split])
    rows.sort(key=lambda r: (r[0], r[1], r[2]))  # stable: a phrase's boxes keep their order
    if ctx.inject_faults and rows:  # a box running past the right edge
        row = next((r for r in rows if sum(q[:3] == r[:3] for q in rows) == 1), rows[0])
        row[6] = row[8] - row[4] + 17
        ctx.fault(MS_CXR, "box_outside_image", row[0])

    base = ctx.root / MS_CXR
    _write(base / "MS_CXR_Local_Alignment_v1.1.0.csv", _csv_bytes(MS_CXR_COLUMNS, rows))
    dicoms = sorted({r[0]: r for r in rows}.items())
    image_ids = {dicom: k for k, (dicom, _) in enumerate(dicoms, start=1)}
    category_ids = {name: k for k, name in enumerate(MS_CXR_CATEGORIES, start=1)}
    coco = {
        "images": [{"id": image_ids[d], "file_name": f"{d}.jpg", "path": r[3], "width": r[8],
                    "height": r[9]} for d, r in dicoms],
        "annotations": [{"id": k, "image_id": image_ids[r[0]], "category_id": category_ids[r[1]],
                         "bbox": r[4:8], "area": r[6] * r[7], "iscrowd": 0, "label_text": r[2]}
                        for k, r in enumerate(rows, start=1)],
        "categories": [{"id": k, "name": name} for name, k in category_ids.items()],
    }
    _write(base / "MS_CXR_Local_Alignment_v1.1.0.json", (json.dumps(coco, indent=2) + "\n").encode())
    subject_split = {s.subject_id: s.split for s in world}
    ctx.truth["ms_cxr"] = {
        "splits": {r[0]: r[10] for r in rows},
        "leaky_dicom_ids": sorted({r[0] for r in rows if r[10] != "test"
                                   and subject_split[r[3].split("/")[2][1:]] == "test"}),
    }
    ctx.counts[MS_CXR] = {"images": len(dicoms), "boxes": len(rows), "phrases": len(phrases)}


# --------------------------------------------------------------------------------------------
# MIMIC-Ext-MIMIC-CXR-VQA: templated questions per frontal image, one JSON array per split.
# --------------------------------------------------------------------------------------------

EXT_CONTENT_TYPES = ("anatomy", "attribute", "presence", "abnormality", "plane", "gender", "size")
EXT_NAME = {"Pleural Effusion": "pleural effusion", "Pneumothorax": "pneumothorax",
            "Atelectasis": "atelectasis", "Cardiomegaly": "enlarged cardiac silhouette",
            "Edema": "pulmonary edema/hazy opacity", "Consolidation": "consolidation",
            "Pneumonia": "pneumonia", "Lung Opacity": "lung opacity",
            "Support Devices": "endotracheal tube", "Fracture": "rib fracture"}
EXT_CATEGORY = {name: "anatomicalfinding" for name in EXT_NAME.values()} | {
    "pneumonia": "disease", "endotracheal tube": "tubesandlines"}
EXT_OBJECTS = ("cardiac silhouette", "left apical zone", "left chest wall",
               "left costophrenic angle", "left lower lung zone", "left lung", "mediastinum",
               "right apical zone", "right chest wall", "right costophrenic angle",
               "right lower lung zone", "right lung", "trachea")


def _ext_objects(f: Finding) -> list[str]:
    """The anatomical locations MIMIC-Ext-VQA would tie a finding to."""
    if f.label == "Cardiomegaly":
        return ["cardiac silhouette"]
    if f.label == "Support Devices":
        return ["trachea"]
    zone = {"Pleural Effusion": "costophrenic angle", "Pneumothorax": "apical zone",
            "Fracture": "chest wall", "Edema": None}.get(f.label, "lower lung zone")
    return sorted(o for s in f.sides for o in ([f"{s} {zone}"] if zone else []) + [f"{s} lung"])


def _ext_question(rnd: random.Random, content_type: str, subject: Subject, study: Study):
    """(question, semantic_type, template, program number, arguments, answer) of one content type."""
    present = {EXT_NAME[f.label]: _ext_objects(f) for f in study.findings}
    args = {"object": {}, "attribute": {}, "category": {}, "viewpos": {}, "gender": {}}

    def yes_no(truth) -> list[str]:
        return ["yes"] if truth else ["no"]

    def some_finding(p_present: float) -> str:  # one the study shows, or any at all
        if present and rnd.random() < p_present:
            return rnd.choice(sorted(present))
        return rnd.choice(sorted(EXT_CATEGORY))

    def some_object() -> str:
        if present and rnd.random() < 0.6:
            return rnd.choice(present[rnd.choice(sorted(present))])
        return rnd.choice(EXT_OBJECTS)

    if content_type == "presence":
        name = some_finding(0.5)
        on_it = name in present and rnd.random() < 0.7  # ask where it is, or somewhere else
        obj = rnd.choice(present[name]) if on_it else rnd.choice(EXT_OBJECTS)
        args.update(object={"0": obj}, attribute={"0": name})
        answer = yes_no(obj in present.get(name, []))
        return ("verify", "Is there ${attribute} in the ${object}?", 1, args, answer)
    if content_type == "abnormality":
        obj = some_object()
        found = sorted(n for n, objs in present.items() if obj in objs and n != "endotracheal tube")
        args.update(object={"0": obj})
        if rnd.random() < 0.5:
            return ("verify", "Are there any abnormalities in the ${object}?", 2, args, yes_no(found))
        return ("query", "List all abnormalities in the ${object}.", 3, args, found)
    if content_type == "anatomy":
        name = some_finding(0.6)
        args.update(attribute={"0": name})
        answer = sorted(present.get(name, []))
        return ("query", "List all anatomical locations related to ${attribute}.", 4, args, answer)
    if content_type == "attribute":
        obj, category = some_object(), rnd.choice(["anatomicalfinding", "disease", "tubesandlines"])
        found = sorted(n for n, objs in present.items() if obj in objs and EXT_CATEGORY[n] == category)
        args.update(object={"0": obj}, category={"0": category})
        if rnd.random() < 0.5:
            return ("verify", "Are there any ${category} in the ${object}?", 5, args, yes_no(found))
        return ("query", "List all ${category} in the ${object}.", 6, args, found)
    if content_type == "plane":
        if rnd.random() < 0.6:
            view = rnd.choice(FRONTAL_VIEWS)
            args.update(viewpos={"0": view})
            answer = yes_no(study.frontal.view == view)
            return ("verify", "Is this image taken in ${viewpos} view?", 7, args, answer)
        answer = [study.frontal.view.lower()]
        return ("choose", "Which view is this image taken in, AP or PA?", 8, args, answer)
    if content_type == "gender":
        if rnd.random() < 0.5:
            gender = rnd.choice("MF")
            args.update(gender={"0": gender})
            return ("verify", "Is this patient ${gender}?", 9, args, yes_no(subject.gender == gender))
        return ("choose", "Is this patient male or female?", 10, args,
                ["female" if subject.gender == "F" else "male"])
    args.update(object={"0": "cardiac silhouette"})
    answer = yes_no("Cardiomegaly" in {f.label for f in study.findings})
    return ("verify", "Is the width of the cardiac silhouette wider than 1/2 of the thorax width?",
            11, args, answer)


def _fill(template: str, args: dict) -> str:
    words = {"M": "male", "F": "female"}
    for key in ("object", "attribute", "category", "viewpos", "gender"):
        for value in args[key].values():
            word = words[value] if key == "gender" else value
            template = template.replace("${" + key + "}", word, 1)
    return template


def _write_ext_vqa(ctx: _Context, world: list[Subject]) -> None:
    """Several questions per frontal image, in the file of the patient's MIMIC split. Each image
    gets one content type in turn, so every type occurs once there are 7 images."""
    rnd = ctx.rnd
    files: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    studies = [(s, st) for s, st in _studies(world) if st.frontal]
    for k, (subject, study) in enumerate(studies):
        image, split = study.frontal, SPLIT_FILE[subject.split]
        others = [c for c in EXT_CONTENT_TYPES if c != EXT_CONTENT_TYPES[k % 7]]
        for content_type in [EXT_CONTENT_TYPES[k % 7]] + rnd.sample(others, rnd.randint(3, 5)):
            semantic, template, program, args, answer = _ext_question(rnd, content_type, subject, study)
            files[split].append({
                "split": split, "idx": len(files[split]), "subject_id": subject.subject_id,
                "study_id": study.study_id, "image_id": image.dicom_id,
                "image_path": f"{study.folder.removeprefix('files/')}/{image.dicom_id}.jpg",
                "question": _fill(template, args), "semantic_type": semantic,
                "content_type": content_type,
                "template": template, "template_program": f"program_{program}",
                "template_arguments": args, "answer": sorted(a.lower() for a in answer),
            })
    if ctx.inject_faults and files["train"]:  # a content type the release never had
        record = dict(files["train"][0], idx=len(files["train"]), content_type="weather",
                      question="Is it raining in this image?", answer=["no"])
        files["train"].append(record)
        ctx.fault(EXT_VQA, "unknown_content_type", f"train:{record['idx']}")
    for split, records in files.items():
        _write(ctx.root / EXT_VQA / "dataset" / f"{split}.json", json.dumps(records, indent=4).encode())
    ctx.counts[EXT_VQA] = {split: len(records) for split, records in files.items()}


# --------------------------------------------------------------------------------------------
# Medical-CXR-VQA: one CSV of lower-case templated questions, one frontal image per study.
# --------------------------------------------------------------------------------------------

MEDICAL_COLUMNS = ("subject_id", "study_id", "dicom_id", "question_type", "question", "answer", "split")
MEDICAL_NAMES = ("atelectasis", "cardiomegaly", "consolidation", "edema", "fracture", "lung opacity",
                 "pleural effusion", "pneumonia", "pneumothorax")
OPACITY_TYPES = ("Atelectasis", "Consolidation", "Edema", "Pneumonia")


def _medical_location(f: Finding) -> str | None:
    if f.side not in ("left", "right") or f.label == "Fracture":
        return None
    if f.label == "Pleural Effusion":
        return f"{f.side} side"
    return f"{f.side} {'upper' if f.label == 'Pneumothorax' else 'lower'} lung area"


def _write_medical_vqa(ctx: _Context, world: list[Subject]) -> None:
    """Questions of the six types on each study's frontal image; split spelled train/val/test."""
    rnd, rows = ctx.rnd, []
    for subject, study in _studies(world):
        if not study.frontal:
            continue
        diseases = [f for f in study.findings if f.label != "Support Devices"]
        names = sorted(f.label.lower() for f in diseases)
        questions = []
        if diseases:
            questions.append(("abnormality", "what abnormalities are seen in this image?",
                              ", ".join(names)))
        for _ in range(rnd.randint(1, 2)):
            name = rnd.choice(names) if names and rnd.random() < 0.5 else rnd.choice(MEDICAL_NAMES)
            questions.append(("presence", f"is there evidence of {name} in this image?",
                              "yes" if name in names else "no"))
        questions.append(("view", "which view is this image taken?", VIEW_MEANING[study.frontal.view]))
        for f in diseases:
            name = f.label.lower()
            if _medical_location(f):
                questions.append(("location", f"where is the {name} located?", _medical_location(f)))
            if f.label != "Fracture":
                questions.append(("level", f"what level is the {name}?", f.level))
        opacity = next((f for f in diseases if f.label in OPACITY_TYPES), None)
        if opacity:
            questions.append(("type", "what type is the opacity?", opacity.label.lower()))
        rows += [[subject.subject_id, study.study_id, study.frontal.dicom_id, *question,
                  MEDICAL_SPLIT[subject.split]] for question in questions]
    text = _csv_bytes(MEDICAL_COLUMNS, rows).decode().splitlines(keepends=True)
    if ctx.inject_faults and rows:  # an unquoted comma: one field too many
        r = rows[len(rows) // 2]
        line = len(rows) // 2 + 2  # 1-based, after the header and the rows before it
        text.insert(line - 1, f"{r[0]},{r[1]},{r[2]},location,where is the effusion, exactly?,"
                              f"left side,{r[6]}\n")
        ctx.fault(MEDICAL_VQA, "malformed_row", str(line))
    _write(ctx.root / MEDICAL_VQA / "medical-cxr-vqa-questions.csv", "".join(text).encode())
    ctx.counts[MEDICAL_VQA] = {"questions": len(rows)}


# --------------------------------------------------------------------------------------------
# Entry points.
# --------------------------------------------------------------------------------------------

@dataclass
class _Context:
    root: Path
    rnd: random.Random
    np_rng: np.random.Generator
    inject_faults: bool
    reports_as: str
    truth: dict
    counts: dict

    def fault(self, source: str, kind: str, item: str) -> None:
        self.truth["faults"].append({"source": source, "kind": kind, "id": item})


def _prepare(root: Path) -> None:
    """Clear earlier fixture output; refuse to touch release folders we did not write (real data)."""
    root.mkdir(parents=True, exist_ok=True)
    existing = [root / name for name in RELEASES if (root / name).exists()]
    if existing and not (root / TRUTH_FILE).exists():
        raise FileExistsError(f"{existing[0]} exists but {root / TRUTH_FILE} does not: "
                              "refusing to overwrite what may be a real release")
    for path in existing:
        shutil.rmtree(path)


def generate_releases(root: Path, seed: int = 0, subjects: int = 12, inject_faults: bool = False,
                      reports_as: str = "zip") -> dict:
    """Write the six synthetic releases under ``root`` and return the truth about them.

    The truth (also written to ``root/fixture_truth.json``) holds: ``seed``, ``subjects``,
    ``inject_faults``, ``reports_as``; ``counts`` per release (records as written, fault records
    included); ``mimic``: study_id -> {subject_id, split, findings, impression, last_paragraph,
    variant, report_path, frontal_dicom_ids, image_sizes {dicom_id: [w, h]}, view_positions,
    positive_labels}, with findings/impression/last_paragraph whitespace-normalised as MIT-LCP's
    sectioner extracts them; ``subject_splits``, ``test_subjects``; ``openi``: uid -> {findings,
    impression, images {filename: projection}} as written (XXXX kept), ``openi_unreferenced``;
    ``ms_cxr``: {splits {dicom_id: MS-CXR split}, leaky_dicom_ids (non-test MS-CXR images of MIMIC
    test patients)}; ``faults``: [{source, kind, id}] (empty without ``inject_faults``).
    Fault records stay in ``mimic`` etc. as written; a parser should reject exactly the faults.
    """
    if subjects < 1:
        raise ValueError("subjects must be at least 1")
    if reports_as not in ("zip", "tree"):
        raise ValueError(f"reports_as must be 'zip' or 'tree', not {reports_as!r}")
    root = Path(root)
    _prepare(root)
    truth = {"seed": seed, "subjects": subjects, "inject_faults": inject_faults,
             "reports_as": reports_as, "mimic": {}, "openi": {}, "faults": []}
    ctx = _Context(root, random.Random(seed), np.random.default_rng(seed), inject_faults, reports_as,
                   truth, counts={})
    world = _build_world(ctx.rnd, subjects)
    _write_mimic_jpg(ctx, world)
    _write_mimic_reports(ctx, world)
    _write_openi(ctx, max(6, subjects))
    _write_ms_cxr(ctx, world)
    _write_ext_vqa(ctx, world)
    _write_medical_vqa(ctx, world)
    truth["subject_splits"] = {s.subject_id: s.split for s in world}
    truth["test_subjects"] = sorted(s.subject_id for s in world if s.split == "test")
    truth["counts"] = ctx.counts
    _write(root / TRUTH_FILE, (json.dumps(truth, indent=2, sort_keys=True) + "\n").encode())
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.fixtures",
        description="Write small synthetic copies of the six CXR releases.")
    parser.add_argument("out_dir", type=Path, help="DATA_ROOT to write the release folders into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subjects", type=int, default=12, help="MIMIC patients (default 12)")
    parser.add_argument("--faults", action="store_true",
                        help="inject the known faults (listed in the truth file)")
    parser.add_argument("--reports-as", choices=("zip", "tree"), default="zip")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    truth = generate_releases(args.out_dir, seed=args.seed, subjects=args.subjects,
                              inject_faults=args.faults, reports_as=args.reports_as)
    c = truth["counts"]
    print(f"wrote {c[MIMIC_JPG]['subjects']} patients / {c[MIMIC_JPG]['studies']} studies / "
          f"{c[MIMIC_JPG]['images']} MIMIC images, {c[OPENI]['reports']} Open-I reports, "
          f"{c[MS_CXR]['boxes']} MS-CXR boxes, {sum(c[EXT_VQA].values())} Ext-VQA and "
          f"{c[MEDICAL_VQA]['questions']} Medical-CXR-VQA questions, {len(truth['faults'])} faults "
          f"to {args.out_dir} in {time.perf_counter() - start:.1f}s (truth: {TRUTH_FILE})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
