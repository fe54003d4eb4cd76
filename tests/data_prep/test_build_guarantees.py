"""What the build refuses, counts and never writes (issue 16, items 6-10), each on the exact input
class a user hit: a copy of the generated releases with one thing broken."""

import csv
import errno
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from data_prep.build import EmptySourceError, SkipRateError, build, parse_sources
from data_prep.readers import SourceFileError
from data_prep.records import SkipLog, SourceMissingError
from data_prep.writers import OutputLockedError, output_lock

JPG = "mimic-cxr-jpg"
METADATA = f"{JPG}/mimic-cxr-2.0.0-metadata.csv.gz"
SPLIT = f"{JPG}/mimic-cxr-2.0.0-split.csv.gz"
MEDICAL = "medical-cxr-vqa/medical-cxr-vqa-questions.csv"
EXT_TRAIN = "mimic-ext-mimic-cxr-vqa/dataset/train.json"
REPORTS_ZIP = "mimic-cxr-reports/mimic-cxr-reports.zip"


@pytest.fixture
def copy(releases, tmp_path):
    """A private copy of the generated releases, to break."""
    root = tmp_path / "releases"
    shutil.copytree(releases[0], root, symlinks=True)
    return root


def read_csv(path: Path) -> list[list[str]]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return list(csv.reader(io.StringIO(data.decode())))


def write_csv(path: Path, rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    data = buffer.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def drop_column(path: Path, column: str) -> None:
    rows = read_csv(path)
    index = rows[0].index(column)
    write_csv(path, [row[:index] + row[index + 1:] for row in rows])


def rewrite_zip(path: Path, change) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, change(name, data))


def skipped(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]


# ------------------------------------------------------------ 6. whole sources are never dropped


@pytest.mark.parametrize("breakage, message", [
    (lambda root: drop_column(root / METADATA, "ViewPosition"), r"metadata.csv.gz lacks the columns \['ViewPosition'\]"),
    (lambda root: drop_column(root / "openi/indiana_projections.csv", "projection"),
     r"indiana_projections.csv lacks the columns \['projection'\]"),
    (lambda root: drop_column(root / "openi/indiana_reports.csv", "findings"), r"indiana_reports.csv lacks the columns"),
    (lambda root: (root / "openi/indiana_reports.csv").write_bytes(b""), r"indiana_reports.csv is empty"),
    (lambda root: (root / "ms-cxr/MS_CXR_Local_Alignment_v1.1.0.csv").write_bytes(b""), r"Alignment_v1.1.0.csv is empty"),
    (lambda root: (root / "ms-cxr/MS_CXR_Local_Alignment_v1.1.0.csv").write_text(
        "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split\n"), "header but no rows"),
    (lambda root: (root / EXT_TRAIN).write_text(json.dumps({"data": json.loads((root / EXT_TRAIN).read_text())})),
     r"train.json is a JSON object with keys \['data'\]"),
    (lambda root: write_csv(root / SPLIT, [["dicom_id;study_id;subject_id;split"], ["x;y;z;train"]]),
     r"split.csv.gz lacks the columns"),
    (lambda root: write_csv(root / SPLIT, read_csv(root / SPLIT)[:1]
                            + [row[:3] + ["bogus"] for row in read_csv(root / SPLIT)[1:]]),
     r"no image of .*metadata.csv.gz is in .*split.csv.gz"),
])
def test_a_broken_release_file_stops_the_build_naming_the_file(copy, tmp_path, make_config, breakage, message):
    breakage(copy)
    with pytest.raises(SourceFileError, match=message):
        build(make_config(copy, tmp_path / "out"))


