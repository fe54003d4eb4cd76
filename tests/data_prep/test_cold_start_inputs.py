"""The cold start's input, the build's candidates file, read through the checked readers: missing,
empty or unreadable, it is one message naming the file on the command line, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("content, message", [
    (None, "candidates.parquet is missing: run the data build"),
    (b"", "candidates.parquet is empty"),
    (b"PAR1 cut short", "candidates.parquet is not a readable Parquet file"),
])
def test_a_missing_or_broken_candidates_file_is_one_message(tmp_path, content, message):
    if content is not None:
        (tmp_path / "cold_start").mkdir()
        (tmp_path / "cold_start" / "candidates.parquet").write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "data_prep.cold_start", f"data_dir={tmp_path}", "teacher.kind=offline"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr[-1500:]


@pytest.mark.parametrize("override, message", [
    ("batch_size=0", "batch_size must be an integer >= 1, got 0"),
    ("size=-1", "size must be an integer >= 1, got -1"),
    ("teacher.concurrency=true", "teacher.concurrency must be an integer >= 1, got True"),
])
def test_a_count_out_of_range_is_one_message(tmp_path, override, message):
    result = subprocess.run([sys.executable, "-m", "data_prep.cold_start", f"data_dir={tmp_path}", override],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr[-1500:]


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"{cut", b"[1, 2]", b'{"other": 1}'])
def test_a_damaged_cache_entry_is_a_miss_not_a_traceback(tmp_path, content):
    from data_prep.endpoint import CallCache

    cache = CallCache(tmp_path)
    cache.put("ab" + "0" * 62, "kept", "m")
    assert cache.get("ab" + "0" * 62) == "kept"
    cache._path("ab" + "0" * 62).write_bytes(content)
    assert cache.get("ab" + "0" * 62) is None
