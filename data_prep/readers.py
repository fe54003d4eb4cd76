"""Checked reading of the releases' files: the one place that opens, decodes and validates them.

Every source module reads through these functions, so every release file gets the same guarantees
(the README's "What the build refuses, skips and never writes" states them for users):

- **Refused** (``SourceFileError``, naming the file; the build stops): a file that is not a regular
  file (a FIFO would block ``open`` forever, a symlink loop would fail deep inside), that is empty,
  that is not valid as its format (gzip, zip, JSON), that is wrongly shaped (a JSON object where the
  release ships a list) or that lacks a column its release always has. A file with a header but
  no row is refused too: a release never ships one.
- **Counted skips** (``SkipLog``, naming ``file:line``), and reading resumes at the next line, so a
  bad row never hides the rows after it: a CSV row with the wrong number of fields (a stray quote
  that swallows the following lines is undone: only its first line is skipped), a line longer
  than ``MAX_LINE_BYTES``, an exact duplicate of an earlier row (``duplicate_row``), a JSON element
  that is not an object or holds text that is not valid Unicode, a report that cannot be read, a
  CSV field over the ``csv`` module's limit (131,072 characters: ``text_too_long``, like the
  build's own bound ``max_text_chars`` on every text a sample carries).
- **Counted warnings** (``SkipLog.warn``; the row is kept): text that is not UTF-8. A line (or a
  report) that does not decode as UTF-8 is decoded as cp1252 (the Windows code page such exports
  come from), or as latin-1 where cp1252 leaves a byte undefined; reason ``decoded_as_cp1252`` or
  ``decoded_as_latin-1``. A UTF-8 byte-order mark is dropped.
- Blank lines are not rows: they are passed over silently.
- Readers never write: every file is opened read-only and left as it was.

``skips=None`` makes a reader strict: the first bad row is a ``SourceFileError`` (the local
XrayBench, where a skipped item would silently change the benchmark).
"""

from __future__ import annotations

import bisect
import csv
import gzip
import hashlib
import json
import os
import re
import stat
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from data_prep.records import SkipLog, SourceMissingError

MAX_LINE_BYTES = 16 << 20  # one CSV/JSONL line; the longest real line (a report row) is a few KB
MAX_TEXT_FILE_BYTES = 1 << 20  # one report file; a radiology report is a few KB
FALLBACK_ENCODINGS = ("cp1252", "latin-1")  # after UTF-8, in this order; latin-1 never fails
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class SourceFileError(ValueError):
    """A release file the build needs is unusable as a whole; the message names the file."""


@dataclass(frozen=True, slots=True)
class Row:
    """One CSV record: its values by column name, and where it starts (``file:line``)."""

    values: dict[str, str]
    item: str
    line: int


# ------------------------------------------------------------------------------ files and bytes


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a regular file (``"missing"``, a symlink loop, a FIFO...), or None.

    Checked before opening: ``open`` on a FIFO blocks until a writer appears, and a symlink loop
    only fails once something resolves the path.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as error:  # ELOOP (symlink loop), EACCES, ENAMETOOLONG...
        return f"cannot be opened: {error.strerror or error}"
    if stat.S_ISREG(mode):
        return None
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device or special file")
    return f"not a regular file ({kind})"


def require_file(path: Path) -> None:
    """Refuse a required release file that is missing, not a regular file or empty."""
    problem = file_problem(path)
    if problem == "missing":
        raise SourceMissingError(f"{path} is missing")
    if problem is not None:
        raise SourceFileError(f"{path} {problem}")
    if path.stat().st_size == 0:
        raise SourceFileError(f"{path} is empty (0 bytes)")


def decode_text(data: bytes) -> tuple[str, str | None]:
    """``data`` as text and the fallback encoding used (None for UTF-8); a UTF-8 BOM is dropped."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), None
    except UnicodeDecodeError:
        pass
    for encoding in FALLBACK_ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")


def _warn_decoded(skips: SkipLog | None, source: str, item: str, encoding: str | None) -> None:
    if encoding is not None and skips is not None:
        skips.warn(source, f"decoded_as_{encoding}", item, "not UTF-8")


def _bad(skips: SkipLog | None, source: str, reason: str, item: str, detail: str, path: Path) -> None:
    """A counted skip, or (strict reader) the error that refuses the file."""
    if skips is None:
        raise SourceFileError(f"{path}: {item}: {reason.replace('_', ' ')} ({detail})")
    skips.skip(source, reason, item, detail)


def _open_binary(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _physical_lines(handle: BinaryIO, path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes), or (number, None) for a line over ``MAX_LINE_BYTES`` (never held whole)."""
    number = 0
    try:
        while True:
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield number, None
            else:
                yield number, line
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise SourceFileError(f"{path} cannot be read past line {number}: {error}") from None


