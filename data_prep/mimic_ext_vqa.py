"""MIMIC-Ext-MIMIC-CXR-VQA 1.0.0: template questions on MIMIC-CXR images (the paper's "Ext-VQA").

Reads ``dataset/{train,valid,test}.json`` (JSON arrays). Questions are typed by the release's own
``content_type`` (anatomy, attribute, presence, abnormality, plane, gender, size); ``verify``
questions (yes/no) are closed, the others follow ``answer_kinds`` (config): a list answer stays a
list, including the empty list. Images come from MIMIC-CXR-JPG by ``image_id``. The split is the
release's own (``split="release"``, default): its test file is the gold set (train and valid are
silver-labelled), the one the rebuilt XrayBench draws from. Its
patients need not be MIMIC test patients: the build keeps every evaluation patient out of
training. ``split="mimic"`` takes MIMIC's split of the image instead. Each file is read through
``data_prep.readers.json_records``: a file that is not a non-empty list of records is refused.
"""

from __future__ import annotations

from pathlib import Path

from data_prep import readers
from data_prep.mimic_cxr import MimicIndex
from data_prep.records import SPLIT_NAMES, Sample, SkipLog, SourceMissingError

SOURCE = "mimic-ext-vqa"
FILES = ("train.json", "valid.json", "test.json")


def vqa_samples(
    root: Path, index: MimicIndex, answer_kinds: dict[str, str], skips: SkipLog, split: str = "release"
) -> list[Sample]:
    if split not in ("release", "mimic"):
        raise ValueError(f"vqa.split must be 'release' or 'mimic', got {split!r}")
    dataset = root / "dataset"
    present = [dataset / name for name in FILES if (dataset / name).exists()]
    if not present:
        raise SourceMissingError(f"{dataset} has none of {list(FILES)}")
    samples = []
    for path in present:
        release_split = SPLIT_NAMES[path.stem] if split == "release" else None
        for position, item, record in readers.json_records(path, SOURCE, skips):
            sample = _sample(record, item, f"{SOURCE}/{path.stem}/{position}", index, answer_kinds, skips, release_split)
            if sample is not None:
                samples.append(sample)
    return samples


def _sample(
    record, item: str, sample_id: str, index: MimicIndex, answer_kinds: dict[str, str], skips: SkipLog,
    release_split: str | None,
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
        split=release_split or image.split,
        subject=image.subject,
        image=image.path,
        answer=answer[0] if kind == "closed" else tuple(answer),
        answer_kind=kind,
        question=" ".join(question.split()),
        image_size=image.size,
    )
