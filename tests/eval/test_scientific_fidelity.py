"""Numbers a user can put next to the paper: whole responses scored on their final answer, the
F1-RadGraph variant and the "Average over k of 11" labelled, Fig. 2f-g and 3c-d per dataset."""

import importlib
import json
import sys

import pytest

from eval import vqa
from eval.report import build_report, top_by_support
from eval.score import extract_final_answers
from eval.score import main as score_main

REPORTS = [
    {"id": "r1", "dataset": "mimic-cxr", "task": "findings", "prediction": "The lungs are clear.",
     "reference": "Lungs are clear. No effusion."},
    {"id": "r2", "dataset": "openi", "task": "findings", "prediction": "Small left effusion.",
     "reference": "Small left pleural effusion."},
]
WHOLE = "<think>The left costophrenic angle [10, 20, 40, 60] is blunted, so no.</think> The answer is: \\boxed{yes}"


def score(tmp_path, rows, *extra):
    folder = tmp_path / "run"
    folder.mkdir(exist_ok=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert score_main([str(folder / "predictions.jsonl"), "--out", str(folder), "--bootstrap", "0", "--no-meteor",
                       *extra]) == 0
    return json.loads((folder / "metrics.json").read_text()), folder


def test_whole_responses_are_scored_on_the_reward_s_final_answer(tmp_path):
    rows = [
        {"id": "q1", "dataset": "mimic-ext-vqa", "task": "vqa", "question_type": "presence", "prediction": WHOLE,
         "reference": "yes"},
        # the reasoning says "no": scoring the whole text (or the reasoning) would not give 1
        {"id": "q2", "dataset": "mimic-ext-vqa", "task": "vqa", "question_type": "presence",
         "prediction": "<think>yes, clearly yes</think> I am not sure.", "reference": "yes"},
        {"id": "q3", "dataset": "mimic-ext-vqa", "task": "vqa", "question_type": "presence", "prediction": "no",
         "reference": "no"},
    ]
    metrics, _ = score(tmp_path, rows)
    assert metrics["vqa"]["mimic-ext-vqa"]["presence"]["value"] == pytest.approx(2 / 3)  # q1 right, q2 no box: wrong
    extraction = metrics["answer_extraction"]
    assert extraction["rows_extracted"] == 2 and extraction["rows_without_boxed_answer"] == 1
    assert "rewards.response.last_boxed" in extraction["method"]


def test_extraction_keeps_plain_answers_and_the_original_text():
    rows = [{"prediction": WHOLE}, {"prediction": "Mild cardiomegaly."}, {"prediction": "<think>truncated reasoning"}]
    summary = extract_final_answers(rows)
    assert [row["prediction"] for row in rows] == ["yes", "Mild cardiomegaly.", ""]
    assert rows[0]["raw_output"] == WHOLE and "raw_output" not in rows[1]
    assert summary["rows_extracted"] == 2 and summary["rows_without_boxed_answer"] == 1


@pytest.fixture
def fake_radgraph(tmp_path, monkeypatch):
    """A stand-in ``radgraph`` package that records what F1RadGraph was built with (weights are not here)."""
    package = tmp_path / "fake_packages" / "radgraph"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "CALLS = []\n"
        "class F1RadGraph:\n"
        "    def __init__(self, reward_level, model_type=None, **kwargs):\n"
        "        CALLS.append(dict(reward_level=reward_level, model_type=model_type, **kwargs))\n"
        "    def __call__(self, refs, hyps):\n"
        "        scores = [1.0 if h == r else 0.25 for h, r in zip(hyps, refs)]\n"
        "        return sum(scores) / len(scores), scores, [], []\n")
    monkeypatch.syspath_prepend(str(package.parent))
    importlib.invalidate_caches()
    cache = tmp_path / "radgraph-cache"
    for model in ("radgraph", "radgraph-xl"):
        (cache / model).mkdir(parents=True)
        (cache / model / "config.json").write_text("{}")
        (cache / model / "weights.th").write_bytes(b"")
    yield cache
    sys.modules.pop("radgraph", None)


def test_radgraph_defaults_to_v1_and_every_table_names_the_variant(tmp_path, fake_radgraph):
    metrics, folder = score(tmp_path, REPORTS, "--radgraph-cache", str(fake_radgraph))
    import radgraph

    assert radgraph.CALLS[-1]["model_type"] == "radgraph" and radgraph.CALLS[-1]["reward_level"] == "partial"
    assert radgraph.CALLS[-1]["model_cache_dir"] == str(fake_radgraph)
    assert metrics["radgraph"] == {"model_type": "radgraph", "level": "partial", "label": "RadGraph v1, partial"}
    assert metrics["reports"]["mimic-cxr/findings"]["F1-RadGraph"]["value"] == 0.25
    (tmp_path / "xl").mkdir()
    _, xl = score(tmp_path / "xl", REPORTS, "--radgraph-cache", str(fake_radgraph), "--radgraph-model", "radgraph-xl")
    assert radgraph.CALLS[-1]["model_type"] == "radgraph-xl"

    build_report({"ours": folder}, tmp_path / "report")
    table = (tmp_path / "report" / "report_generation.md").read_text()
    assert "F1-RadGraph (RadGraph v1, partial)" in table.splitlines()[0]
    assert "F1-RadGraph (RadGraph v1, partial)" in (tmp_path / "report" / "report_generation.csv").read_text()
    build_report({"ours": folder, "xl": xl}, tmp_path / "mixed")
    header = (tmp_path / "mixed" / "report_generation.md").read_text().splitlines()[0]
    assert "ours: RadGraph v1, partial; xl: RadGraph-XL, partial" in header
    assert "not comparable" in (tmp_path / "mixed" / "README.md").read_text()