# ------------------------------------------------------------------------------------------ CSV


def csv_rows(
    path: Path,
    source: str,
    skips: SkipLog | None,
    required: Sequence[str],
    *,
    multiline: bool = False,
) -> Iterator[Row]:
    """The rows of a CSV (or ``.csv.gz``) file by column name, checked; see the module docstring.

    ``required``: columns the release always has (a missing one refuses the file). ``multiline``:
    whether a quoted field may span lines (report text); otherwise a record must fit on one line,
    so a stray quote can never swallow the rows after it.
    """
    require_file(path)
    with _open_binary(path) as handle:
        yield from _csv_records(path, source, skips, required, multiline, _decoded(_physical_lines(handle, path)))


def _decoded(lines: Iterator[tuple[int, bytes | None]]) -> Iterator[tuple[int, str | None, str | None]]:
    """(number, text or None when over the limit, fallback encoding or None); the BOM dropped."""
    for number, raw in lines:
        if raw is None:
            yield number, None, None
            continue
        try:
            text, encoding = raw.decode("utf-8"), None  # the fast path: C, no per-line Python codec
        except UnicodeDecodeError:
            text, encoding = decode_text(raw)
        yield number, (text.removeprefix("\ufeff") if number == 1 else text), encoding


class _RecordCut(Exception):
    """Raised into the csv module to end a record at a line it may not take."""


def _csv_records(path, source, skips, required, multiline, lines) -> Iterator[Row]:
    # One csv reader runs over the lines while records are good (the fast path). A bad record
    # gives back every line but its first, and reading resumes on them with a fresh reader.
    back: deque = deque()  # lines given back, read again before the file's next ones
    taken: list = []  # the lines the csv reader took for the record being parsed
    header: list[str] | None = None
    seen: dict[int, int] = {}
    records = 0

    def feed() -> Iterator[str]:
        while True:
            entry = back.popleft() if back else next(lines, None)
            if entry is None:
                return
            if taken and (entry[1] is None or not multiline):  # may not join the record
                back.appendleft(entry)
                raise _RecordCut
            taken.append(entry)
            yield "\n" if entry[1] is None else entry[1]  # an over-long line reads as blank, then is counted

    reader = None
    while True:
        if reader is None:
            reader = csv.reader(feed(), strict=True)
        taken.clear()
        try:
            values, error = next(reader), ""
        except StopIteration:
            break
        except (csv.Error, _RecordCut) as exc:
            values, error, reader = [], str(exc) or "a quoted field runs past the end of its line", None
        first = taken[0]
        item = f"{path.name}:{first[0]}"
        if first[1] is None:
            if header is None:
                raise SourceFileError(f"{path}: its header line is over {MAX_LINE_BYTES} bytes")
            records += 1
            _bad(skips, source, "line_too_long", item, f"over {MAX_LINE_BYTES} bytes", path)
            continue
        if not error and len(values) <= 1 and len(taken) == 1 and not (values and values[0].strip()):
            continue  # a blank line
        if header is None:
            header = [name.strip() for name in values]
            _check_header(path, header, required, error)
            continue
        records += 1
        if error or len(values) != len(header):
            # Only the first line is lost: what a stray quote swallowed is read again as rows.
            back.extendleft(reversed(taken[1:]))
            reader = None if len(taken) > 1 else reader
            detail = error or f"{len(values)} fields, the header has {len(header)}"
            reason = "text_too_long" if "field larger than field limit" in error else "malformed_row"
            _bad(skips, source, reason, item, detail, path)
            continue
        key = hash(tuple(values))  # 64 bits: a false duplicate is ~1e-8 likely in a million rows
        if key in seen:
            _bad(skips, source, "duplicate_row", item, f"same as line {seen[key]}", path)
            continue
        seen[key] = first[0]
        encoding = taken[0][2] if len(taken) == 1 else next((entry[2] for entry in taken if entry[2]), None)
        if encoding:
            _warn_decoded(skips, source, item, encoding)
        yield Row(dict(zip(header, values)), item, first[0])
    if header is None:
        raise SourceFileError(f"{path} has no header line (it is blank)")
    if records == 0:
        raise SourceFileError(f"{path} has a header but no rows")


