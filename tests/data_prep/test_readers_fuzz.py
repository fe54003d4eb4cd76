"""Fuzz: every data-build reader on randomly corrupted copies of valid generated release files.

Seeded (one ``random.Random`` per case), on the project's own generated releases. For each
corrupted file the reader (and the source parser on top of it) must:
- raise nothing but a clear ``SourceFileError`` / ``SourceMissingError`` that names the file;
- account for every line: each non-blank physical line belongs to exactly one built row or one
  counted skip (``file:line``), and every source row becomes a sample or a counted skip;
- lose nothing after a bad row: every row of the clean file that the corruption did not touch is
  still read, unchanged;
- leave the file on disk byte for byte as it was.
"""

import dataclasses
import gzip
import hashlib
import json
import random
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from data_prep import medical_cxr_vqa, mimic_cxr, mimic_ext_vqa, readers
from data_prep.fixtures import generate_releases
from data_prep.readers import SourceFileError
from data_prep.records import SkipLog, SourceMissingError

CASES = 30  # corrupted copies per file
KINDS = {"abnormality": "multi_object", "presence": "closed", "view": "closed", "location": "multi_object",
         "level": "closed", "type": "closed"}
EXT_KINDS = {"anatomy": "multi_object", "attribute": "multi_object", "presence": "multi_object",
             "abnormality": "multi_object", "size": "multi_object", "plane": "closed", "gender": "closed"}
# (file, required columns, multiline): every CSV a source module reads.
CSV_FILES = [
    ("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz", mimic_cxr.METADATA_COLUMNS, False),
    ("mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz", mimic_cxr.SPLIT_COLUMNS, False),
    ("openi/indiana_projections.csv", ("uid", "filename", "projection"), False),
    ("openi/indiana_reports.csv", ("uid", "findings", "impression"), True),
    ("ms-cxr/MS_CXR_Local_Alignment_v1.1.0.csv", ("dicom_id", "category_name", "label_text", "x", "y", "w", "h"), True),
    ("medical-cxr-vqa/medical-cxr-vqa-questions.csv", medical_cxr_vqa.COLUMNS, True),
]
NOISE = [b'"', b",", b"\x00", b"\xff", b"\xe9", b"\x96", b"\r", b"\n", b'""', b"\xf0\x9f", b"\\", b"\t", b" "]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean-releases")
    generate_releases(root, seed=5, subjects=8)
    return root


def raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def store(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def corrupt_lines(rnd: random.Random, data: bytes) -> tuple[bytes, set[int]]:
    """A corrupted copy and the (1-based) lines of the original it touched (empty: none lost)."""
    lines = data.splitlines(keepends=True)
    target = rnd.randrange(1, len(lines))  # a data line (the header is fuzzed on its own)
    kind = rnd.choice(["replace", "insert", "insert", "delete_line", "duplicate_line", "blank_line", "truncate",
                       "swap_bytes"])
    line = lines[target]
    if kind in ("replace", "insert", "swap_bytes"):
        position = rnd.randrange(max(1, len(line) - 1))
        noise = b"".join(rnd.choice(NOISE) for _ in range(rnd.randint(1, 3)))
        if kind == "replace":
            line = line[:position] + noise + line[position + len(noise):]
        elif kind == "insert":
            line = line[:position] + noise + line[position:]
        else:
            line = line[:position] + bytes([rnd.randrange(256)]) + line[position + 1:]
        if (line.count(b"\n") > 1 or lines[target].endswith(b"\n")) and not line.endswith(b"\n"):
            line += b"\n"  # the noise must not eat the line's end: that would touch the next line too
        lines[target] = line
        return b"".join(lines), {target + 1}
    if kind == "delete_line":
        del lines[target]
        return b"".join(lines), {target + 1}
    if kind == "duplicate_line":
        lines.insert(target, line)
        return b"".join(lines), set()
    if kind == "blank_line":
        lines.insert(target, rnd.choice([b"\n", b"   \n", b"\r\n"]))
        return b"".join(lines), set()
    cut = sum(len(x) for x in lines[:target]) + rnd.randrange(len(line))  # truncate inside line `target`
    return b"".join(lines)[:cut], set(range(target + 1, len(lines) + 1))


def read_all(path: Path, required, multiline: bool):
    skips = SkipLog()
    rows = list(readers.csv_rows(path, "fuzz", skips, required, multiline=multiline))
    return rows, skips


def assert_clear_refusal(error: Exception, path: Path) -> None:
    assert isinstance(error, (SourceFileError, SourceMissingError)), repr(error)
    assert path.name in str(error), str(error)


def assert_every_line_accounted(data: bytes, rows, skips: SkipLog, name: str) -> None:
    """Each non-blank line after the header is in exactly one row or one skip; the rest are blank."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    header = next(i for i, line in enumerate(lines, start=1) if line.strip())
    covered: dict[int, str] = {}
    for row in rows:
        extra = sum(value.count("\n") for value in row.values.values())
        for number in range(row.line, row.line + extra + 1):
            assert number not in covered, f"line {number} read twice"
            covered[number] = "row"
    for skip in skips.rows:
        number = int(skip["item"].rsplit(":", 1)[1])
        assert skip["item"].startswith(name) and number not in covered
        covered[number] = skip["reason"]
    for number, line in enumerate(lines, start=1):
        if number > header and number not in covered:
            assert not line.strip(), f"line {number} ({line[:60]!r}) was neither read nor counted"


@pytest.mark.parametrize("relative, required, multiline", CSV_FILES, ids=[Path(f[0]).name for f in CSV_FILES])
def test_csv_readers_on_corrupted_files(clean, tmp_path, relative, required, multiline):
    source = clean / relative
    clean_rows, clean_skips = read_all(source, required, multiline)
    assert clean_rows and not clean_skips.rows
    original = raw(source)
    original_lines = original.splitlines(keepends=True)
    for case in range(CASES):
        rnd = random.Random(f"{relative}:{case}")
        data, touched = corrupt_lines(rnd, original)
        path = tmp_path / source.name
        store(path, data)
        stored = path.read_bytes()
        try:
            rows, skips = read_all(path, required, multiline)
        except Exception as error:  # noqa: BLE001 - the property under test
            assert_clear_refusal(error, path)
            continue
        finally:
            assert path.read_bytes() == stored, "a reader changed the file"
        assert_every_line_accounted(data, rows, skips, path.name)
        # Nothing after a bad row is lost: every untouched clean row is still read, unchanged.
        found = [tuple(sorted(row.values.items())) for row in rows]
        for row in clean_rows:
            span = set(range(row.line, row.line + sum(v.count("\n") for v in row.values.values()) + 1))
            if span & touched or any(original_lines[n - 1] not in data for n in span):
                continue
            assert tuple(sorted(row.values.items())) in found, (case, row.item, data[:0])
        again, again_skips = read_all(path, required, multiline)
        assert (rows, skips.rows, skips.warnings) == (again, again_skips.rows, again_skips.warnings), "not deterministic"


def test_a_corrupted_header_is_refused_or_read_whole(clean, tmp_path):
    for relative, required, multiline in CSV_FILES:
        source = clean / relative
        original = raw(source)
        header, _, rest = original.partition(b"\n")
        for case in range(10):
            rnd = random.Random(f"header:{relative}:{case}")
            position = rnd.randrange(len(header))
            path = tmp_path / source.name
            store(path, header[:position] + rnd.choice(NOISE) + header[position + 1:] + b"\n" + rest)
            try:
                rows, skips = read_all(path, required, multiline)
            except Exception as error:  # noqa: BLE001
                assert_clear_refusal(error, path)
                continue
            assert len(rows) + len(skips.rows) >= 1


def index_for(root: Path) -> mimic_cxr.MimicIndex:
    return mimic_cxr.index_images(root / "mimic-cxr-jpg", ["PA", "AP"], SkipLog())


def test_medical_vqa_parser_builds_or_counts_every_row(clean, tmp_path):
    index = index_for(clean)
    source = clean / "medical-cxr-vqa" / "medical-cxr-vqa-questions.csv"
    clean_samples = medical_cxr_vqa.vqa_samples(clean / "medical-cxr-vqa", index, KINDS, SkipLog())
    original = source.read_bytes()
    for case in range(CASES):
        root = tmp_path / f"case{case}"
        root.mkdir()
        data, touched = corrupt_lines(random.Random(f"medical:{case}"), original)
        (root / source.name).write_bytes(data)
        try:
            rows, reader_skips = read_all(root / source.name, medical_cxr_vqa.COLUMNS, True)
            skips = SkipLog()
            samples = medical_cxr_vqa.vqa_samples(root, index, KINDS, skips)
        except Exception as error:  # noqa: BLE001
            assert_clear_refusal(error, root / source.name)
            continue
        assert len(samples) + len(skips.rows) == len(rows) + len(reader_skips.rows)
        built = {(s.image, s.question, s.answer) for s in samples}
        untouched = [s for s in clean_samples if int(s.sample_id.rsplit("/", 1)[1]) not in touched
                     and original.splitlines(keepends=True)[int(s.sample_id.rsplit("/", 1)[1]) - 1] in data]
        assert all((s.image, s.question, s.answer) in built for s in untouched), case


def mutate_record(rnd: random.Random, record: dict) -> dict:
    """Valid JSON, wrong content: what a damaged or hand-edited record looks like."""
    key = rnd.choice(sorted(record))
    kind = rnd.randrange(8)
    record = dict(record)
    if kind == 0:
        del record[key]
    elif kind == 1:
        record[key] = rnd.choice([None, 7, 1.5, True, [], {}, [[1]], "", "\ud800"])
    elif kind == 2:
        record["answer"] = rnd.choice([["yes", 3], "yes", [None], [["a"]], ["x" * 70_000]])
    elif kind == 3:
        record["image_id"] = rnd.choice([[record.get("image_id")], {"id": 1}, 5, "nope"])
    elif kind == 4:
        record["content_type"] = rnd.choice([["presence"], {"a": 1}, "weather", None])
    elif kind == 5:
        record["question"] = rnd.choice(["caf\u00e9 \u2013 ok?", "\x00", "   ", "q" * 100_000])
    elif kind == 6:
        return rnd.choice([None, 3, "record", [record]])
    return record


def test_ext_vqa_parser_on_corrupted_json(clean, tmp_path):
    index = index_for(clean)
    folder = clean / "mimic-ext-mimic-cxr-vqa"
    clean_samples = {s.sample_id: s for s in mimic_ext_vqa.vqa_samples(folder, index, EXT_KINDS, SkipLog())}
    original = (folder / "dataset" / "train.json").read_bytes()
    records = json.loads(original)
    for case in range(CASES):
        rnd = random.Random(f"ext:{case}")
        root = tmp_path / f"case{case}"
        shutil.copytree(folder, root)
        path = root / "dataset" / "train.json"
        if case % 2:  # bytes: mostly invalid JSON, which must be refused with the position
            data, _ = corrupt_lines(rnd, original)
            mutated = set()
        else:  # records: valid JSON with wrong content, each a sample or a counted skip
            changed = list(records)
            mutated = set(rnd.sample(range(len(changed)), 3))
            for position in mutated:
                changed[position] = mutate_record(rnd, changed[position])
            data = json.dumps(changed, indent=4, ensure_ascii=rnd.random() < 0.5).encode("utf-8", "surrogatepass")
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        skips = SkipLog()
        try:
            samples = mimic_ext_vqa.vqa_samples(root, index, EXT_KINDS, skips)
        except Exception as error:  # noqa: BLE001
            assert_clear_refusal(error, path)
            assert case % 2, "valid JSON must never be refused as a whole"
            continue
        finally:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        total = sum(len(readers.json_document(root / "dataset" / name)[0])
                    for name in mimic_ext_vqa.FILES if (root / "dataset" / name).exists())
        assert len(samples) + len(skips.rows) == total, case
        if case % 2 == 0:  # every record that was not mutated is built exactly as before
            built = {s.sample_id: s for s in samples}
            for sample_id, sample in clean_samples.items():
                split, position = sample_id.split("/")[1:]
                if split != "train" or int(position) not in mutated:
                    assert built.get(sample_id) == sample, (case, sample_id)


def test_metadata_index_builds_or_counts_every_image(clean, tmp_path):
    source = clean / "mimic-cxr-jpg" / mimic_cxr.METADATA
    original = raw(source)
    clean_index = index_for(clean)
    for case in range(CASES):
        root = tmp_path / f"case{case}"
        shutil.copytree(clean / "mimic-cxr-jpg", root, ignore=shutil.ignore_patterns("files"))
        data, touched = corrupt_lines(random.Random(f"metadata:{case}"), original)
        store(root / mimic_cxr.METADATA, data)
        skips = SkipLog()
        try:
            rows, reader_skips = read_all(root / mimic_cxr.METADATA, mimic_cxr.METADATA_COLUMNS, False)
            index = mimic_cxr.index_images(root, ["PA", "AP"], skips)
        except Exception as error:  # noqa: BLE001
            assert_clear_refusal(error, root / mimic_cxr.METADATA)
            continue
        assert len(index.images) + len(skips.rows) == len(rows) + len(reader_skips.rows)
        lines = original.splitlines(keepends=True)
        kept = {d for d, image in clean_index.images.items()
                if not any(d.encode() in lines[n - 1] for n in touched)}
        moved = {d: dataclasses.replace(image, root=root) for d, image in clean_index.images.items()}
        assert all(moved[d] == index.images.get(d) for d in kept if d.encode() in data), case


def test_mimic_reports_zip_every_study_read_or_counted(clean, tmp_path):
    index = index_for(clean)
    wanted = set(index.frontal_by_study)
    archive = clean / "mimic-cxr-reports" / "mimic-cxr-reports.zip"
    with zipfile.ZipFile(archive) as zipped:
        members = {name: zipped.read(name) for name in zipped.namelist()}
    for case in range(CASES):
        rnd = random.Random(f"reports:{case}")
        root = tmp_path / f"case{case}"
        root.mkdir()
        path = root / "mimic-cxr-reports.zip"
        if case % 3 == 0:  # damage the archive's bytes
            data = bytearray(archive.read_bytes())
            for _ in range(rnd.randint(1, 4)):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            path.write_bytes(bytes(data))
        else:  # damage reports: undecodable bytes, NULs, emptiness, truncation, a huge report
            changed = dict(members)
            for name in rnd.sample(sorted(n for n in members if n.endswith(".txt")), 3):
                text = changed[name]
                changed[name] = rnd.choice([
                    b"", b"   \n  ", text[: rnd.randrange(len(text))], text.replace(b"e", b"\xe9", 3),
                    text + b"\x00\xff\xfe", text * 2, b"\x81\x8d" + text, b"x" * (readers.MAX_TEXT_FILE_BYTES + 1)])
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
                for name, data in changed.items():
                    zipped.writestr(name, data)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        index.sections.clear()
        skips = SkipLog()
        try:
            mimic_cxr.index_reports(root, index, skips)
        except Exception as error:  # noqa: BLE001
            assert_clear_refusal(error, path)
            continue
        finally:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        counted = {m.group(1) for row in skips.rows if (m := re.search(r"s(\d{8})(?:\.txt)?$", row["item"]))}
        assert wanted == set(index.sections) | counted, case
        assert not (set(index.sections) & counted), "a study both read and counted as lost"
        assert all("\ufffd" not in text for sections in index.sections.values() for text in sections.values())
