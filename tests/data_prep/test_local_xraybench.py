"""Local XrayBench (a copy of the hub dataset): its metadata survives, inferred where not mapped,
and Table 1, the per-type VQA accuracy and the per-object recall work on it unchanged."""

import json
import shutil
from collections import Counter

import pytest

from data_prep.build import build
from data_prep.fixtures import generate_releases
from data_prep.fixtures.xraybench import write_local_xraybench
from data_prep.readers import SourceFileError
from data_prep.xraybench import XrayBenchSchemaError
from eval.infer import prediction_row
from eval.score import main as score_main
from rewards.normalize import written_answer


@pytest.fixture
def releases_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("releases")
    return root, generate_releases(root, seed=0, subjects=14)


def items_of(out):
    return [json.loads(line) for line in (out / "test" / "xraybench.jsonl").read_text().splitlines()]


def check_items(items, expected):
    assert len(items) == len(expected)
    for item, want in zip(items, expected):
        got = {"source": item["source"], "task": item["task"], "question_type": item["subtype"],
               "answer_kind": item["answer_kind"], "answer": item["answer"]}
        assert got == {key: want[key] for key in got}, item["id"]


def test_hub_like_parquet_with_image_bytes_is_inferred_and_scores_like_a_rebuild(releases_copy, tmp_path, make_config):
    root, truth = releases_copy
    expected = write_local_xraybench(root, truth, "parquet")
    out = tmp_path / "out"
    manifest = build(make_config(root, out, "xraybench.mode=local", "xraybench.local.file=test.parquet",
                                 "grounding_eval.enabled=false"))  # evaluation patients: XrayBench's alone
    items = items_of(out)
    check_items(items, expected)
    # a one-item answer to a list question is still a list (set F1), lists arrive "|"-joined
    assert any(i["answer_kind"] == "multi_object" and len(i["answer"]) == 1 for i in items)
    assert any(i["answer_kind"] == "multi_object" and len(i["answer"]) > 1 for i in items)
    local = manifest["outputs"]["test/xraybench.jsonl"]["local"]
    n = len(expected)
    reports = sum(e["task"] != "vqa" for e in expected)
    assert local["items"] == local["rows"] == n and local["unguarded_subjects"] == 0
    assert sum(local["inferred"]["source"].values()) == sum(local["inferred"]["task"].values()) == n
    assert local["inferred"]["source"]["release_match"] == n  # every item found in the parsed releases
    assert local["inferred"]["question_type"] == {"release_match": n - reports}
    assert sum(local["inferred"]["subject"].values()) == n
    # the evaluation patients are kept out of training
    subjects = {e["subject"] for e in expected}
    assert manifest["leakage_check"]["evaluation_patients"] == len(subjects)

    # Perfect predictions, through eval.infer's own row builder, then eval.score: Table 1 splits per
    # source and section, VQA per dataset and question type, per-object recall.
    predictions = tmp_path / "run" / "predictions.jsonl"
    predictions.parent.mkdir()
    rows = [prediction_row(item, f"<think>[1, 1, 20, 20]</think> \\boxed{{{written_answer(item['answer'])}}}", "ref")
            for item in items]
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert score_main([str(predictions), "--out", str(tmp_path / "run"), "--bootstrap", "0", "--no-meteor"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["reports"]) == {f"{e['source']}/{e['task']}" for e in expected if e["task"] != "vqa"}
    assert set(metrics["vqa"]) == {"mimic-ext-vqa", "medical-cxr-vqa"}
    for dataset, result in metrics["vqa"].items():
        types = Counter(e["question_type"] for e in expected if e["source"] == dataset)
        assert result["n_by_type"] == dict(types)
        assert all(entry["value"] == 1.0 for key, entry in result.items() if isinstance(entry, dict) and "value" in entry)
        assert result["per_object_recall"] or dataset == "medical-cxr-vqa"
        assert all(r["recall"] == 1.0 for r in result["per_object_recall"].values())


def test_mapped_jsonl_with_image_paths(releases_copy, tmp_path, make_config):
    root, truth = releases_copy
    expected = write_local_xraybench(root, truth, "jsonl")
    columns = ["xraybench.columns.id=id", "xraybench.columns.source=dataset", "xraybench.columns.task=task_type",
               "xraybench.columns.question_type=question_type", "xraybench.columns.subject=subject"]
    manifest = build(make_config(root, tmp_path, "xraybench.mode=local", *columns))
    items = items_of(tmp_path)
    check_items(items, expected)
    assert [item["id"] for item in items] == [f"item-{k}" for k in range(len(expected))]
    inferred = manifest["outputs"]["test/xraybench.jsonl"]["local"]["inferred"]
    assert inferred["source"] == inferred["task"] == inferred["subject"] == {"column": len(expected)}


def test_a_copy_whose_items_cannot_be_typed_is_refused(releases_copy, tmp_path, make_config):
    root, truth = releases_copy
    write_local_xraybench(root, truth, "parquet")
    shutil.rmtree(root / "mimic-ext-mimic-cxr-vqa")  # its questions can no longer be matched
    shutil.rmtree(root / "medical-cxr-vqa")
    with pytest.raises(XrayBenchSchemaError, match=r"(?s)question_type: \d+ rows.*source: \d+ rows.*xraybench.columns"):
        build(make_config(root, tmp_path, "xraybench.mode=local", "xraybench.local.file=test.parquet"))


def load(tmp_path, rows, **columns):
    from data_prep.records import SkipLog
    from data_prep.xraybench import load_local

    path = tmp_path / "bench.jsonl"
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    mapping = {"image": "images", "prompt": "problem", "answer": "answer", **columns}
    kinds = {"mimic-ext-vqa": {"anatomy": "multi_object", "plane": "closed"},
             "medical-cxr-vqa": {"abnormality": "multi_object"}}
    skips = SkipLog()
    return load_local(path, mapping, tmp_path, tmp_path / "x", [], kinds, False, skips), skips


IMAGE = "files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg"


def test_column_values_rules_and_bad_rows(tmp_path):
    rows = [
        {"images": [IMAGE], "problem": "<image>List the locations.", "answer": "left lung", "ds": "Ext-VQA",
         "qt": "Anatomy"},
        {"images": IMAGE, "problem": "Which view?", "answer": ["pa"], "ds": "mimic_ext_vqa", "qt": "plane"},
        {"images": [IMAGE], "problem": 'Generate the "FINDINGS" section.', "answer": "Lungs clear.", "ds": None,
         "qt": None},
        {"images": [IMAGE], "problem": "What abnormalities?", "answer": "", "ds": "CXR-VQA", "qt": "abnormality"},
    ]
    bench, skips = load(tmp_path, rows, source="ds", question_type="qt")
    got = [(s.source, s.task, s.subtype, s.answer_kind, s.answer, s.subject) for s in bench.samples]
    assert got == [
        ("mimic-ext-vqa", "vqa", "anatomy", "multi_object", ("left lung",), "mimic:10000032"),
        ("mimic-ext-vqa", "vqa", "plane", "closed", "pa", "mimic:10000032"),
        ("mimic-cxr", "findings", "findings", "open_ended", "Lungs clear.", "mimic:10000032"),
        ("medical-cxr-vqa", "vqa", "abnormality", "multi_object", (), "mimic:10000032"),
    ]
    assert bench.report["inferred"]["task"] == {"prompt_wording": 1, "source_or_question_type": 3}
    assert bench.report["inferred"]["source"] == {"column": 3, "image_path": 1}
    assert skips.counts() == {}


@pytest.mark.parametrize("rows, columns, message", [
    ([], {}, "is empty"),
    ([{"images": [IMAGE], "problem": "Q?", "answer": "yes"}, '["not", "a", "row"]'], {}, "not an object"),
    ([{"images": [IMAGE], "problem": "Q?", "answer": "yes", "ds": "Kaggle"}], {"source": "ds"}, "not one of"),
    ([{"id": 1, "images": [IMAGE], "problem": "Q?", "answer": "yes"}] * 2, {"id": "id"}, "occurs twice"),
    ([{"images": [IMAGE], "problem": "Q?", "answer": "yes"}], {"task": "kind"}, "no column 'kind'"),
    ([{"images": ["a.png"], "problem": "Q?", "answer": "yes"}], {}, r"(?s)question_type.*source.*subject"),
])
def test_bad_copies_are_refused(tmp_path, rows, columns, message):
    # A line that is not a row refuses the copy (the reader is strict: a skipped item would change
    # the benchmark), as does an empty copy.
    with pytest.raises((XrayBenchSchemaError, SourceFileError), match=message):
        load(tmp_path, rows, **columns)
