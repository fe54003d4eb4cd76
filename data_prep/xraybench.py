"""XrayBench, the paper's evaluation set: rebuilt from the sources' test splits, or read locally.

Rebuild: for every (source, task, subtype) of the paper's composition (Fig. 1b; ``composition`` in
the build config) draw that many test-split samples, deterministically under the seed; where a
source has fewer, all are taken and the shortfall is reported. VQA items come from each VQA
release's own test split (``vqa.split``). A rebuilt XrayBench has the paper's composition, not the
paper's items: those are in the hub copy, which ``local`` mode reads.

Local: the hub dataset (``Qika/xraybench``) has no published schema, so a local copy (JSONL, JSON,
or parquet with image bytes or paths) is read through a column map, ``xraybench.columns.<field>``
for ``id, image, prompt, answer, source, task, question_type, subject`` (null: not in the copy).
Scoring needs source, task and, for VQA, the question type (it decides the answer kind: a
one-item answer to a list-type question is still a list); what is not mapped is inferred per row,
and the manifest counts how each field was obtained:
- ``release_match``: the item is found in the releases parsed under data_root: a VQA item by its
  image file name and its release question appearing in the prompt (source, question type, answer
  kind, patient); a report by its image and its text (source, section, patient);
- ``source_or_question_type``: task ``vqa`` for a VQA release's item or a row with a question type;
- ``prompt_wording``: task from a report prompt naming its "FINDINGS" or "IMPRESSION" section,
  else ``vqa`` for a prompt that asks a question;
- ``image_path``: patient and report source from a MIMIC path (``p10/p10000032/s5.../<dicom>.jpg``)
  or an Open-I file name (``CXR12_...png``, ``12_IM-...png``).
A row whose source, task or question type remains unknown stops the build, naming the fields and
the rows (map the columns, or provide the releases). Lists may arrive "|"-joined. Every patient
must be known for the leakage guard, unless ``local.allow_unknown_subjects`` says otherwise (the
manifest then counts the unguarded items).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from data_prep import readers
from data_prep.mixtures import draw
from data_prep.records import Sample, SkipLog, SourceMissingError
from data_prep.writers import atomic_write_bytes

MIMIC_SUBJECT_IN_PATH = re.compile(r"(?:^|/)p\d{2}/p(\d{8})/")


def compose(
    test_samples: list[Sample], composition: list[dict[str, Any]], scale: float, seed: int
) -> tuple[list[Sample], list[dict[str, Any]]]:
    """The rebuilt benchmark and, per composition row that fell short, {source, task, subtype, target, drawn}."""
    chosen, shortfalls = [], []
    for row in composition:
        pool = [
            s for s in test_samples
            if (s.source, s.task, s.subtype) == (row["source"], row["task"], row["subtype"]) and s.split == "test"
        ]
        target = int(round(row["count"] * scale))
        picked = draw(pool, target, seed, f"xraybench/{row['source']}/{row['task']}/{row['subtype']}")
        if len(picked) < target:
            shortfalls.append({**{k: row[k] for k in ("source", "task", "subtype")}, "target": target, "drawn": len(picked)})
        chosen.extend(picked)
    return chosen, shortfalls


FIELDS = ("id", "image", "prompt", "answer", "source", "task", "question_type", "subject")
SOURCE = "xraybench"  # the name its skips are counted under
SOURCES = {  # compact spelling (lower case, letters and digits) -> our source name
    "mimiccxr": "mimic-cxr", "mimic": "mimic-cxr", "openi": "openi", "iuxray": "openi", "indiana": "openi",
    "extvqa": "mimic-ext-vqa", "mimicextvqa": "mimic-ext-vqa", "mimicextmimiccxrvqa": "mimic-ext-vqa",
    "cxrvqa": "medical-cxr-vqa", "medicalcxrvqa": "medical-cxr-vqa", "medicalcxrvqadataset": "medical-cxr-vqa",
}
TASKS = {"findings": "findings", "finding": "findings", "reportfindings": "findings", "findingsgeneration": "findings",
         "impression": "impression", "impressions": "impression", "reportimpression": "impression",
         "impressiongeneration": "impression", "vqa": "vqa", "qa": "vqa", "visualquestionanswering": "vqa"}
MIMIC_DICOM = re.compile(r"^[0-9a-f]{8}(?:-[0-9a-f]{8}){4}$")
OPENI_UID = re.compile(r"^(?:CXR(\d+)_|(\d+)_IM-)")
YES_NO = frozenset({"yes", "no"})


class XrayBenchSchemaError(ValueError):
    """A local XrayBench whose rows lack a field scoring needs, neither mapped nor inferable."""


@dataclass
class LocalBench:
    samples: list[Sample]  # split "test"; subtype = question type (VQA) or the section
    prompts: dict[str, str]  # sample_id -> the copy's own prompt, without <image>
    report: dict[str, Any] = field(default_factory=dict)  # for the manifest


def _compact(value: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(value).lower())


def _normal(text: str) -> str:
    text = re.sub(r"_{3,}|X{4,}", "___", str(text))
    return " ".join(text.lower().split()).strip(" .?!")


def _rows(path: Path) -> Iterator[Any]:
    """The copy's rows, one at a time. Strict (``skips=None``): a bad line or record refuses the
    file, since a skipped item would silently change the benchmark. A parquet copy with image bytes
    is read in batches."""
    if path.suffix == ".jsonl":
        yield from (row for _, row in readers.json_lines(path, SOURCE, None))
    elif path.suffix == ".json":
        yield from (row for _, _, row in readers.json_records(path, SOURCE, None))
    elif path.suffix == ".parquet":
        yield from readers.parquet_row_stream(path)
    else:
        raise XrayBenchSchemaError(f"{path}: local XrayBench must be .jsonl, .json or .parquet")


def _image_files(value: Any, number: int, image_root: Path, extract_dir: Path) -> list[tuple[Path, Path]]:
    """The row's images as (file, name as the copy gives it): paths (relative to ``image_root``), or
    bytes (Hugging Face's ``{"bytes", "path"}`` image struct) written once under ``extract_dir``,
    named by content; the given name (a MIMIC path or dicom id, an Open-I file name) is kept for
    matching against the releases."""
    values = value if isinstance(value, list) else [value]
    files = []
    for item in values:
        if isinstance(item, str):
            files.append((image_root / item, Path(item)))
        elif isinstance(item, dict) and item.get("bytes"):
            data = bytes(item["bytes"])
            name = Path(str(item.get("path") or "image"))
            suffix = ".png" if data[:4] == b"\x89PNG" else ".jpg" if data[:2] == b"\xff\xd8" else name.suffix
            target = extract_dir / (hashlib.sha256(data).hexdigest()[:24] + suffix)
            if not target.exists() or target.read_bytes() != data:
                atomic_write_bytes(target, data)
            files.append((target, name))
        elif isinstance(item, dict) and item.get("path"):
            files.append((image_root / str(item["path"]), Path(str(item["path"]))))
        else:
            raise ValueError(f"row {number}: an image must be a path or {{'bytes', 'path'}}, got {str(item)[:80]}")
    return files


class ReleaseIndex:
    """The parsed releases, looked up by image file name: finds a local item's source, type and patient."""

    def __init__(self, samples: list[Sample]):
        self.vqa: dict[str, list[Sample]] = defaultdict(list)
        self.reports: dict[str, list[Sample]] = defaultdict(list)
        for sample in samples:
            if sample.task == "vqa" and sample.question:
                self.vqa[sample.image.name].append(sample)
            elif sample.task in ("findings", "impression"):
                self.reports[sample.image.name].append(sample)

    def match(self, image: Path | None, prompt: str, answer: str | list[str], task: str | None) -> Sample | None:
        if image is None:
            return None
        text = _normal(prompt)
        if task in (None, "vqa"):
            # The release question must appear in the prompt; the longest such question wins (one
            # release's "which view is this image taken" is part of the other's "... in, AP or PA").
            candidates = [s for s in self.vqa.get(image.name, ()) if _normal(s.question) and _normal(s.question) in text]
            longest = max((len(_normal(s.question)) for s in candidates), default=0)
            found = {(s.source, s.subtype, s.answer_kind, s.subject): s for s in candidates
                     if len(_normal(s.question)) == longest}
            if len(found) == 1:
                return next(iter(found.values()))
        if task in (None, "findings", "impression"):
            reference = _normal(answer if isinstance(answer, str) else " ".join(answer))
            found = [s for s in self.reports.get(image.name, ()) if (task is None or s.task == task)
                     and _normal(s.answer) == reference]
            if len({(s.source, s.task) for s in found}) == 1:
                return found[0]
        return None


def _task_from_prompt(prompt: str, answer: Any) -> str | None:
    findings = re.search(r"\bfindings\b", prompt, re.IGNORECASE)
    impression = re.search(r"\bimpression\b", prompt, re.IGNORECASE)
    if findings and not impression:
        return "findings"
    if impression and not findings:
        return "impression"
    if findings or impression or re.search(r"\breport\b", prompt, re.IGNORECASE):
        return None  # a report prompt that names no single section
    return "vqa" if ("?" in prompt or isinstance(answer, list)) else None


def _from_image_path(image: Path | None) -> tuple[str | None, str | None]:
    """(report source family, patient) that an image's path or file name gives away."""
    if image is None:
        return None, None
    text = image.as_posix()
    if (match := MIMIC_SUBJECT_IN_PATH.search(text)) is not None:
        return "mimic-cxr", f"mimic:{match.group(1)}"
    if MIMIC_DICOM.match(image.stem):
        return "mimic-cxr", None
    if (match := OPENI_UID.match(image.name)) is not None:
        return "openi", f"openi:{match.group(1) or match.group(2)}"
    return None, None


def answer_kind(source: str, task: str, question_type: str, answer: Any, kinds: dict[str, dict[str, str]]) -> str:
    """The reward's task type from the question type (as the build's config says), never from the
    answer's shape: a one-item answer to a list question stays a list. Ext-VQA's yes/no (verify)
    questions are closed whatever their content type, as in the release parser."""
    if task in ("findings", "impression"):
        return "open_ended"
    table = kinds.get(source)
    if table is None or question_type not in table:
        raise XrayBenchSchemaError(
            f"question type {question_type!r} of {source} is not in the build config's answer kinds "
            f"({sorted(table) if table else 'none for this source'})")
    items = answer if isinstance(answer, list) else [answer]
    if source == "mimic-ext-vqa" and len(items) == 1 and _normal(items[0]) in YES_NO:
        return "closed"
    return table[question_type]


def _answer(value: Any, kind: str) -> str | tuple[str, ...] | None:
    """The answer in our form; None if it cannot be (counted as a skip by the caller)."""
    if kind == "multi_object":
        items = value if isinstance(value, list) else str(value).split("|")
        items = [str(item).strip() for item in items if str(item).strip()]
        return () if [i.lower() for i in items] in ([], ["none"]) else tuple(items)
    if isinstance(value, list):
        return str(value[0]).strip() if len(value) == 1 and str(value[0]).strip() else None
    text = str(value).strip() if value is not None else ""
    return text or None


def load_local(
    path: Path, columns: dict[str, str | None], image_root: Path, extract_dir: Path, releases: list[Sample],
    kinds: dict[str, dict[str, str]], allow_unknown_subjects: bool, skips: SkipLog,
) -> LocalBench:
    """Read a local XrayBench copy into test ``Sample``s (see the module docstring)."""
    if not path.exists():
        raise SourceMissingError(f"xraybench.mode=local but {path} does not exist")
    unknown_fields = sorted(set(columns) - set(FIELDS))
    if unknown_fields:
        raise ValueError(f"xraybench.columns: unknown fields {unknown_fields}; fields are {list(FIELDS)}")
    for required in ("image", "prompt", "answer"):
        if not columns.get(required):
            raise XrayBenchSchemaError(f"xraybench.columns.{required} must name a column of {path}")
    index = ReleaseIndex(releases)
    how: dict[str, Counter] = {name: Counter() for name in ("source", "task", "question_type", "subject")}
    missing: dict[str, list[int]] = defaultdict(list)
    samples, prompts, ids = [], {}, set()
    extra_images = unguarded = 0
    unknown_task = f"is none of findings / impression / vqa (or their spellings {sorted(TASKS)})"
    unknown_source = f"is not one of XrayBench's (spellings accepted: {sorted(SOURCES)})"
    number = -1
    for number, row in enumerate(_rows(path)):
        if not isinstance(row, dict):
            skips.skip(SOURCE, "malformed_row", f"row {number}", str(row)[:200])
            continue

        def column(name: str) -> Any:
            key = columns.get(name)
            if not key:
                return None
            if key not in row:
                raise XrayBenchSchemaError(f"{path} row {number}: no column {key!r} (xraybench.columns.{name}); "
                                           f"it has {sorted(row)}")
            value = row[key]
            if name != "answer" and isinstance(value, str) and not value.strip():
                return None  # an empty answer is the empty list of a list question
            return value

        def spelled(name: str, spellings: dict[str, str], refusal: str) -> str | None:
            """Column ``name`` in our vocabulary (None when absent); a spelling we do not know is refused."""
            value = column(name)
            if value is None:
                return None
            known = spellings.get(_compact(value))
            if known is None:
                raise XrayBenchSchemaError(f"{path} row {number}: {name} {value!r} {refusal}")
            how[name]["column"] += 1
            return known

        item_id = str(column("id")) if column("id") is not None else f"xraybench/{number}"
        if item_id in ids:
            raise XrayBenchSchemaError(f"{path}: id {item_id!r} occurs twice (xraybench.columns.id)")
        ids.add(item_id)
        images = _image_files(column("image"), number, image_root, extract_dir) if column("image") is not None else []
        if not images:
            skips.skip(SOURCE, "no_image", item_id)
            continue
        extra_images += len(images) > 1
        image, image_name = images[0]
        prompt = str(column("prompt") or "").replace("<image>", "").strip()
        raw_answer = column("answer")
        if raw_answer is None:
            skips.skip(SOURCE, "empty_answer", item_id)
            continue

        task = spelled("task", TASKS, unknown_task)
        source = spelled("source", SOURCES, unknown_source)
        question_type = str(column("question_type")).strip().lower() if column("question_type") is not None else None
        if question_type:
            how["question_type"]["column"] += 1
        subject = str(column("subject")).strip() if column("subject") is not None else None
        if subject:
            subject = f"mimic:{subject}" if re.fullmatch(r"1\d{7}", subject) else subject
            how["subject"]["column"] += 1

        matched = None
        if not (source and task and subject and (question_type or task != "vqa")):
            matched = index.match(image_name, prompt, raw_answer, task)
        if matched is not None:
            for name, value in (("source", matched.source), ("task", matched.task), ("subject", matched.subject),
                                ("question_type", matched.subtype if matched.task == "vqa" else None)):
                if value is not None and not {"source": source, "task": task, "subject": subject,
                                              "question_type": question_type}[name]:
                    how[name]["release_match"] += 1
            source, task, subject = source or matched.source, task or matched.task, subject or matched.subject
            if task == "vqa":
                question_type = question_type or matched.subtype
        if task is None and (source in ("mimic-ext-vqa", "medical-cxr-vqa") or question_type):
            task = question_type if question_type in ("findings", "impression") else "vqa"
            how["task"]["source_or_question_type"] += 1
        if task is None and (task := _task_from_prompt(prompt, raw_answer)) is not None:
            how["task"]["prompt_wording"] += 1
        family, patient = _from_image_path(image_name)
        if source is None and task in ("findings", "impression") and family is not None:
            source = family
            how["source"]["image_path"] += 1
        if subject is None and patient is not None:
            subject = patient
            how["subject"]["image_path"] += 1
        if task in ("findings", "impression"):
            question_type = task
        for name, value in (("task", task), ("source", source), ("question_type", question_type)):
            if value is None:
                missing[name].append(number)
        if subject is None:
            if not allow_unknown_subjects:
                missing["subject"].append(number)
            unguarded += 1
            subject = f"xraybench-unknown:{item_id}"
        if task is None or source is None or question_type is None:
            continue
        kind = matched.answer_kind if matched is not None and task == "vqa" else \
            answer_kind(source, task, question_type, raw_answer, kinds)
        answer = _answer(raw_answer, kind)
        if answer is None:
            skips.skip(SOURCE, "answer_does_not_fit_its_kind", item_id, f"{kind}: {str(raw_answer)[:100]}")
            continue
        samples.append(Sample(sample_id=item_id, source=source, task=task, subtype=question_type, split="test",
                              subject=subject, image=image, answer=answer, answer_kind=kind,
                              question=prompt if task == "vqa" else None))
        prompts[item_id] = prompt
    if number < 0:
        raise XrayBenchSchemaError(f"{path} holds no rows")
    if missing:
        lines = [f"  {name}: {len(numbers)} rows, e.g. rows {numbers[:5]}" for name, numbers in sorted(missing.items())]
        raise XrayBenchSchemaError(
            f"{path}: scoring needs these fields, and they are neither mapped nor inferable:\n" + "\n".join(lines)
            + "\nMap them (xraybench.columns.<field>=<column>), or place the releases under data_root so that "
              "items can be matched to them (subject only: xraybench.local.allow_unknown_subjects=true runs "
              "without the leakage guard for those items)."
        )
    report = {
        "file": str(path), "rows": number + 1, "items": len(samples),
        "columns": {name: columns.get(name) for name in FIELDS},
        "inferred": {name: dict(sorted(counter.items())) for name, counter in how.items()},
        "by_source_task": dict(sorted(Counter(f"{s.source}/{s.task}" for s in samples).items())),
        "by_answer_kind": dict(sorted(Counter(s.answer_kind for s in samples).items())),
        "extra_images_ignored": extra_images,  # rows with several images: the first is used (one image per item)
        "unguarded_subjects": unguarded,
    }
    return LocalBench(samples, prompts, report)