def test_every_mimic_report_empty_stops_the_build_unless_allowed(copy, tmp_path, make_config):
    rewrite_zip(copy / REPORTS_ZIP, lambda name, data: b" \n \n" if name.endswith(".txt") else data)
    with pytest.raises(SkipRateError, match=r"mimic-cxr: \d+ rows \(\d+%\).*'empty_report'"):
        build(make_config(copy, tmp_path / "out"))
    with pytest.raises(EmptySourceError, match="mimic-cxr yielded no sample"):
        build(make_config(copy, tmp_path / "out", "max_skip_fraction=1.0"))
    manifest = build(make_config(copy, tmp_path / "out", "max_skip_fraction=1.0", "allow_empty=[mimic-cxr]"))
    # no report sample (the grounding slice's absent-finding questions come from MIMIC's labels)
    assert set(manifest["parsed"].get("mimic-cxr", {})) <= {"grounding"}
    assert manifest["skipped"]["mimic-cxr"]["empty_report"] > 20


def test_a_source_without_a_test_split_stops_the_build_unless_allowed(copy, tmp_path, make_config, releases):
    test_dicoms = {row[0] for row in read_csv(copy / SPLIT)[1:] if row[3] == "test"}
    rows = read_csv(copy / MEDICAL)
    write_csv(copy / MEDICAL, [rows[0]] + [row for row in rows[1:] if row[2] not in test_dicoms])
    with pytest.raises(EmptySourceError, match="medical-cxr-vqa yielded no sample in the test split"):
        build(make_config(copy, tmp_path / "out"))
    build(make_config(copy, tmp_path / "out", "allow_empty=[medical-cxr-vqa/test]"))
    with pytest.raises(ValueError, match="allow_empty"):  # a misspelt entry would allow nothing
        build(make_config(copy, tmp_path / "out", "allow_empty=[medical-vqa/test]"))


