"""The evaluation's one JSONL reader, the resume reader, and a fuzz test of both readers (items, predictions)."""

import json
import random

import pytest

from eval.arena.run import shared_items
from eval.jsonl import JsonlError, item_problem, read_items, read_jsonl
from eval.predictions import (PredictionsFileError, PredictionWriter, load_predictions, prediction_problem,
                              read_finished, read_predictions)
from eval.viewer.items import load_view_items


def prediction(i: int, task: str = "vqa") -> dict:
    return {"id": f"q{i}", "dataset": "mimic-ext-vqa" if task == "vqa" else "mimic-cxr", "task": task,
            "question_type": "presence", "prediction": "yes", "reference": "yes" if i % 2 else ["heart", "left lung"]}


def item(i: int) -> dict:
    return {"id": f"q{i}", "source": "mimic-ext-vqa", "task": "vqa", "subtype": "presence", "images": [f"images/{i}.jpg"],
            "prompt": "Is there an effusion?", "answer": "yes", "answer_kind": "closed", "frame": {"width": 64, "height": 64}}


def lines_of(rows) -> list[bytes]:
    return [json.dumps(row).encode() + b"\n" for row in rows]


def test_blank_and_bad_lines_lose_nothing_after_them(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = lines_of(prediction(i) for i in range(101))
    lines[50] = b"\n"  # a blank line
    lines[70] = b'{"id": "q70", "dataset": \n'  # a damaged line
    lines[-1] = lines[-1].rstrip(b"\n")  # a valid last line without its newline
    path.write_bytes(b"".join(lines))
    before = path.read_bytes()
    content = read_jsonl(path)
    assert content.blank == 1 and len(content.rows) == 99 and content.lines[-1] == 101
    assert [bad.line for bad in content.bad] == [71] and "not valid JSON" in content.bad[0].reason
    assert content.missing_final_newline and content.torn_offset is None
    rows, problems = load_predictions(path)
    assert len(rows) == 99 and rows[-1]["id"] == "q100" and problems[0].startswith(f"{path}:71: not valid JSON")
    assert path.read_bytes() == before


@pytest.mark.parametrize("line, reason", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"id": "q1", "reference": NaN}', "NaN is not standard JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"null", "not a JSON object (a JSON null)"),
    (b'["q1"]', "not a JSON object (a JSON list)"),
    (b"{'id': 'q1'}", "not valid JSON"),
])
def test_each_kind_of_bad_line_is_named(tmp_path, line, reason):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"".join(lines_of([prediction(0)])) + line + b"\n" + b"".join(lines_of([prediction(2)])))
    content = read_jsonl(path)
    assert [row["id"] for row in content.rows] == ["q0", "q2"]
    assert len(content.bad) == 1 and content.bad[0].line == 2 and reason in content.bad[0].reason


@pytest.mark.parametrize("change, reason", [
    ({"id": 7}, "id must be a non-empty string, got 7"),
    ({"id": ""}, "id must be a non-empty string"),
    ({"task": "report"}, "unknown task 'report'"),
    ({"task": None}, "unknown task None"),
    ({"reference": None}, "reference must be a string or a list of strings, got None"),
    ({"reference": 3.5}, "reference must be a string"),
    ({"reference": ["a", 1]}, "reference must be a string or a list of strings"),
    ({"prediction": None}, "prediction must be a string, got None"),
    ({"dataset": ["x"]}, "dataset must be a non-empty string"),
    ({"question_type": 4}, "question_type must be a string"),
])
def test_invalid_prediction_rows_are_counted_with_the_reason(change, reason):
    assert reason in prediction_problem({**prediction(1), **change})


def test_an_empty_answer_list_is_valid():
    """A multi-object question whose answer is "none of them" (the data build writes [])."""
    assert prediction_problem({**prediction(1), "reference": []}) is None
    assert item_problem({**item(1), "answer": []}) is None


def test_task_names_are_case_normalised():
    row = {**prediction(1, "findings"), "task": " Findings "}
    assert prediction_problem(row) is None and row["task"] == "findings"


def test_repeated_ids_are_refused_by_the_scorer_and_named(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"".join(lines_of([prediction(0), prediction(1), prediction(0)])))
    content, duplicates = read_predictions(path)
    assert [row["id"] for row in content.rows] == ["q0", "q1"]
    assert duplicates[0].line == 3 and "duplicate id 'q0' (first on line 1)" in duplicates[0].reason
    with pytest.raises(PredictionsFileError, match=r"p.jsonl:3: duplicate id 'q0'"):
        load_predictions(path)


