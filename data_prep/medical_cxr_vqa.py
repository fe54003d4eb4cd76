"""Medical-CXR-VQA 1.0.0: LLM-enhanced questions on frontal MIMIC-CXR images (the paper's "CXR-VQA").

Reads ``medical-cxr-vqa-questions.csv`` (the README spells it with underscores: both accepted),
columns by name. Questions are typed by the release's ``question_type`` (abnormality, presence,
view, location, level, type); ``answer_kinds`` (config) says which are lists (abnormality lists
are joined with ", " in the release and are split back). Images come from MIMIC-CXR-JPG by
``dicom_id``. The split is the release's own ``split`` column (``split="release"``, default; its
labels are read through ``records.SPLIT_NAMES``, an unknown one is a counted skip): the rebuilt
XrayBench draws from its test split; the build keeps every evaluation patient out of training.
``split="mimic"`` takes MIMIC's split of the image instead. The file is read through
``data_prep.readers.csv_rows`` (required columns, decoding, counted bad and duplicate rows).
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from data_prep import readers
from data_prep.mimic_cxr import MimicIndex
from data_prep.records import SPLIT_NAMES, Sample, SkipLog, SourceMissingError

SOURCE = "medical-cxr-vqa"
NAMES = ("medical-cxr-vqa-questions.csv", "medical_cxr_vqa_questions.csv")
COLUMNS = ("subject_id", "study_id", "dicom_id", "question_type", "question", "answer")


def vqa_samples(
    root: Path, index: MimicIndex, answer_kinds: dict[str, str], skips: SkipLog, split: str = "release"
) -> list[Sample]:
    if split not in ("release", "mimic"):
        raise ValueError(f"vqa.split must be 'release' or 'mimic', got {split!r}")
    path = next((root / name for name in NAMES if (root / name).exists()), None)
    if path is None:
        raise SourceMissingError(f"{root} has no {' or '.join(NAMES)}")
    samples = []
    needed = COLUMNS + (("split",) if split == "release" else ())
    rows = readers.csv_rows(path, SOURCE, skips, needed, multiline=True)
    with closing(rows):  # the file is closed even when a later check stops the parse
        for checked in rows:
            row, item, line = checked.values, checked.item, checked.line
            question_type, question, answer = row["question_type"].strip(), row["question"].strip(), row["answer"].strip()
            if question_type not in answer_kinds:
                skips.skip(SOURCE, "unknown_question_type", item, question_type)
                continue
            if not question or not answer:
                skips.skip(SOURCE, "empty_question_or_answer", item)
                continue
            image = index.images.get(row["dicom_id"].strip())
            if image is None:
                skips.skip(SOURCE, "image_not_in_mimic_metadata", item, row["dicom_id"])
                continue
            kind = answer_kinds[question_type]
            sample_split = image.split
            if split == "release":
                sample_split = SPLIT_NAMES.get((row.get("split") or "").strip().lower())
                if sample_split is None:
                    skips.skip(SOURCE, "unknown_split_label", item, str(row.get("split")))
                    continue
            samples.append(
                Sample(
                    sample_id=f"{SOURCE}/{line}",
                    source=SOURCE,
                    task="vqa",
                    subtype=question_type,
                    split=sample_split,
                    subject=image.subject,
                    image=image.path,
                    answer=tuple(a.strip() for a in answer.split(",") if a.strip()) if kind == "multi_object" else answer,
                    answer_kind=kind,
                    question=" ".join(question.split()),
                    image_size=image.size,
                )
            )
    return samples
