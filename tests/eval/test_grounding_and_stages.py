"""Phrase grounding scored by IoU, and the side-by-side comparison of a run's stages."""

import json

import numpy as np
import pytest

from eval import grounding
from eval.score import main as score_main
from eval.stages import compare, label_f1, read_experiment_log, world_labels
from rewards.ground_truth import encode_ground_truth
from rewards.frame import Frame

FRAME = Frame(112, 112)


def grounding_row(item_id, prediction_boxes, reasoning_boxes=(), truth="[10, 10, 50, 50]"):
    return {"id": item_id, "dataset": "ms-cxr", "task": "grounding", "reference": truth,
            "prediction": ", ".join(str(list(b)) for b in prediction_boxes),
            "boxes": [list(b) for b in reasoning_boxes]}


def test_best_iou_takes_the_best_box_of_reasoning_and_answer():
    exact = grounding_row("a", [(60, 60, 100, 100)], reasoning_boxes=[(10, 10, 50, 50)])
    assert grounding.best_iou(exact) == pytest.approx(1.0)
    half = grounding_row("b", [(10, 10, 50, 30)])  # half of the true box: IoU 0.5
    assert grounding.best_iou(half) == pytest.approx(0.5)
    assert grounding.best_iou(grounding_row("c", [])) == 0.0
    two_truths = grounding_row("d", [(60, 60, 100, 100)], truth="[10, 10, 50, 50], [60, 60, 100, 100]")
    assert grounding.best_iou(two_truths) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="holds no box"):
        grounding.best_iou(grounding_row("e", [], truth="left lung"))


def test_answer_iou_reads_the_final_answer_alone():
    """The reasoning's boxes lift the best-box IoU but not the answer's: a right box examined on the
    way and a wrong (or malformed) box answered scores 1 and 0."""
    right_reasoning = grounding_row("a", [(60, 60, 100, 100)], reasoning_boxes=[(10, 10, 50, 50)])
    assert grounding.best_iou(right_reasoning) == pytest.approx(1.0)
    assert grounding.answer_iou(right_reasoning) == 0.0
    assert grounding.answer_iou(grounding_row("b", [(10, 10, 50, 30)])) == pytest.approx(0.5)
    assert grounding.answer_iou(grounding_row("c", [(10, 50, 50, 10)])) == 0.0  # y2 < y1: no box
    with pytest.raises(ValueError, match="holds no box"):
        grounding.answer_iou(grounding_row("d", [(10, 10, 50, 50)], truth="left lung"))


def test_region_iou_is_the_best_anatomical_region_whatever_the_prediction():
    from data_prep.cold_start import anatomy_regions

    left_lung = anatomy_regions(112, 112)["left lung"]
    truth = ", ".join(str(list(box)) for box in [left_lung])
    assert grounding.region_iou(grounding_row("a", [], truth=truth), FRAME) == pytest.approx(1.0)
    assert grounding.region_iou(grounding_row("b", [(10, 10, 50, 50)], truth=truth), FRAME) == pytest.approx(1.0)
    small = grounding_row("c", [], truth="[100, 2, 110, 12]")  # a corner no region covers
    assert grounding.region_iou(small, FRAME) == 0.0