def test_items_reader_names_invalid_items_and_repeated_ids(tmp_path):
    path = tmp_path / "items.jsonl"
    rows = [item(0), {**item(1), "images": []}, item(2), item(0), {**item(3), "answer": None}]
    path.write_bytes(b"".join(lines_of(rows)) + b"\n\n")
    content = read_items(path)
    assert [row["id"] for row in content.rows] == ["q0", "q2"] and content.blank == 2
    assert [(bad.line, bad.reason.split(" ")[0]) for bad in content.bad] == [(2, "images"), (4, "duplicate"), (5, "answer")]
    with pytest.raises(JsonlError, match="3 bad line"):
        content.refuse_bad("evaluation items")
    with pytest.raises(JsonlError, match="does not exist"):
        read_items(tmp_path / "missing.jsonl")


# ------------------------------------------------------------------------------ the resume reader


def test_resume_never_deletes_a_prediction_after_a_bad_line(tmp_path):
    """Issue 16.1: one blank line at line 51 of 101 turned into 52 lines on rerun, exit 0."""
    path = tmp_path / "predictions.jsonl"
    lines = lines_of(prediction(i) for i in range(101))
    lines[50] = b"\n"
    path.write_bytes(b"".join(lines))
    assert len(read_finished(path, repair=True)) == 100  # blank lines are skipped, nothing is cut
    assert path.read_bytes() == b"".join(lines)

    lines[50] = b'{"id": "q50", "data\n'  # a damaged line in the middle: an error that changes nothing
    path.write_bytes(b"".join(lines))
    with pytest.raises(PredictionsFileError, match=r"predictions.jsonl:51: not valid JSON"):
        read_finished(path, repair=True)
    assert path.read_bytes() == b"".join(lines)

    lines[50] = b'{"dataset": "d"}\n'  # a row a resume cannot key on
    path.write_bytes(b"".join(lines))
    with pytest.raises(PredictionsFileError, match=r":51: id must be a non-empty string"):
        read_finished(path, repair=True)
    assert path.read_bytes() == b"".join(lines)


def test_resume_cuts_only_a_torn_last_line_and_closes_an_open_one(tmp_path):
    path = tmp_path / "predictions.jsonl"
    whole = b"".join(lines_of([prediction(0), prediction(1)]))
    path.write_bytes(whole + b'{"id": "q2", "da')
    assert [row["id"] for row in read_finished(path)] == ["q0", "q1"] and path.read_bytes().endswith(b'"da')
    assert [row["id"] for row in read_finished(path, repair=True)] == ["q0", "q1"] and path.read_bytes() == whole

    path.write_bytes(whole.rstrip(b"\n"))  # a valid last line without its newline is kept
    assert [row["id"] for row in read_finished(path, repair=True)] == ["q0", "q1"]
    writer = PredictionWriter(path)
    writer.write([prediction(2)])
    writer.close()
    assert [row["id"] for row in read_finished(path)] == ["q0", "q1", "q2"]


# ---------------------------------------------------------------------------------------- fuzzing

GARBAGE = [b"", b"\n", b"   ", b"null", b"[]", b"NaN", b"{", b"}", b"\xff", b"\xc3", b'"', b",", b"\x00", b"\r",
           b"[" * 5000, b'{"id": 1}', b'{"id": "q1"}', b'{"task": "Report"}']


def corrupt(data: bytes, rng: random.Random) -> bytes:
    """Up to four random damages: bytes deleted, inserted or replaced, a line repeated, the file cut."""
    for _ in range(rng.randint(1, 4)):
        lines = data.split(b"\n")
        kind = rng.randrange(6)
        if kind == 0 and data:  # delete a span
            start = rng.randrange(len(data))
            data = data[:start] + data[start + rng.randint(1, 40):]
        elif kind == 1:  # insert garbage
            at = rng.randint(0, len(data))
            data = data[:at] + rng.choice(GARBAGE) + data[at:]
        elif kind == 2 and data:  # replace one byte
            at = rng.randrange(len(data))
            data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
        elif kind == 3 and len(lines) > 1:  # repeat a line
            at = rng.randrange(len(lines) - 1)
            lines.insert(rng.randrange(len(lines)), lines[at])
            data = b"\n".join(lines)
        elif kind == 4 and len(lines) > 1:  # replace a line
            lines[rng.randrange(len(lines) - 1)] = rng.choice(GARBAGE)
            data = b"\n".join(lines)
        elif kind == 5 and data:  # cut the file
            data = data[: rng.randrange(len(data))]
    return data