def _check_header(path: Path, header: list[str], required: Sequence[str], error: str) -> None:
    if error:
        raise SourceFileError(f"{path}: its header line is not valid CSV ({error})")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise SourceFileError(f"{path}: the header repeats the columns {duplicated}")
    missing = [name for name in required if name not in header]
    if missing:
        raise SourceFileError(f"{path} lacks the columns {missing} (its header: {header[:20]})")


# ----------------------------------------------------------------------------------------- JSON


def _decoded_lines(data: bytes) -> tuple[str, list[tuple[int, str]]]:
    """The text, decoded line by line where the whole is not UTF-8, and (line, encoding) of fallbacks."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), []
    except UnicodeDecodeError:
        pass
    parts, fallbacks = [], []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        text, encoding = decode_text(raw)
        parts.append(text)
        if encoding is not None:
            fallbacks.append((number, encoding))
    return "".join(parts), fallbacks


def json_document(path: Path) -> tuple[Any, str, list[tuple[int, str]]]:
    """The parsed JSON of ``path``, its text and the lines decoded with a fallback; refuses invalid JSON."""
    require_file(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SourceFileError(f"{path} cannot be read: {error}") from None
    text, fallbacks = _decoded_lines(data)
    try:
        return json.loads(text), text, fallbacks
    except json.JSONDecodeError as error:
        raise SourceFileError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    except RecursionError:
        raise SourceFileError(f"{path} is nested too deeply to be a release file") from None


def describe(value: Any) -> str:
    """What a JSON value is, for messages: ``a JSON object with keys [...]``, ``a string``..."""
    if isinstance(value, dict):
        return f"a JSON object with keys {sorted(map(str, value))[:8]}"
    return "a " + {list: "list", str: "string", bool: "boolean", int: "number", float: "number",
                   type(None): "null"}.get(type(value), type(value).__name__)


def json_records(path: Path, source: str, skips: SkipLog | None) -> Iterator[tuple[int, str, dict]]:
    """(position, ``file[position]``, record) for each object of a JSON array file, checked.

    A file that is not a non-empty array is refused; an element that is not an object, holds
    invalid Unicode (a lone surrogate escape) or repeats an earlier element exactly is a counted skip.
    """
    records, text, fallbacks = json_document(path)
    if not isinstance(records, list):
        raise SourceFileError(f"{path} is {describe(records)}; the release ships a JSON list of records")
    if not records:
        raise SourceFileError(f"{path} is an empty list: no records")
    fallback_of = _element_fallbacks(text, fallbacks, len(records)) if fallbacks else {}
    seen: dict[bytes, int] = {}
    for position, record in enumerate(records):
        item = f"{path.name}[{position}]"
        if not isinstance(record, dict):
            _bad(skips, source, "malformed_record", item, f"{describe(record)}, not an object", path)
            continue
        canonical = json.dumps(record, sort_keys=True, ensure_ascii=False)
        if _LONE_SURROGATE.search(canonical):
            _bad(skips, source, "invalid_unicode", item, "a lone surrogate escape in a string", path)
            continue
        key = hashlib.blake2b(canonical.encode(), digest_size=12).digest()
        if key in seen:
            _bad(skips, source, "duplicate_row", item, f"same as [{seen[key]}]", path)
            continue
        seen[key] = position
        _warn_decoded(skips, source, item, fallback_of.get(position))
        yield position, item, record


def _element_fallbacks(text: str, fallbacks: list[tuple[int, str]], count: int) -> dict[int, str]:
    """Which array elements span a line that was decoded with a fallback (only run when one was)."""
    starts = [0] + [match.end() for match in re.finditer("\n", text)]
    decoder, spans, position = json.JSONDecoder(), [], text.index("[") + 1
    while len(spans) < count:
        position = _skip_separators(text, position)
        _, end = decoder.raw_decode(text, position)
        spans.append((bisect.bisect_right(starts, position), bisect.bisect_right(starts, max(end - 1, position))))
        position = end
    firsts, found = [first for first, _ in spans], {}
    for number, encoding in fallbacks:
        index = bisect.bisect_right(firsts, number) - 1
        if index >= 0 and spans[index][1] >= number:
            found.setdefault(index, encoding)
    return found


def _skip_separators(text: str, position: int) -> int:
    while text[position] in " \t\r\n,":
        position += 1
    return position


def json_lines(path: Path, source: str, skips: SkipLog | None) -> Iterator[tuple[str, dict]]:
    """(``file:line``, object) per non-blank line of a JSONL file; a bad line is a skip (or refuses)."""
    require_file(path)
    count = 0
    with path.open("rb") as handle:
        for number, raw in _physical_lines(handle, path):
            item = f"{path.name}:{number}"
            if raw is None:
                count += 1
                _bad(skips, source, "line_too_long", item, f"over {MAX_LINE_BYTES} bytes", path)
                continue
            text, encoding = decode_text(raw)
            if not text.strip():
                continue
            count += 1
            try:
                value = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as error:
                _bad(skips, source, "malformed_line", item, str(error), path)
                continue
            if not isinstance(value, dict):
                _bad(skips, source, "malformed_line", item, f"{describe(value)}, not an object", path)
                continue
            _warn_decoded(skips, source, item, encoding)
            yield item, value
    if count == 0:
        raise SourceFileError(f"{path} has no records (only blank lines)")


def parquet_rows(path: Path, allow_empty: bool = False) -> list[dict[str, Any]]:
    """The rows of a Parquet file; a file pyarrow cannot read is refused, and so is one without rows
    unless ``allow_empty`` (a caller that explains an empty file itself)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    require_file(path)
    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as error:
        raise SourceFileError(f"{path} is not a readable Parquet file: {error}") from None
    if not rows and not allow_empty:
        raise SourceFileError(f"{path} has no rows")
    return rows