def test_average_says_over_how_many_of_the_11_metrics(tmp_path):
    metrics, folder = score(tmp_path, REPORTS)  # no METEOR, CheXbert or RadGraph: 5 of 11
    average = metrics["reports"]["openi/findings"]["Average"]
    assert (average["over"], average["of"], average["label"]) == (5, 11, "Average over 5 of 11")
    assert set(average["missing"]) == {"METEOR", "F1-RadGraph", "Macro-14", "Micro-14", "Macro-5", "Micro-5"}
    assert metrics["reports_weighted_average_over"]["label"] == "Average over 5 of 11"
    written = build_report({"ours": folder}, tmp_path / "report")
    header = (tmp_path / "report" / "report_generation.md").read_text().splitlines()[0]
    assert "Average over 5 of 11" in header and "report_weighted_average.png" in written
    assert "Average over 5 of 11 (missing: METEOR" in (tmp_path / "report" / "README.md").read_text()


def synthetic_metrics(per_condition: dict[str, dict], per_object: dict[str, dict]) -> dict:
    """A metrics.json as eval.score writes it, with only what the figures read."""
    reports = {split: {"n": 10, "BLEU-1": {"value": 0.3}, "Average": {"value": 0.3, "over": 1, "of": 11,
                                                                       "missing": [], "label": "Average over 1 of 11"},
                       "per_condition_F1": f1, "per_condition_support": {c: i for i, c in enumerate(f1)}}
               for split, f1 in per_condition.items()}
    return {"reports": reports, "reports_weighted_average": {"BLEU-1": 0.3, "Average": 0.3},
            "vqa": {dataset: {"n": 4, "overall": {"value": 0.5}, "per_object_F1": objects}
                    for dataset, objects in per_object.items()},
            "implementations": {}, "bootstrap": {}, "not_computed": {}}


def test_figures_are_per_dataset(tmp_path):
    conditions = [f"condition {i}" for i in range(12)]
    per_condition = {"mimic-cxr/findings": {c: 0.1 for c in conditions}, "openi/findings": {c: 0.9 for c in conditions},
                     "mimic-cxr/impression": {c: 0.5 for c in conditions}}
    per_object = {"mimic-ext-vqa": {"heart": {"F1": 0.5, "n": 3}}, "medical-cxr-vqa": {"left lung": {"F1": 1.0, "n": 1}}}
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps(synthetic_metrics(per_condition, per_object)))
    written = build_report({"ours": folder}, tmp_path / "report")
    assert {"chexbert_per_condition_mimic-cxr.png", "chexbert_per_condition_openi.png",
            "vqa_per_object_mimic-ext-vqa.png", "vqa_per_object_medical-cxr-vqa.png"} <= set(written)
    assert not any("impression" in name for name in written)  # Fig. 2f-g are the findings splits


def test_top_ten_by_support():
    runs = {"a": {"s": {f"c{i}": i for i in range(12)}}, "b": {"s": {"c0": 50}}}
    assert top_by_support(runs, lambda m: m["s"]) == ["c0", "c11", "c10", "c9", "c8", "c7", "c6", "c5", "c4", "c3"]


def test_per_object_f1_counts_false_positives():
    rows = [
        {"prediction": "heart, left lung", "reference": ["heart"]},
        {"prediction": "heart", "reference": ["heart", "left lung"]},
        {"prediction": "spine", "reference": ["heart"]},
        {"prediction": "yes", "reference": "yes"},
    ]
    scores = vqa.per_object_f1(rows)
    assert scores["heart"] == {"F1": pytest.approx(2 * 2 / (2 * 2 + 0 + 1)), "recall": 2 / 3, "precision": 1.0, "n": 3}
    assert scores["left lung"]["F1"] == pytest.approx(0.0) and scores["left lung"]["n"] == 1
    assert "spine" not in scores  # predicted, never asked about


def test_chexbert_figures_per_findings_dataset_from_scored_runs(tmp_path, monkeypatch):
    import numpy as np

    from eval import chexbert

    def label_reports(texts, checkpoint, bert):  # stands in for the CheXbert model: effusion when named
        labels = np.zeros((len(texts), len(chexbert.CONDITIONS)), dtype=np.int64)
        labels[:, chexbert.CONDITIONS.index("Pleural Effusion")] = [1 if "effusion" in t.lower() else 0 for t in texts]
        return labels

    monkeypatch.setattr(chexbert, "label_reports", label_reports)
    metrics, folder = score(tmp_path, REPORTS, "--chexbert-checkpoint", str(tmp_path / "chexbert.pth"))
    for split in ("mimic-cxr/findings", "openi/findings"):
        assert metrics["reports"][split]["per_condition_support"]["Pleural Effusion"] == 1
        assert metrics["reports"][split]["Average"]["label"] == "Average over 9 of 11"
    assert metrics["reports"]["openi/findings"]["per_condition_F1"]["Pleural Effusion"] == 1.0
    assert metrics["reports"]["mimic-cxr/findings"]["per_condition_F1"]["Pleural Effusion"] == 0.0
    written = build_report({"ours": folder}, tmp_path / "report")
    assert {"chexbert_per_condition_mimic-cxr.png", "chexbert_per_condition_openi.png"} <= set(written)
