"""MS-CXR 1.1.0: phrases of MIMIC-CXR reports grounded to boxes on the MIMIC images.

Reads ``MS_CXR_Local_Alignment_v1.1.0.csv`` (one row per box: ``x, y, w, h`` = top-left corner and
size in pixels of the original full-resolution image) or, without it, the COCO-style ``.json``.
Rows that repeat (dicom_id, category, phrase) are one phrase with several boxes. Images and the
split come from MIMIC-CXR-JPG: MS-CXR's own ``split`` column is **not** MIMIC's, and using it
would leak MIMIC test patients into training, so it is ignored. Boxes are kept in original pixels
here; the build converts them to the model's frame.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from data_prep.mimic_cxr import MimicIndex
from data_prep.records import Sample, SkipLog, SourceMissingError

SOURCE = "ms-cxr"


def _csv_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _coco_rows(path: Path) -> list[dict]:
    coco = json.loads(path.read_text(encoding="utf-8"))
    images = {image["id"]: image for image in coco.get("images", [])}
    categories = {category["id"]: category["name"] for category in coco.get("categories", [])}
    rows = []
    for annotation in coco.get("annotations", []):
        image = images.get(annotation.get("image_id"), {})
        x, y, w, h = (list(annotation.get("bbox") or []) + [None] * 4)[:4]
        rows.append({
            "dicom_id": Path(image.get("file_name") or image.get("path") or "").stem,
            "category_name": categories.get(annotation.get("category_id"), ""),
            "label_text": annotation.get("label_text", ""),
            "x": x, "y": y, "w": w, "h": h,
            "image_width": image.get("width"), "image_height": image.get("height"),
        })
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
        rows = _csv_rows(csv_files[-1])
    elif json_files:
        rows = _coco_rows(json_files[-1])
    else:
        raise SourceMissingError(f"{root} has no MS_CXR_Local_Alignment_*.csv or .json")

    phrases: dict[tuple[str, str, str], list] = {}
    for row in rows:
        dicom = (row.get("dicom_id") or "").strip()
        phrase = " ".join((row.get("label_text") or "").split())
        category = (row.get("category_name") or "").strip()
        item = f"{dicom} {phrase[:40]!r}"
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
        except (KeyError, TypeError, ValueError):
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
