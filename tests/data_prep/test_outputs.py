import json

import pytest

from data_prep.outputs import EmptyOutputError, require_rows, row_count
from data_prep.writers import write_parquet


def test_rows_are_counted_in_jsonl_and_parquet(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": 1}\n\n  \n{"id": 2}\n')
    write_parquet(tmp_path / "b.parquet", [{"prompt": "p", "images": ["i.jpg"], "answer": "a", "sample_id": "s"}])
    write_parquet(tmp_path / "c.parquet", [])
    assert (row_count(tmp_path / "a.jsonl"), row_count(tmp_path / "b.parquet"), row_count(tmp_path / "c.parquet")) == (2, 1, 0)
    assert require_rows(tmp_path / "a.jsonl") == 2


def test_an_empty_file_is_refused_with_the_builds_reason_when_a_manifest_lists_it(tmp_path):
    (tmp_path / "grpo").mkdir()
    write_parquet(tmp_path / "grpo" / "val.parquet", [])
    with pytest.raises(EmptyOutputError, match="no data-build manifest.json beside it"):
        require_rows(tmp_path / "grpo" / "val.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({
        "outputs": {"grpo/val.parquet": {"rows": 0}},
        "empty_outputs": {"grpo/val.parquet": "grpo.val_size=300 drew nothing"}}))
    with pytest.raises(EmptyOutputError, match=r"data build in .* left grpo/val.parquet empty \(grpo.val_size=300"):
        require_rows(tmp_path / "grpo" / "val.parquet")
    with pytest.raises(EmptyOutputError, match="left grpo/val.parquet empty"):
        require_rows(tmp_path / "grpo" / "val.parquet", rows=0)  # counted by the caller
