import pytest

from eval import radgraph_f1, vqa
from eval.nlg import MetricUnavailable


def test_radgraph_without_package_or_weights_is_reported(tmp_path):
    with pytest.raises(MetricUnavailable, match="radgraph"):
        radgraph_f1.radgraph_scores(["a"], ["b"], "radgraph", "partial", tmp_path)


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