def oracle_rows(data: bytes, valid) -> dict[int, str]:
    """Line number -> id of every line that is, on its own, a valid row whose id came first: what a
    reader must return whatever is around it (stdlib json per line, independent of the reader)."""
    found, seen = {}, set()
    parts = data.split(b"\n")
    for number, raw in enumerate(parts, start=1):
        try:
            row = json.loads(raw.decode("utf-8"), parse_constant=lambda name: 1 / 0)
        except (ValueError, ZeroDivisionError, RecursionError):
            continue
        if isinstance(row, dict) and valid(row) and row["id"] not in seen:
            seen.add(row["id"])
            found[number] = row["id"]
    return found


@pytest.mark.parametrize("kind", ["predictions", "items"])
def test_fuzzed_files_are_read_without_traceback_or_silent_loss(tmp_path, kind):
    rows = ([prediction(i, "vqa" if i % 3 else "findings") for i in range(40)] if kind == "predictions"
            else [item(i) for i in range(40)])
    valid_file = b"".join(lines_of(rows))
    if kind == "predictions":
        read = lambda path: read_predictions(path)  # noqa: E731
        valid = lambda row: prediction_problem(dict(row)) is None  # noqa: E731
    else:
        read = lambda path: (read_items(path), [])  # noqa: E731
        valid = lambda row: item_problem(row) is None  # noqa: E731
    rng = random.Random(16)
    path = tmp_path / f"{kind}.jsonl"
    for trial in range(300):
        data = corrupt(valid_file, rng)
        path.write_bytes(data)
        content, duplicates = read(path)
        assert path.read_bytes() == data, "a reader changed the file"
        parts = data.split(b"\n")
        lines = len(parts) - (parts[-1] == b"")
        # every line is read, counted as bad with a reason, a repeat, or blank
        assert len(content.rows) + len(content.bad) + len(duplicates) + content.blank == lines, trial
        assert all(bad.reason for bad in [*content.bad, *duplicates])
        # every line that is a valid row on its own is read, whatever came before it
        expected = oracle_rows(data, valid)
        assert dict(zip(content.lines, (row["id"] for row in content.rows))) == expected, trial
        if kind == "predictions":
            resumed = None
            try:
                resumed = read_finished(path)
            except PredictionsFileError as error:
                assert f"{path}:" in str(error)
            assert path.read_bytes() == data
            if resumed is not None:  # the resume reader's repair only cuts a torn tail or adds a newline
                read_finished(path, repair=True)
                after = path.read_bytes()
                assert after == data + b"\n" or data.startswith(after)
                assert [row["id"] for row in read_finished(path)] == [row["id"] for row in resumed]


def test_fuzzed_files_through_the_viewer_and_the_arena(tmp_path):
    """The viewer and the arena read through the same reader: corrupted inputs are counted, not fatal."""
    rng = random.Random(7)
    items = b"".join(lines_of(item(i) for i in range(12)))
    reports = b"".join(lines_of({**prediction(i, "findings"), "reference": "clear"} for i in range(12)))
    for trial in range(40):
        (tmp_path / "items.jsonl").write_bytes(corrupt(items, rng))
        (tmp_path / "a.jsonl").write_bytes(corrupt(reports, rng))
        (tmp_path / "b.jsonl").write_bytes(reports)
        problems: list[str] = []
        view = load_view_items(tmp_path / "items.jsonl", {"a": tmp_path / "a.jsonl"}, None, 0, False, problems)
        expected = set(oracle_rows((tmp_path / "items.jsonl").read_bytes(), lambda r: item_problem(r) is None).values())
        assert {v.item["id"] for v in view} <= expected
        try:
            common, _ = shared_items({"a": tmp_path / "a.jsonl", "b": tmp_path / "b.jsonl"}, {})
        except SystemExit as error:  # repeated ids or nothing in common: a message, not a traceback
            assert "repeat an earlier id" in str(error) or "share no report-generation item" in str(error)
        else:
            assert set(common) <= {f"q{i}" for i in range(12)}