def test_score_reports_grounding_iou_separately_from_vqa(tmp_path):
    rows = [grounding_row("a", [(10, 10, 50, 50)]), grounding_row("b", [(10, 10, 50, 30)]),
            grounding_row("c", []),
            {"id": "q", "dataset": "medical-cxr-vqa", "task": "vqa", "prediction": "yes", "reference": "yes"}]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert score_main([str(path), "--out", str(tmp_path), "--bootstrap", "20", "--no-meteor"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["grounding"]["n"] == 3 and "ms-cxr" not in metrics["vqa"]
    assert metrics["grounding"]["mean_IoU"]["value"] == pytest.approx(0.5)
    assert metrics["grounding"]["IoU@0.5"]["value"] == pytest.approx(2 / 3)
    assert metrics["grounding"]["with_box"]["value"] == pytest.approx(2 / 3)
    assert metrics["grounding"]["answer_mean_IoU"]["value"] == pytest.approx(0.5)
    assert metrics["grounding"]["answer_median_IoU"]["value"] == pytest.approx(0.5)
    assert metrics["vqa_overall"]["n"] == 1 and metrics["rows"] == 4


def test_world_labels_read_the_generated_reports():
    from data_prep.fixtures.world import NEGATIVE_SENTENCES, Finding, finding_text
    import random

    for label in ("Pleural Effusion", "Pneumothorax", "Atelectasis", "Cardiomegaly", "Edema", "Consolidation",
                  "Pneumonia", "Lung Opacity", "Support Devices"):
        for uncertain in (False, True):
            sentence, impression = finding_text(random.Random(0), Finding(label, "left", "mild", uncertain))
            assert world_labels(sentence) == {label}, sentence
            assert world_labels(impression) == {label}, impression
    for sentence, _, _ in NEGATIVE_SENTENCES:
        assert world_labels(sentence) == set(), sentence
    assert label_f1([set()], [{"Edema"}]) == 0.0
    assert label_f1([{"Edema", "Pneumonia"}], [{"Edema"}]) == pytest.approx(2 / 3)


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_compare_stages_on_the_same_items(tmp_path):
    truth = lambda answer, kind="closed", boxes=None: encode_ground_truth(kind, answer, FRAME, boxes)  # noqa: E731
    items = [{"id": f"q{i}", "task": "vqa", "answer": "yes" if i % 2 else "no", "answer_kind": "closed",
              "ground_truth": truth("yes" if i % 2 else "no"), "frame": {"width": 112, "height": 112}}
             for i in range(20)]
    items.append({"id": "r", "task": "findings", "answer": "Small left pleural effusion is new. The lungs are clear.",
                  "answer_kind": "open_ended", "ground_truth": truth("Small left pleural effusion is new."),
                  "frame": {"width": 112, "height": 112}})
    items.append({"id": "g", "task": "grounding", "answer": "[10, 10, 50, 50]", "answer_kind": "grounding",
                  "ground_truth": truth("[10, 10, 50, 50]", "open_ended", [(10, 10, 50, 50)]),
                  "frame": {"width": 112, "height": 112}})
    for item in items:  # what every evaluation item holds (the items reader checks it)
        item.update(images=[f"images/{item['id']}.jpg"], prompt=f"<image>Question about {item['id']}?")
    write_jsonl(tmp_path / "test" / "items.jsonl", items)

    def rows(good: bool):
        out = []
        for item in items:
            answer = item["answer"] if good else ("yes" if item["task"] == "vqa" else "No acute process.")
            raw = f"<think>I look at [10, 10, 50, 50].</think> The answer is: \\boxed{{{answer}}}" if good else answer
            out.append({"id": item["id"], "dataset": "x", "task": item["task"], "reference": item["answer"],
                        "prediction": answer, "raw_output": raw,
                        "boxes": [[10, 10, 50, 50]] if good else []})
        return out

    write_jsonl(tmp_path / "base" / "predictions.jsonl", rows(False))
    write_jsonl(tmp_path / "stage2" / "predictions.jsonl", rows(True))
    log = tmp_path / "experiment_log.jsonl"
    log.write_text('{"step": 1, "reward": {"overall": 0.1, "answer": 0.0}, "reward_groups": {"zero_spread_share": 0.5}}\n'
                   '{"step": 2, "reward": {"overall": 0.4, "answer": 0.3}, "reward_groups": {"zero_spread_share": 0.25}}\n')
    summary = compare({"base": tmp_path / "base", "stage2": tmp_path / "stage2"}, [tmp_path / "test" / "items.jsonl"],
                      tmp_path / "report", {"preset": "paper"}, rounds=200, experiment_log=log)
    base, stage2 = summary["stages"]["base"], summary["stages"]["stage2"]
    assert base["yes_no_accuracy"] == 0.5 and base["yes_no_majority"] == 0.5 and base["yes_no_n"] == 20
    assert stage2["yes_no_accuracy"] == 1.0 and stage2["report_label_f1"] == 1.0
    assert base["report_label_f1"] == 0.0 == base["normal_report_label_f1"]
    assert stage2["reasoning_with_box"] == 1.0 and base["reasoning_with_box"] == 0.0
    assert stage2["grounding_median_IoU"] == 1.0 and base["grounding_mean_IoU"] == 0.0
    assert stage2["grounding_answer_median_IoU"] == 1.0 and base["grounding_answer_median_IoU"] == 0.0
    assert 0 < base["grounding_region_median_IoU"] == stage2["grounding_region_median_IoU"] < 1
    assert stage2["reward_mean"] > base["reward_mean"] and stage2["reward_gain_ci95"][0] > 0
    assert summary["grpo_training"]["zero_spread_share_mean"] == pytest.approx(0.375)
    assert {"stages.md", "stages.csv", "stages.png", "reward_curve.png"} <= set(summary["files"])
    assert "| stage2 |" in (tmp_path / "report" / "stages.md").read_text()

    del items[-1]["frame"]  # one grounding item without its frame: no floor at all, not one over a subset
    write_jsonl(tmp_path / "test" / "items.jsonl", items)
    without = compare({"stage2": tmp_path / "stage2"}, [tmp_path / "test" / "items.jsonl"], tmp_path / "r1", {})
    assert "grounding_region_median_IoU" not in without["stages"]["stage2"]

    write_jsonl(tmp_path / "stage3" / "predictions.jsonl", rows(True)[:-1])
    with pytest.raises(ValueError, match="other items"):
        compare({"base": tmp_path / "base", "stage3": tmp_path / "stage3"}, [tmp_path / "test" / "items.jsonl"],
                tmp_path / "r2", {})


def test_experiment_log_reader_flattens_easyr1_records(tmp_path):
    log = tmp_path / "experiment_log.jsonl"
    log.write_text('{"step": 3, "reward": {"overall": 1.0, "format": 0.5}, "actor": {"lr": 0.1}}\n')
    assert read_experiment_log(log) == [{"step": 3, "reward/overall": 1.0, "reward/format": 0.5, "actor/lr": 0.1}]
    log.write_text('{"step": 3}\nnot json\n')
    with pytest.raises(ValueError, match=":2: not a JSON record"):
        read_experiment_log(log)
    assert np.isfinite(1.0)
