"""The checked readers every source module reads through: one behaviour per test."""

import gzip
import json
import os

import pytest

from data_prep import readers
from data_prep.readers import SourceFileError
from data_prep.records import SkipLog, SourceMissingError

HEADER = "dicom_id,split\n"


def rows(path, skips=None, required=("dicom_id", "split"), **options):
    skips = SkipLog() if skips is None else skips
    return [(row.line, row.values) for row in readers.csv_rows(path, "src", skips, required, **options)], skips


def test_required_columns_empty_files_and_header_only_files_are_refused_by_name(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text("dicom_id,other\na,b\n")
    with pytest.raises(SourceFileError, match=r"split.csv lacks the columns \['split'\]"):
        rows(path)
    path.write_bytes(b"")
    with pytest.raises(SourceFileError, match=r"split.csv is empty"):
        rows(path)
    path.write_text(HEADER)
    with pytest.raises(SourceFileError, match="header but no rows"):
        rows(path)
    path.write_text("dicom_id,split,split\na,b,c\n")
    with pytest.raises(SourceFileError, match="repeats the columns"):
        rows(path)
    with pytest.raises(SourceMissingError, match="nope.csv is missing"):
        rows(tmp_path / "nope.csv")


def test_gzip_that_is_not_gzip_or_is_cut_is_refused(tmp_path):
    path = tmp_path / "split.csv.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(SourceFileError, match="split.csv.gz cannot be read"):
        rows(path)
    data = gzip.compress((HEADER + "".join(f"d{i},train\n" for i in range(5000))).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceFileError, match="split.csv.gz cannot be read past line"):
        rows(path)


def test_bad_rows_are_counted_and_nothing_after_them_is_lost(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text(HEADER + "a,train\nb,\"test\nc,train\n\n   \nd,validate,extra\ne,test\n")
    found, skips = rows(path)
    # The stray quote on line 3 would swallow line 4 and everything after it: only line 3 is lost.
    assert found == [(2, {"dicom_id": "a", "split": "train"}), (4, {"dicom_id": "c", "split": "train"}),
                     (8, {"dicom_id": "e", "split": "test"})]
    assert [(row["reason"], row["item"]) for row in skips.rows] == [
        ("malformed_row", "split.csv:3"), ("malformed_row", "split.csv:7")]


def test_multiline_fields_are_read_where_the_release_has_them(tmp_path):
    path = tmp_path / "reports.csv"
    path.write_text('uid,findings\n1,"Heart normal.\nLungs clear."\n2,"Open quote\n3,ok\n')
    found, skips = rows(path, required=("uid", "findings"), multiline=True)
    assert found == [(2, {"uid": "1", "findings": "Heart normal.\nLungs clear."}), (5, {"uid": "3", "findings": "ok"})]
    assert [row["item"] for row in skips.rows] == ["reports.csv:4"]


def test_exact_duplicate_rows_are_counted(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text(HEADER + "a,train\nb,test\na,train\n")
    found, skips = rows(path)
    assert [line for line, _ in found] == [2, 3]
    assert skips.rows == [{"source": "src", "reason": "duplicate_row", "item": "split.csv:4", "detail": "same as line 2"}]


def test_non_utf8_lines_fall_back_to_cp1252_then_latin1_and_are_counted(tmp_path):
    path = tmp_path / "split.csv"
    path.write_bytes(HEADER.encode() + "caf\u00e9,train\n".encode("utf-8") + b"na\xefve \x96 x,test\n"
                     + b"\x81odd,train\n")
    found, skips = rows(path)
    assert [values["dicom_id"] for _, values in found] == ["caf\u00e9", "na\u00efve \u2013 x", "\u0081odd"]
    assert [(row["reason"], row["item"]) for row in skips.warnings] == [
        ("decoded_as_cp1252", "split.csv:3"), ("decoded_as_latin-1", "split.csv:4")]
    assert readers.decode_text("\ufeffa".encode("utf-8")) == ("a", None)


def test_an_overlong_line_is_skipped_without_being_held(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 64)
    path = tmp_path / "split.csv"
    path.write_text(HEADER + "a,train\n" + "x" * 500 + ",test\nb,test\n")
    found, skips = rows(path)
    assert [values["dicom_id"] for _, values in found] == ["a", "b"]
    assert [(row["reason"], row["item"]) for row in skips.rows] == [("line_too_long", "split.csv:3")]


def test_a_field_over_the_csv_limit_is_a_counted_text_too_long(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text(HEADER + "a," + "x" * 200_000 + "\nb,test\n")
    found, skips = rows(path)
    assert [values["dicom_id"] for _, values in found] == ["b"]
    assert skips.rows[0]["reason"] == "text_too_long"


def test_strict_reading_refuses_the_first_bad_row(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text(HEADER + "a,train\nb,test,extra\n")
    with pytest.raises(SourceFileError, match=r"split.csv: split.csv:3: malformed row"):
        list(readers.csv_rows(path, "src", None, ("dicom_id",)))


def test_fifos_and_symlink_loops_are_refused_without_opening_them(tmp_path):
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)  # open() on it would block forever
    with pytest.raises(SourceFileError, match=r"not a regular file \(a FIFO\)"):
        rows(fifo)
    loop = tmp_path / "loop.csv"
    loop.symlink_to(tmp_path / "loop2.csv")
    (tmp_path / "loop2.csv").symlink_to(loop)
    with pytest.raises(SourceFileError, match="cannot be opened"):
        rows(loop)
    assert readers.file_problem(tmp_path) == "not a regular file (a directory)"


def test_json_records_shape_and_bad_elements(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"data": []}))
    with pytest.raises(SourceFileError, match=r"train.json is a JSON object with keys \['data'\]"):
        list(readers.json_records(path, "src", SkipLog()))
    path.write_text("[]")
    with pytest.raises(SourceFileError, match="empty list"):
        list(readers.json_records(path, "src", SkipLog()))
    path.write_text('[{"a": 1}, ')
    with pytest.raises(SourceFileError, match=r"train.json is not valid JSON \(line 1"):
        list(readers.json_records(path, "src", SkipLog()))
    path.write_text('[{"a": 1}, 3, {"a": "\\ud800"}, {"a": 1}, {"a": 2}]')
    skips = SkipLog()
    assert [(p, r) for p, _, r in readers.json_records(path, "src", skips)] == [(0, {"a": 1}), (4, {"a": 2})]
    assert [(row["reason"], row["item"]) for row in skips.rows] == [
        ("malformed_record", "train.json[1]"), ("invalid_unicode", "train.json[2]"), ("duplicate_row", "train.json[3]")]


def test_json_fallback_decoding_is_counted_per_record(tmp_path):
    path = tmp_path / "train.json"
    path.write_bytes(b'[\n  {"q": "a"},\n  {"q": "caf\xe9"},\n  {"q": "c"}\n]\n')
    skips = SkipLog()
    assert [r["q"] for _, _, r in readers.json_records(path, "src", skips)] == ["a", "caf\u00e9", "c"]
    assert [(row["reason"], row["item"]) for row in skips.warnings] == [("decoded_as_cp1252", "train.json[1]")]


def test_json_lines_skip_or_refuse_bad_lines(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text('{"a": 1}\n\n{broken\n[1]\n{"a": 2}')  # the last line has no newline: still read
    skips = SkipLog()
    assert [row for _, row in readers.json_lines(path, "src", skips)] == [{"a": 1}, {"a": 2}]
    assert [row["item"] for row in skips.rows] == ["test.jsonl:3", "test.jsonl:4"]
    with pytest.raises(SourceFileError, match="test.jsonl:3"):
        list(readers.json_lines(path, "src", None))


def test_zip_members_that_fail_are_counted_and_the_others_read(tmp_path):
    import zipfile

    path = tmp_path / "reports.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("files/s1.txt", "FINDINGS: one " * 50)
        archive.writestr("files/s2.txt", "FINDINGS: two " * 50)
    data = bytearray(path.read_bytes())
    start = data.index(b"files/s1.txt") + len("files/s1.txt") + 5  # inside s1's compressed bytes
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))
    skips = SkipLog()
    found = dict(readers.zip_texts(path, lambda name: name[-6:-4], "src", skips))
    assert list(found) == ["s2"] and [row["reason"] for row in skips.rows] == ["unreadable_file"]
    path.write_bytes(b"PK not really")
    with pytest.raises(SourceFileError, match="not a readable zip archive"):
        list(readers.zip_texts(path, lambda name: name, "src", SkipLog()))
