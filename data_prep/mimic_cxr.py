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
Every file is read through ``data_prep.readers`` (required columns, decoding, counted bad rows). An
image or study listed twice is a counted skip (the first listing is kept); a report with no text
at all is damage (``empty_report``), unlike a report that lacks a section (a content gap).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_prep import readers
from data_prep.mimic_sections import report_sections
from data_prep.records import Sample, SkipLog, SourceMissingError, section_samples

SOURCE = "mimic-cxr"
METADATA = "mimic-cxr-2.0.0-metadata.csv.gz"
SPLIT = "mimic-cxr-2.0.0-split.csv.gz"
SECTIONED = "mimic_cxr_sectioned.csv"
METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition", "Rows", "Columns")
SPLIT_COLUMNS = ("dicom_id", "split")
SECTIONED_COLUMNS = ("study", "findings", "impression")
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


def _int_or_none(value: str) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number > 0 else None


def index_images(jpg_root: Path, frontal_views: list[str], skips: SkipLog) -> MimicIndex:
    root = release_root(jpg_root, METADATA)
    split_path = root / SPLIT
    if not split_path.exists():
        raise SourceMissingError(f"{split_path} is missing: MIMIC-CXR-JPG ships it beside the metadata")
    split_of: dict[str, str] = {}
    for row in readers.csv_rows(split_path, SOURCE, skips, SPLIT_COLUMNS):
        dicom, split = row.values["dicom_id"].strip(), row.values["split"].strip()
        if not dicom or split not in ("train", "validate", "test"):
            skips.skip(SOURCE, "malformed_split_row", row.item, str(row.values)[:200])
        elif dicom in split_of:
            skips.skip(SOURCE, "duplicate_dicom_id", row.item, f"{dicom} is listed twice in {SPLIT}")
        else:
            split_of[dicom] = split

    index = MimicIndex()
    preference = {view: rank for rank, view in enumerate(frontal_views)}
    best: dict[str, tuple[int, str]] = {}
    for line in readers.csv_rows(root / METADATA, SOURCE, skips, METADATA_COLUMNS):
        row = line.values
        dicom, subject, study = row["dicom_id"].strip(), row["subject_id"].strip(), row["study_id"].strip()
        if not (len(subject) == 8 and subject.isdigit() and len(study) == 8 and study.isdigit() and dicom):
            skips.skip(SOURCE, "malformed_metadata_row", line.item, str(row)[:200])
            continue
        if dicom in index.images:
            skips.skip(SOURCE, "duplicate_dicom_id", line.item, f"{dicom} is listed twice in {METADATA}")
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
    if not index.images:
        raise readers.SourceFileError(
            f"no image of {root / METADATA} is in {split_path} with a valid split: one of them is broken "
            f"(skipped rows: {skips.counts().get(SOURCE, {})})")
    return index


def _report_texts(reports_root: Path, wanted: set[str], skips: SkipLog) -> Iterator[tuple[str, str]]:
    """(study_id, report text) for the wanted studies, from the zip or the extracted tree."""
    def study_of(name: str) -> str | None:
        match = REPORT_NAME.search(name)
        return match.group(1) if match and match.group(1) in wanted else None

    archive = next(iter(sorted(reports_root.glob("*.zip"))), None)
    if archive is not None:
        yield from readers.zip_texts(archive, study_of, SOURCE, skips)
        return
    for path in sorted(reports_root.rglob("s*.txt")):
        study = study_of(path.as_posix())
        if study is not None:
            text = readers.text_file(path, SOURCE, skips, str(path.relative_to(reports_root)))
            if text is not None:
                yield study, text


def index_reports(reports_root: Path, index: MimicIndex, skips: SkipLog) -> None:
    """Fill ``index.sections`` for every study that has a frontal image."""
    wanted = set(index.frontal_by_study)
    counted: set[str] = set()  # studies whose report is already a counted skip
    sectioned = reports_root / SECTIONED
    if sectioned.exists():
        for row in readers.csv_rows(sectioned, SOURCE, skips, SECTIONED_COLUMNS, multiline=True):
            study = row.values["study"].strip().lstrip("s")
            if study not in wanted:
                continue
            if study in index.sections or study in counted:
                skips.skip(SOURCE, "duplicate_report", row.item, f"s{study} is listed twice in {SECTIONED}")
            elif not any(value.strip() for column, value in row.values.items() if column != "study"):
                skips.skip(SOURCE, "empty_report", row.item, f"s{study}: every section is empty")
                counted.add(study)
            else:
                index.sections[study] = {k: row.values[k] for k in ("findings", "impression")}
    else:
        if not reports_root.exists() or not (any(reports_root.glob("*.zip")) or (reports_root / "files").exists()):
            raise SourceMissingError(
                f"{reports_root} has no mimic-cxr-reports.zip, files/ tree or {SECTIONED}"
            )
        mark = len(skips.rows)
        for study, text in _report_texts(reports_root, wanted, skips):
            if study in index.sections or study in counted:
                skips.skip(SOURCE, "duplicate_report", f"s{study}", "two report files for one study")
            elif not text.strip():
                skips.skip(SOURCE, "empty_report", f"s{study}", "the report file holds no text")
                counted.add(study)
            else:
                index.sections[study] = report_sections(text)
        # A report that could not be read is counted once, as unreadable_file, not again below.
        counted |= {match.group(1) for row in skips.rows[mark:] if row["reason"] == "unreadable_file"
                  and (match := REPORT_NAME.search(row["item"]))}
    for study in sorted(wanted - set(index.sections) - counted):
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
