"""MIMIC-CXR-JPG 2.1.0 (images, metadata, official split) with the MIMIC-CXR 2.0.0 reports.

Reads, streaming:
- ``mimic-cxr-2.0.0-metadata.csv.gz`` (view position, Rows = height, Columns = width) and
  ``mimic-cxr-2.0.0-split.csv.gz`` (train / validate / test, disjoint by patient);
- the reports from ``mimic_cxr_sectioned.csv`` (MIT-LCP's output) if present, else from
  ``mimic-cxr-reports.zip``, else from an extracted ``files/`` tree, sectioned by
  ``data_prep.mimic_sections``.
Yields the ``MimicIndex`` that MS-CXR and both VQA sources join on, and the report-generation
samples: one frontal image per study (ViewPosition in ``frontal_views``, in order of preference),
findings and impression as separate tasks; a study without a section is not emitted for that task.
"""

from __future__ import annotations

import csv
import gzip
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.mimic_sections import report_sections
from data_prep.records import Sample, SkipLog, SourceMissingError, section_samples

SOURCE = "mimic-cxr"
METADATA = "mimic-cxr-2.0.0-metadata.csv.gz"
SPLIT = "mimic-cxr-2.0.0-split.csv.gz"
REPORT_NAME = re.compile(r"(?:^|/)s(\d{8})\.txt$")


@dataclass(frozen=True, slots=True)
class MimicImage:
    # Compact on purpose: an index holds ~377K of these (slots, and the path built on demand).
    dicom_id: str
    subject_id: str
    study_id: str
    view: str
    width: int | None
    height: int | None
    split: str
    root: Path

    @property
    def subject(self) -> str:
        """The patient, as the leakage check names it."""
        return f"mimic:{self.subject_id}"

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) from the metadata, when it states both."""
        return (self.width, self.height) if self.width and self.height else None

    @property
    def path(self) -> Path:
        subject = self.subject_id
        return self.root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{self.study_id}" / f"{self.dicom_id}.jpg"


@dataclass
class MimicIndex:
    images: dict[str, MimicImage] = field(default_factory=dict)  # dicom_id -> image
    frontal_by_study: dict[str, str] = field(default_factory=dict)  # study_id -> chosen dicom_id
    subject_split: dict[str, str] = field(default_factory=dict)
    sections: dict[str, dict[str, str]] = field(default_factory=dict)  # study_id -> raw sections


def release_root(folder: Path, marker: str) -> Path:
    """The folder holding ``marker``: ``folder`` itself or one version folder below (``2.1.0/``)."""
    if (folder / marker).exists():
        return folder
    nested = sorted(p.parent for p in folder.glob(f"*/{marker}"))
    if nested:
        return nested[-1]
    raise SourceMissingError(f"{folder} has no {marker} (nor a version folder holding it)")


def read_gz_csv(path: Path) -> Iterator[dict[str, str]]:
    """Rows as dicts keyed by the header (column order varies between copies of the release)."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        for values in reader:
            yield dict(zip(header, values))


def _int_or_none(value: str) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def index_images(jpg_root: Path, frontal_views: list[str], skips: SkipLog) -> MimicIndex:
    root = release_root(jpg_root, METADATA)
    split_path = root / SPLIT
    if not split_path.exists():
        raise SourceMissingError(f"{split_path} is missing: MIMIC-CXR-JPG ships it beside the metadata")
    split_of: dict[str, str] = {}
    for row in read_gz_csv(split_path):
        if row.get("dicom_id") and row.get("split") in ("train", "validate", "test"):
            split_of[row["dicom_id"]] = row["split"]
        else:
            skips.skip(SOURCE, "malformed_split_row", row.get("dicom_id") or "?", str(row))

    index = MimicIndex()
    preference = {view: rank for rank, view in enumerate(frontal_views)}
    best: dict[str, tuple[int, str]] = {}
    for row in read_gz_csv(root / METADATA):
        dicom, subject, study = row.get("dicom_id", ""), row.get("subject_id", ""), row.get("study_id", "")
        if not (len(subject) == 8 and subject.isdigit() and len(study) == 8 and study.isdigit() and dicom):
            skips.skip(SOURCE, "malformed_metadata_row", dicom or "?", str(row))
            continue
        split = split_of.get(dicom)
        if split is None:
            skips.skip(SOURCE, "image_not_in_split_file", dicom)
            continue
        previous = index.subject_split.setdefault(subject, split)
        if previous != split:
            raise ValueError(f"MIMIC subject {subject} is in both {previous} and {split}: the split file is corrupt")
        view = (row.get("ViewPosition") or "").strip()
        index.images[dicom] = MimicImage(
            dicom, subject, study, view, _int_or_none(row.get("Columns")), _int_or_none(row.get("Rows")), split, root
        )
        if view in preference:
            candidate = (preference[view], dicom)
            if study not in best or candidate < best[study]:
                best[study] = candidate
    index.frontal_by_study = {study: dicom for study, (_, dicom) in sorted(best.items())}
    return index


def _report_texts(reports_root: Path, wanted: set[str]) -> Iterator[tuple[str, str]]:
    """(study_id, report text) for the wanted studies, from the zip or the extracted tree."""
    archive = next(iter(sorted(reports_root.glob("*.zip"))), None)
    if archive is not None:
        with zipfile.ZipFile(archive) as zipped:
            for name in sorted(zipped.namelist()):
                match = REPORT_NAME.search(name)
                if match and match.group(1) in wanted:
                    yield match.group(1), zipped.read(name).decode("utf-8", errors="replace")
        return
    for path in sorted(reports_root.rglob("s*.txt")):
        match = REPORT_NAME.search(path.as_posix())
        if match and match.group(1) in wanted:
            yield match.group(1), path.read_text(encoding="utf-8", errors="replace")


def index_reports(reports_root: Path, index: MimicIndex, skips: SkipLog) -> None:
    """Fill ``index.sections`` for every study that has a frontal image."""
    wanted = set(index.frontal_by_study)
    sectioned = reports_root / "mimic_cxr_sectioned.csv"
    if sectioned.exists():
        with sectioned.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                study = (row.get("study") or "").lstrip("s")
                if study in wanted:
                    index.sections[study] = {k: row.get(k) or "" for k in ("findings", "impression")}
    else:
        if not reports_root.exists() or not (any(reports_root.glob("*.zip")) or (reports_root / "files").exists()):
            raise SourceMissingError(
                f"{reports_root} has no mimic-cxr-reports.zip, files/ tree or mimic_cxr_sectioned.csv"
            )
        for study, text in _report_texts(reports_root, wanted):
            index.sections[study] = report_sections(text)
    for study in sorted(wanted - set(index.sections)):
        skips.skip(SOURCE, "no_report_for_study", f"s{study}")


def load(jpg_root: Path, reports_root: Path, frontal_views: list[str], skips: SkipLog) -> MimicIndex:
    index = index_images(jpg_root, frontal_views, skips)
    index_reports(reports_root, index, skips)
    return index


def report_samples(index: MimicIndex, placeholder: str, skips: SkipLog) -> list[Sample]:
    samples = []
    for study, dicom in index.frontal_by_study.items():
        sections = index.sections.get(study)
        if sections is None:
            continue
        image = index.images[dicom]
        common = {
            "split": image.split,
            "subject": image.subject,
            "image": image.path,
            "image_size": image.size,
        }
        samples += section_samples(SOURCE, f"s{study}", sections, common, placeholder, skips)
    return samples
