"""The GRPO grounding slice asks "Is there <category>?": MS-CXR's phrases answer "yes", and as many
questions on images whose report rules the category out answer "no"."""

from collections import Counter

import pyarrow.parquet as pq

from data_prep import mimic_cxr, ms_cxr
from data_prep.records import SkipLog
from rewards.ground_truth import parse_ground_truth


def test_absent_findings_match_the_present_ones_per_category_and_split(releases):
    root, truth = releases
    skips = SkipLog()
    index = mimic_cxr.index_images(root / "mimic-cxr-jpg", ["PA", "AP"], skips)
    present = ms_cxr.grounding_samples(root / "ms-cxr", index, skips)
    absent = ms_cxr.absent_finding_samples(root / "mimic-cxr-jpg", index, present, 1, seed=0, skips=skips)
    assert present and absent
    wanted = Counter((s.subtype, s.split) for s in present)
    got = Counter((s.subtype, s.split) for s in absent)
    assert all(got[key] <= count for key, count in wanted.items()) and set(got) <= set(wanted)
    for sample in absent:
        assert sample.answer == "no" and sample.answer_kind == "closed" and not sample.boxes
        study = sample.image.parent.name.removeprefix("s")
        assert sample.subtype not in truth["mimic"][study]["positive_labels"]
        assert sample.split == truth["subject_splits"][sample.subject.removeprefix("mimic:")]
    again = ms_cxr.absent_finding_samples(root / "mimic-cxr-jpg", index, present, 1, seed=0, skips=SkipLog())
    assert again == absent
    assert ms_cxr.absent_finding_samples(root / "mimic-cxr-jpg", index, present, 0, seed=0, skips=skips) == []


def grounding_answers(path) -> Counter:
    answers = Counter()
    for row in pq.read_table(path).to_pylist():
        truth = parse_ground_truth(row["answer"])
        if row["sample_id"].startswith(("ms-cxr/", "mimic-cxr/absent/")):
            answers[truth.answer] += 1
            assert bool(truth.boxes) == (truth.answer == "yes")
    return answers


def test_grpo_grounding_answers_are_balanced(releases, tmp_path, make_config):
    from data_prep.build import build

    manifest = build(make_config(releases[0], tmp_path, "grpo.size=100"))
    for name in ("grpo/train.parquet", "cold_start/candidates.parquet"):
        answers = grounding_answers(tmp_path / name)
        assert answers["yes"] > 0 and answers["yes"] == answers["no"], (name, answers)
    by_task = manifest["outputs"]["grpo/train.parquet"]["by_task"]
    assert by_task["grounding"] == by_task["grounding_absent"] > 0


def test_a_missing_chexpert_file_says_how_to_do_without(releases, tmp_path):
    import shutil

    import pytest

    from data_prep.records import SourceMissingError

    root, _ = releases
    jpg = tmp_path / "mimic-cxr-jpg"
    shutil.copytree(root / "mimic-cxr-jpg", jpg, ignore=shutil.ignore_patterns("files", "*chexpert*"))
    skips = SkipLog()
    index = mimic_cxr.index_images(root / "mimic-cxr-jpg", ["PA", "AP"], skips)
    present = ms_cxr.grounding_samples(root / "ms-cxr", index, skips)
    with pytest.raises(SourceMissingError, match="absent_per_present=0"):
        ms_cxr.absent_finding_samples(jpg, index, present, 1, seed=0, skips=skips)
