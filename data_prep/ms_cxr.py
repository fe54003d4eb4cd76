"""MS-CXR 1.1.0: phrases of MIMIC-CXR reports grounded to boxes on the MIMIC images.

Reads ``MS_CXR_Local_Alignment_v1.1.0.csv`` (one row per box: ``x, y, w, h`` = top-left corner and
size in pixels of the original full-resolution image) or, without it, the COCO-style ``.json``.
Rows that repeat (dicom_id, category, phrase) are one phrase with several boxes. Images and the
split come from MIMIC-CXR-JPG: MS-CXR's own ``split`` column is **not** MIMIC's, and using it
would leak MIMIC test patients into training, so it is ignored. Boxes are kept in original pixels
here; the build converts them to the model's frame. Files are read through ``data_prep.readers``:
a row repeated exactly is one box, counted as ``duplicate_row``, not a second copy of the box.

Every MS-CXR phrase names a finding that is there, so a presence question built from it is always
answered "yes". ``absent_finding_samples`` balances them with questions whose answer is "no": for
each category and split, as many frontal MIMIC images (times ``per_present``) whose report rules the
category out, i.e. whose MIMIC-CXR-JPG CheXpert label is 0.0 (negated), the labeller's reading of
the report, not a radiologist's. MS-CXR's eight categories are CheXpert labels.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from data_prep import readers
from data_prep.mimic_cxr import MimicIndex, release_root
from data_prep.mixtures import draw
from data_prep.records import Sample, SkipLog, SourceMissingError

SOURCE = "ms-cxr"
COLUMNS = ("dicom_id", "category_name", "label_text", "x", "y", "w", "h")  # image_width/height: optional
CHEXPERT = "mimic-cxr-2.0.0-chexpert.csv.gz"
ABSENT_SOURCE = "mimic-cxr"  # absent findings come from MIMIC-CXR-JPG's CheXpert labels


def _csv_rows(path: Path, skips: SkipLog) -> list[tuple[str, dict]]:
    return [(row.item, row.values)
            for row in readers.csv_rows(path, SOURCE, skips, COLUMNS, multiline=True)]


def _coco_rows(path: Path, skips: SkipLog) -> list[tuple[str, dict]]:
    coco, _, fallbacks = readers.json_document(path)
    if fallbacks:
        skips.warn(SOURCE, f"decoded_as_{fallbacks[0][1]}", path.name, f"{len(fallbacks)} lines not UTF-8")
    lists = {key: coco.get(key) for key in ("images", "categories", "annotations")} if isinstance(coco, dict) else {}
    if not lists or not all(isinstance(value, list) for value in lists.values()):
        raise readers.SourceFileError(
            f"{path} is {readers.describe(coco)}; MS-CXR's COCO file is an object with lists "
            "images, categories and annotations")
    if not lists["annotations"]:
        raise readers.SourceFileError(f"{path} has no annotations")
    def key(value):  # ids are numbers or strings; anything else matches nothing
        return value if isinstance(value, (int, str)) else None

    images = {key(image.get("id")): image for image in lists["images"] if isinstance(image, dict)}
    categories = {key(c.get("id")): c.get("name") for c in lists["categories"] if isinstance(c, dict)}
    images.pop(None, None), categories.pop(None, None)
    rows, seen = [], set()
    for position, annotation in enumerate(lists["annotations"]):
        item = f"{path.name}:annotations[{position}]"
        if not isinstance(annotation, dict):
            skips.skip(SOURCE, "malformed_row", item, readers.describe(annotation))
            continue
        canonical = json.dumps(annotation, sort_keys=True, default=str)
        if canonical in seen:
            skips.skip(SOURCE, "duplicate_row", item, "an annotation repeated exactly")
            continue
        seen.add(canonical)
        image = images.get(key(annotation.get("image_id"))) or {}
        bbox = annotation.get("bbox")
        x, y, w, h = ((bbox if isinstance(bbox, list) else []) + [None] * 4)[:4]
        rows.append((item, {
            "dicom_id": Path(str(image.get("file_name") or image.get("path") or "")).stem,
            "category_name": str(categories.get(key(annotation.get("category_id"))) or ""),
            "label_text": str(annotation.get("label_text") or ""),
            "x": x, "y": y, "w": w, "h": h,
            "image_width": image.get("width"), "image_height": image.get("height"),
        }))
    return rows


def _box(row: dict) -> tuple[float, float, float, float] | None:
    try:
        x, y, w, h = (float(row[key]) for key in ("x", "y", "w", "h"))
    except (KeyError, TypeError, ValueError):
        return None
    return (x, y, x + w, y + h)


def grounding_samples(root: Path, index: MimicIndex, skips: SkipLog) -> list[Sample]:
    csv_files = sorted(root.glob("MS_CXR_Local_Alignment_*.csv"))
    json_files = sorted(root.glob("MS_CXR_Local_Alignment_*.json"))
    if csv_files:
        rows = _csv_rows(csv_files[-1], skips)
    elif json_files:
        rows = _coco_rows(json_files[-1], skips)
    else:
        raise SourceMissingError(f"{root} has no MS_CXR_Local_Alignment_*.csv or .json")

    phrases: dict[tuple[str, str, str], list] = {}
    for where, row in rows:
        dicom = (row.get("dicom_id") or "").strip()
        phrase = " ".join((row.get("label_text") or "").split())
        category = (row.get("category_name") or "").strip()
        item = f"{where} {dicom} {phrase[:40]!r}"
        box = _box(row)
        image = index.images.get(dicom)
        if not dicom or not phrase or not category or box is None:
            skips.skip(SOURCE, "malformed_row", item, str(row))
            continue
        if image is None:
            skips.skip(SOURCE, "image_not_in_mimic_metadata", item)
            continue
        try:
            width, height = int(float(row["image_width"])), int(float(row["image_height"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            width, height = image.width, image.height
        if not width or not height:
            skips.skip(SOURCE, "image_size_unknown", item)
            continue
        if image.size and (width, height) != image.size:
            skips.skip(SOURCE, "image_size_disagrees_with_mimic", item, f"{width}x{height} vs {image.width}x{image.height}")
            continue
        x1, y1, x2, y2 = box
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            skips.skip(SOURCE, "box_outside_image", item, f"{box} in {width}x{height}")
            continue
        phrases.setdefault((dicom, category, phrase), [(width, height)]).append(box)

    samples = []
    for (dicom, category, phrase), (size, *boxes) in sorted(phrases.items()):
        image = index.images[dicom]
        phrase_key = hashlib.sha1(f"{category}\n{phrase}".encode()).hexdigest()[:10]
        samples.append(
            Sample(
                sample_id=f"{SOURCE}/{dicom}/{phrase_key}",
                source=SOURCE,
                task="grounding",
                subtype=category,
                split=image.split,
                subject=image.subject,
                image=image.path,
                answer=phrase,
                answer_kind="open_ended",
                question=phrase,
                boxes=tuple(boxes),
                image_size=size,
            )
        )
    return samples


def _ruled_out(jpg_root: Path, categories: set[str], skips: SkipLog) -> dict[str, set[str]]:
    """category -> study_ids whose CheXpert label for it is 0.0 (the report negates it)."""
    try:
        path = release_root(jpg_root, CHEXPERT) / CHEXPERT
    except SourceMissingError as error:
        raise SourceMissingError(f"{error}: the grounding slice's absent-finding questions read it "
                                 "(grounding.absent_per_present=0 turns them off)") from None
    ruled_out: dict[str, set[str]] = {category: set() for category in categories}
    header_checked = False
    for checked in readers.csv_rows(path, ABSENT_SOURCE, skips, ("study_id",)):
        row = checked.values
        if not header_checked:
            columns = {name.lower(): name for name in row}
            missing = sorted(c for c in categories if c.lower() not in columns)
            for category in missing:
                skips.skip(SOURCE, "category_not_a_chexpert_label", category, f"{path.name} columns: {sorted(row)}")
                ruled_out.pop(category)
            header_checked = True
        study = (row.get("study_id") or "").strip()
        for category in ruled_out:
            value = (row.get(columns[category.lower()]) or "").strip()
            try:
                if value and float(value) == 0.0:
                    ruled_out[category].add(study)
            except ValueError:
                skips.skip(ABSENT_SOURCE, "malformed_chexpert_value", study, f"{category}={value!r}")
    return ruled_out


def absent_finding_samples(
    jpg_root: Path, index: MimicIndex, present: list[Sample], per_present: float, seed: int, skips: SkipLog
) -> list[Sample]:
    """Presence questions answered "no", as many per (category, split) as MS-CXR has "yes" ones
    times ``per_present``, drawn under ``seed`` from frontal images whose report rules it out."""
    if per_present <= 0 or not present:
        return []
    wanted: dict[tuple[str, str], int] = {}
    for sample in present:
        wanted[(sample.subtype, sample.split)] = wanted.get((sample.subtype, sample.split), 0) + 1
    shown = {(sample.subtype, sample.image) for sample in present}
    ruled_out = _ruled_out(jpg_root, {category for category, _ in wanted}, skips)
    samples = []
    for (category, split), count in sorted(wanted.items()):
        pool = []
        for study in sorted(ruled_out.get(category, ())):
            image = index.images.get(index.frontal_by_study.get(study, ""))
            if image is not None and image.split == split and (category, image.path) not in shown:
                pool.append(image)
        target = int(round(count * per_present))
        for image in draw(pool, target, seed, f"absent/{category}/{split}"):
            samples.append(Sample(
                sample_id=f"{ABSENT_SOURCE}/absent/{category.lower().replace(' ', '-')}/{image.dicom_id}",
                source=ABSENT_SOURCE,
                task="grounding",
                subtype=category,
                split=split,
                subject=image.subject,
                image=image.path,
                answer="no",
                answer_kind="closed",
                image_size=image.size,
            ))
    return samples
