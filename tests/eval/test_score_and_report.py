import json

from eval.report import build_report
from eval.score import main as score_main

ROWS = [
    {"id": "r1", "dataset": "mimic-cxr", "task": "findings", "prediction": "The lungs are clear.",
     "reference": "Lungs are clear. No effusion."},
    {"id": "r2", "dataset": "mimic-cxr", "task": "findings", "prediction": "Small left effusion.",
     "reference": "Small left pleural effusion."},
    {"id": "r3", "dataset": "openi", "task": "impression", "prediction": "Normal chest.", "reference": "Normal chest."},
    {"id": "q1", "dataset": "mimic-ext-vqa", "task": "vqa", "question_type": "presence", "prediction": "yes", "reference": "yes"},
    {"id": "q2", "dataset": "mimic-ext-vqa", "task": "vqa", "question_type": "anatomy", "prediction": "heart",
     "reference": ["heart", "left lung"], "answer_kind": "multi_object"},
    {"id": "q3", "dataset": "medical-cxr-vqa", "task": "vqa", "question_type": "view", "prediction": "no", "reference": "yes"},
]


def test_score_then_report(tmp_path, capsys):
    predictions = tmp_path / "run" / "predictions.jsonl"
    predictions.parent.mkdir()
    predictions.write_text("".join(json.dumps(row) + "\n" for row in ROWS) + '{"id": "torn"')
    assert score_main([str(predictions), "--out", str(tmp_path / "run"), "--bootstrap", "50", "--no-meteor"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["reports"]["openi/impression"]["BLEU-1"]["value"] > 0.99
    assert metrics["reports"]["mimic-cxr/findings"]["n"] == 2 and "ci95" in metrics["reports"]["mimic-cxr/findings"]["BLEU-1"]
    assert set(metrics["not_computed"]) == {"Macro-14", "Micro-14", "Macro-5", "Micro-5", "F1-RadGraph"}
    assert "METEOR" not in metrics["reports"]["openi/impression"]
    assert metrics["vqa"]["mimic-ext-vqa"]["presence"]["value"] == 1.0
    assert metrics["vqa_overall"]["overall"]["value"] == (1 + 2 / 3 + 0) / 3
    weighted = metrics["reports_weighted_average"]["BLEU-1"]
    splits = metrics["reports"]
    assert weighted == (2 * splits["mimic-cxr/findings"]["BLEU-1"]["value"] + splits["openi/impression"]["BLEU-1"]["value"]) / 3
    assert "not computed: F1-RadGraph" in capsys.readouterr().err

    written = build_report({"ours": tmp_path / "run"}, tmp_path / "report")
    assert {"report_generation.md", "vqa.csv", "lengths.png", "vqa_by_type.png", "README.md"} <= set(written)
    table = (tmp_path / "report" / "report_generation.md").read_text()
    assert "| weighted average | ours |" in table and "n/c" in table