def test_an_existing_but_empty_data_root_is_an_error(tmp_path, make_config):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceMissingError, match="holds none of the release folders"):
        build(make_config(tmp_path / "empty", tmp_path / "out"))
    # On the command line: one clear message and a failing exit status, no traceback.
    result = subprocess.run(
        [sys.executable, "-m", "data_prep.build", f"data_root={tmp_path / 'empty'}", f"out_dir={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data build refused (SourceMissingError)" in result.stderr and "holds none" in result.stderr


def test_a_broken_split_file_is_blamed_on_mimic_cxr_not_on_a_source_that_joins_on_it(copy, tmp_path, make_config):
    # Why it was blamed on medical-cxr-vqa: a broken split file drops MIMIC images from the index,
    # every source that joins on it then skips its rows as image_not_in_mimic_metadata, and the
    # skip-rate check raised for the first source in alphabetical order: medical-cxr-vqa.
    rows = read_csv(copy / SPLIT)
    write_csv(copy / SPLIT, [rows[0]] + [row[:3] + (["bogus"] if i % 2 else row[3:]) for i, row in enumerate(rows[1:])])
    with pytest.raises(SkipRateError) as raised:
        build(make_config(copy, tmp_path / "out"))
    message = str(raised.value)
    assert "mimic-cxr:" in message and "malformed_split_row" in message
    assert message.index("mimic-cxr:") < message.index("medical-cxr-vqa:")


# --------------------------------------------------------------------------- 7. duplicates, losses


def test_duplicate_source_rows_are_counted_not_built_twice(copy, tmp_path, make_config, built):
    rows = read_csv(copy / MEDICAL)
    write_csv(copy / MEDICAL, rows + [rows[5], rows[6]])  # the same question twice
    reports = read_csv(copy / "openi/indiana_reports.csv")
    reports.append(list(reports[3]))
    reports[-1][reports[0].index("impression")] = "A different report under the same uid."
    write_csv(copy / "openi/indiana_reports.csv", reports)
    metadata = read_csv(copy / METADATA)
    metadata.append(list(metadata[4]))
    metadata[-1][metadata[0].index("ViewPosition")] = "LATERAL"  # the same image, described otherwise
    write_csv(copy / METADATA, metadata)
    out = tmp_path / "out"
    manifest = build(make_config(copy, out))
    # The generated release repeats a few questions itself (as an LLM-written one can): 2 more here.
    before = built[1]["skipped"]["medical-cxr-vqa"].get("duplicate_row", 0)
    assert manifest["skipped"]["medical-cxr-vqa"]["duplicate_row"] == before + 2
    assert manifest["skipped"]["openi"]["duplicate_uid"] == 1
    assert manifest["skipped"]["mimic-cxr"]["duplicate_dicom_id"] == 1
    items = [json.loads(line)["id"] for line in (out / "test" / "xraybench.jsonl").read_text().splitlines()]
    assert len(items) == len(set(items))


def test_duplicate_sample_ids_are_counted_at_build_time(releases, monkeypatch, tmp_path, make_config):
    import data_prep.build as build_module

    real = build_module.parse_sources

    def doubled(cfg, skips):
        samples, status = real(cfg, skips)
        return samples + samples[:3], status

    monkeypatch.setattr(build_module, "parse_sources", doubled)
    manifest = build(make_config(releases[0], tmp_path / "out"))
    lost = sum(counts.get("duplicate_sample_id", 0) for counts in manifest["skipped"].values())
    assert lost == 3


def test_an_unreadable_image_counts_every_sample_it_loses_per_source(built, releases, make_config, tmp_path):
    out, _ = built
    _, truth = releases
    truncated = next(f["id"] for f in truth["faults"] if f["kind"] == "truncated_image")
    samples, _ = parse_sources(make_config(releases[0], tmp_path / "unused"), SkipLog())
    expected = {}
    for sample in samples:
        if sample.image.stem == truncated:
            expected[sample.source] = expected.get(sample.source, 0) + 1
    assert sum(expected.values()) > 1, "the fixture's truncated image should serve several samples"
    lost = {}
    for row in skipped(out):
        if row["reason"] == "unreadable_image" and truncated in row["item"]:
            lost[row["source"]] = lost.get(row["source"], 0) + 1
    assert lost == expected


# ----------------------------------------------------------------------------- 8. text encodings


def test_a_non_utf8_report_is_decoded_with_the_stated_fallback_and_counted(copy, tmp_path, make_config, releases):
    _, truth = releases
    study = next(s for s, m in truth["mimic"].items() if m["findings"] and m["frontal_dicom_ids"]
                 and m["split"] == "train" and m["variant"] == "standard")

    def change(name, data):
        if name.endswith(f"s{study}.txt"):
            return data.replace(b"FINDINGS:", b"FINDINGS:  Caf\xe9 \x96 dash.", 1)  # cp1252 bytes
        return data

    rewrite_zip(copy / REPORTS_ZIP, change)
    out = tmp_path / "out"
    manifest = build(make_config(copy, out))
    assert manifest["row_warnings"]["mimic-cxr"] == {"decoded_as_cp1252": 1}
    warning = json.loads((out / "warnings.jsonl").read_text())
    assert warning["item"].endswith(f"s{study}.txt") and warning["reason"] == "decoded_as_cp1252"
    samples, _ = parse_sources(make_config(copy, tmp_path / "unused"), SkipLog())
    (findings,) = [s.answer for s in samples if s.sample_id == f"mimic-cxr/findings/s{study}"]
    assert findings.startswith("Caf\u00e9 \u2013 dash.")  # not U+FFFD


# --------------------------------------------------------------------- 9. one writer, no leftovers


def test_a_second_build_into_the_same_folder_is_refused(releases, tmp_path, make_config):
    out = tmp_path / "out"
    refused = pytest.raises(OutputLockedError, match=rf"is being written by pid {os.getpid()}")
    with output_lock(out), refused:  # the first build, still running; the second refused
        build(make_config(releases[0], out))
    assert not (out / "manifest.json").exists()
    build(make_config(releases[0], out))  # once it is done, the folder is free again


def test_the_lock_is_held_across_processes(releases, tmp_path, make_config):
    out = tmp_path / "out"
    out.mkdir()
    script = ("import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
              "f.write('pid 1 since now'); f.flush(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(out / ".build.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError, match="pid 1 since now"):
            build(make_config(releases[0], out))
    finally:
        holder.kill()
        holder.wait()


def test_a_full_disk_leaves_no_temporary_and_the_next_build_cleans_old_ones(releases, tmp_path, make_config, monkeypatch):
    out = tmp_path / "out"
    real_write = Path.write_bytes

    def disk_full(self, data):
        if self.name.startswith(".train.parquet"):
            real_write(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build(make_config(releases[0], out))
    assert not list(out.rglob("*.tmp"))
    monkeypatch.undo()

    # A crash that could not clean up (a kill) leaves temporaries; the next build removes them,
    # but not one that a running process is still writing.
    dead = _dead_pid()
    (out / "grpo").mkdir(exist_ok=True)
    stale = out / "grpo" / f".train.parquet.{dead}.tmp"
    stale.write_bytes(b"half")
    live = out / f".other.jsonl.{os.getppid()}.tmp"
    live.write_bytes(b"being written")
    build(make_config(releases[0], out))
    assert not stale.exists() and live.exists()


def test_a_full_disk_while_writing_images_leaves_no_temporary(releases, tmp_path, make_config, monkeypatch):
    from PIL import Image

    real_save = Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        if str(fp).endswith(".tmp"):
            Path(fp).write_bytes(b"\xff\xd8 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_full)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        build(make_config(releases[0], out))
    assert not list(out.rglob("*.tmp"))


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


# ------------------------------------------------------------------- 10. special files, huge text


def test_an_image_that_is_a_symlink_loop_or_a_fifo_is_a_counted_skip(copy, tmp_path, make_config, releases):
    _, truth = releases
    studies = [m for m in truth["mimic"].values() if m["frontal_dicom_ids"] and m["split"] == "train"]
    images = []
    for study in studies[:2]:
        subject, dicom = study["subject_id"], study["frontal_dicom_ids"][0]
        images.append(next((copy / JPG / "files").glob(f"p{subject[:2]}/p{subject}/s*/{dicom}.jpg")))
    looped, fifo = images
    looped.unlink()
    looped.symlink_to(looped.with_suffix(".other"))
    looped.with_suffix(".other").symlink_to(looped)
    fifo.unlink()
    os.mkfifo(fifo)  # opening it would wait forever for a writer

    def hung(*_):
        raise TimeoutError("the build hung on a special file")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        out = tmp_path / "out"
        build(make_config(copy, out, "images.workers=0", "max_skip_fraction=1.0"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    details = {row["item"]: row["detail"] for row in skipped(out) if row["reason"] == "unreadable_image"}
    assert "symbolic links" in details[str(looped)] or "cannot be opened" in details[str(looped)]
    assert "not a regular file (a FIFO)" in details[str(fifo)]


def test_a_megabyte_answer_is_a_counted_skip_not_training_data(copy, tmp_path, make_config):
    records = json.loads((copy / EXT_TRAIN).read_text())
    target = next(i for i, r in enumerate(records) if r["semantic_type"] == "query" and r["answer"])
    records[target]["answer"] = ["x" * 1_000_000]
    (copy / EXT_TRAIN).write_text(json.dumps(records))
    rows = read_csv(copy / MEDICAL)
    rows[3][rows[0].index("answer")] = "y" * 200_000
    write_csv(copy / MEDICAL, rows)
    out = tmp_path / "out"
    manifest = build(make_config(copy, out))
    assert manifest["skipped"]["mimic-ext-vqa"]["text_too_long"] == 1
    assert manifest["skipped"]["medical-cxr-vqa"]["text_too_long"] == 1
    limit = manifest["config"]["max_text_chars"]
    for name in ("stage1/train.jsonl", "test/xraybench.jsonl"):
        assert max(len(line) for line in (out / name).read_text().splitlines()) < limit + 5000