def parquet_row_stream(path: Path, batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet file one at a time, read ``batch_size`` rows at a time (a copy that
    carries image bytes need not fit in memory); a file pyarrow cannot read is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    require_file(path)
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as error:
        raise SourceFileError(f"{path} is not a readable Parquet file: {error}") from None


# ------------------------------------------------------------------------------- text documents


def text_file(path: Path, source: str, skips: SkipLog, item: str) -> str | None:
    """One document (a report, an XML file) as text, or None after a counted skip."""
    problem = file_problem(path)
    if problem is None and path.stat().st_size > MAX_TEXT_FILE_BYTES:
        problem = f"{path.stat().st_size} bytes, over {MAX_TEXT_FILE_BYTES}"
    if problem is None:
        try:
            data = path.read_bytes()
        except OSError as error:
            problem = str(error)
    if problem is not None:
        skips.skip(source, "unreadable_file", item, f"{path}: {problem}")
        return None
    text, encoding = decode_text(data)
    _warn_decoded(skips, source, item, encoding)
    return text


def zip_texts(
    path: Path, wanted: Callable[[str], str | None], source: str, skips: SkipLog
) -> Iterator[tuple[str, str]]:
    """(key, text) for each member of the zip archive whose name ``wanted`` maps to a key.

    An archive that is not a zip is refused; a member that is too large, fails its CRC or cannot
    be decompressed is a counted skip (``unreadable_file``) and the others are still read.
    """
    require_file(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise SourceFileError(f"{path} is not a readable zip archive: {error}") from None
    with archive:
        for info in sorted(archive.infolist(), key=lambda member: member.filename):
            key = wanted(info.filename)
            if key is None:
                continue
            item = f"{path.name}:{info.filename}"
            if info.file_size > MAX_TEXT_FILE_BYTES:
                skips.skip(source, "unreadable_file", item, f"{info.file_size} bytes, over {MAX_TEXT_FILE_BYTES}")
                continue
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as error:
                skips.skip(source, "unreadable_file", item, str(error))
                continue
            text, encoding = decode_text(data)
            _warn_decoded(skips, source, item, encoding)
            yield key, text
