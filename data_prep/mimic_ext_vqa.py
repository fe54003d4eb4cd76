"""MIMIC-Ext-MIMIC-CXR-VQA 1.0.0: template questions on MIMIC-CXR images (the paper's "Ext-VQA").

Reads ``dataset/{train,valid,test}.json`` (JSON arrays). Questions are typed by the release's own
``content_type`` (anatomy, attribute, presence, abnormality, plane, gender, size); ``verify``
questions (yes/no) are closed, the others follow ``answer_kinds`` (config): a list answer stays a
list, including the empty list. Images and split come from MIMIC-CXR-JPG by ``image_id`` so that
splits agree by patient with every other MIMIC-derived source. Each file is read through
``data_prep.readers.json_records``: a file that is not a non-empty list of records is refused.
"""

from __future__ import annotations

from pathlib import Path

from data_prep import readers
from data_prep.mimic_cxr import MimicIndex
from data_prep.records import Sample, SkipLog, SourceMissingError

SOURCE = "mimic-ext-vqa"
FILES = ("train.json", "valid.json", "test.json")


def vqa_samples(root: Path, index: MimicIndex, answer_kinds: dict[str, str], skips: SkipLog) -> list[Sample]:
    dataset = root / "dataset"
    present = [dataset / name for name in FILES if (dataset / name).exists()]
    if not present:
        raise SourceMissingError(f"{dataset} has none of {list(FILES)}")
    samples = []
    for path in present:
        for position, item, record in readers.json_records(path, SOURCE, skips):
            sample = _sample(record, item, f"{SOURCE}/{path.stem}/{position}", index, answer_kinds, skips)
            if sample is not None:
                samples.append(sample)
    return samples


def _sample(
    record, item: str, sample_id: str, index: MimicIndex, answer_kinds: dict[str, str], skips: SkipLog
) -> Sample | None:
    if not isinstance(record, dict):
        skips.skip(SOURCE, "malformed_record", item)
        return None
    question, answer = record.get("question"), record.get("answer")
    content_type, semantic_type = record.get("content_type"), record.get("semantic_type")
    dicom = record.get("image_id") or Path(str(record.get("image_path", ""))).stem
    if not isinstance(question, str) or not question.strip() or not isinstance(answer, list):
        skips.skip(SOURCE, "malformed_record", item, str(record)[:200])
        return None
    if not all(isinstance(value, str) for value in answer):
        skips.skip(SOURCE, "malformed_answer", item, str(answer))
        return None
    if not isinstance(content_type, str) or content_type not in answer_kinds:
        skips.skip(SOURCE, "unknown_question_type", item, str(content_type))
        return None
    image = index.images.get(dicom) if isinstance(dicom, str) else None
    if image is None:
        skips.skip(SOURCE, "image_not_in_mimic_metadata", item, str(dicom))
        return None
    kind = "closed" if semantic_type == "verify" else answer_kinds[content_type]
    if kind == "closed" and len(answer) != 1:
        skips.skip(SOURCE, "closed_question_without_single_answer", item, str(answer))
        return None
    return Sample(
        sample_id=sample_id,
        source=SOURCE,
        task="vqa",
        subtype=content_type,
        split=image.split,
        subject=image.subject,
        image=image.path,
        answer=answer[0] if kind == "closed" else tuple(answer),
        answer_kind=kind,
        question=" ".join(question.split()),
        image_size=image.size,
    )
