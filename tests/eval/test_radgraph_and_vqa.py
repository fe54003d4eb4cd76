import pytest

from eval import radgraph_f1, vqa
from eval.nlg import MetricUnavailable

REFERENCE = {"entities": {
    "1": {"tokens": "effusion", "label": "OBS-DP", "relations": [["located_at", "2"]]},
    "2": {"tokens": "left", "label": "ANAT-DP", "relations": []},
    "3": {"tokens": "pneumothorax", "label": "OBS-DA", "relations": []},
}}
HYPOTHESIS = {"entities": {
    "1": {"tokens": "Effusion", "label": "OBS-DP", "relations": []},
    "2": {"tokens": "left", "label": "ANAT-DP", "relations": []},
}}


def test_radgraph_levels_on_canned_annotations():
    assert radgraph_f1.entity_f1(HYPOTHESIS, REFERENCE, "simple") == pytest.approx(2 * (1.0 * 2 / 3) / (1 + 2 / 3))
    assert radgraph_f1.entity_f1(HYPOTHESIS, REFERENCE, "partial") == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert radgraph_f1.entity_f1(REFERENCE, REFERENCE, "complete") == 1.0
    assert radgraph_f1.entity_f1({"entities": {}}, REFERENCE, "simple") == 0.0


def test_radgraph_without_package_or_weights_is_reported(tmp_path):
    with pytest.raises(MetricUnavailable, match="radgraph"):
        radgraph_f1.radgraph_scores(["a"], ["b"], "radgraph-xl", "partial", tmp_path)


def test_vqa_scores_use_the_reward_normalisation():
    assert vqa.question_score({"prediction": "Yes.", "reference": "yes"}) == 1.0
    assert vqa.question_score({"prediction": "left lung, heart", "reference": ["left lung", "heart"]}) == 1.0
    assert vqa.question_score({"prediction": "heart", "reference": ["left lung", "heart"]}) == pytest.approx(2 / 3)
    assert vqa.question_score({"prediction": "none", "reference": [], "answer_kind": "multi_object"}) == 1.0


def test_per_object_recall():
    rows = [
        {"prediction": "heart, left lung", "reference": ["heart", "left lung"]},
        {"prediction": "heart", "reference": ["heart", "edema"]},
        {"prediction": "yes", "reference": "yes"},
    ]
    assert vqa.per_object_recall(rows) == {
        "edema": {"recall": 0.0, "n": 1}, "heart": {"recall": 1.0, "n": 2}, "left lung": {"recall": 1.0, "n": 1}}
