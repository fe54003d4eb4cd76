"""Open-I / Indiana University chest X-rays: the Kaggle copy, or NLM's original XML release.

Kaggle: ``indiana_reports.csv`` (findings, impression per ``uid``), ``indiana_projections.csv``
(``Frontal`` / ``Lateral`` per image file) and ``images/images_normalized/*.png``.
NLM: ``ecgen-radiology/<n>.xml`` with ``<AbstractText Label="FINDINGS">`` and ``<parentImage id=...>``,
images ``<id>.png`` in ``images/`` (the XML does not say which view an image is; the first listed
is taken).

Open-I has no official split: a study goes to test / validate / train by a stable hash of its uid
(``split_seed``), so every build puts it in the same split. ``XXXX`` de-identification marks become
the project's placeholder (``records.clean_text``). A study without the section is not emitted for
that task. Files are read through ``data_prep.readers``; a uid listed twice in the reports is a
counted skip (the first row is kept).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from data_prep import readers
from data_prep.records import Sample, SkipLog, SourceMissingError, section_samples

SOURCE = "openi"
REPORT_COLUMNS = ("uid", "findings", "impression")
PROJECTION_COLUMNS = ("uid", "filename", "projection")


def stable_split(uid: str, test_fraction: float, validate_fraction: float, split_seed: int) -> str:
    digest = hashlib.sha256(f"openi:{split_seed}:{uid}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + validate_fraction:
        return "validate"
    return "train"


def _kaggle_studies(root: Path, skips: SkipLog) -> list[tuple[str, dict[str, str], Path]]:
    """(uid, {findings, impression}, frontal image) per study of the Kaggle copy."""
    projections = root / "indiana_projections.csv"
    if not projections.exists():
        raise SourceMissingError(f"{projections} is missing: the Kaggle copy ships it beside indiana_reports.csv")
    frontal: dict[str, str] = {}
    for line in readers.csv_rows(projections, SOURCE, skips, PROJECTION_COLUMNS):
        row = line.values
        uid, filename = row["uid"].strip(), row["filename"].strip()
        if not uid or not filename:
            skips.skip(SOURCE, "malformed_projection_row", line.item, str(row)[:200])
        elif row["projection"].strip() == "Frontal":
            frontal[uid] = min(frontal.get(uid, filename), filename)
    studies, seen = [], set()
    for line in readers.csv_rows(root / "indiana_reports.csv", SOURCE, skips, REPORT_COLUMNS, multiline=True):
        row = line.values
        uid = row["uid"].strip()
        if not uid.isdigit():
            skips.skip(SOURCE, "malformed_report_row", line.item, str(row)[:200])
            continue
        if uid in seen:
            skips.skip(SOURCE, "duplicate_uid", line.item, f"uid {uid} has two report rows")
            continue
        seen.add(uid)
        if uid not in frontal:
            skips.skip(SOURCE, "no_frontal_view", f"uid {uid}")
            continue
        sections = {"findings": row["findings"], "impression": row["impression"]}
        studies.append((uid, sections, root / "images" / "images_normalized" / frontal[uid]))
    return studies


def _xml_studies(root: Path, skips: SkipLog) -> list[tuple[str, dict[str, str], Path]]:
    studies = []
    for path in sorted((root / "ecgen-radiology").glob("*.xml"), key=lambda p: (len(p.stem), p.stem)):
        text = readers.text_file(path, SOURCE, skips, path.name)
        if text is None:
            continue
        try:  # the text, decoded by the readers' rule (an XML encoding declaration is not trusted)
            tree = ElementTree.ElementTree(ElementTree.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", text)))
        except ElementTree.ParseError as error:
            skips.skip(SOURCE, "malformed_xml", path.name, str(error))
            continue
        sections = {
            label.lower(): "".join(node.itertext())
            for node in tree.iter("AbstractText")
            if (label := (node.get("Label") or "").upper()) in ("FINDINGS", "IMPRESSION")
        }
        images = [node.get("id") for node in tree.iter("parentImage") if node.get("id")]
        if not images:
            skips.skip(SOURCE, "no_image", path.name)
            continue
        studies.append((path.stem, sections, root / "images" / f"{images[0]}.png"))
    return studies


def report_samples(
    root: Path,
    placeholder: str,
    test_fraction: float,
    validate_fraction: float,
    split_seed: int,
    skips: SkipLog,
) -> list[Sample]:
    if (root / "indiana_reports.csv").exists():
        studies = _kaggle_studies(root, skips)
    elif (root / "ecgen-radiology").is_dir():
        studies = _xml_studies(root, skips)
    else:
        raise SourceMissingError(f"{root} has neither indiana_reports.csv (Kaggle) nor ecgen-radiology/ (NLM)")
    samples = []
    for uid, sections, image in sorted(studies, key=lambda study: int(re.sub(r"\D", "", study[0]) or 0)):
        common = {
            "split": stable_split(uid, test_fraction, validate_fraction, split_seed),
            "subject": f"openi:{uid}",
            "image": image,
        }
        samples += section_samples(SOURCE, uid, sections, common, placeholder, skips)
    return samples
