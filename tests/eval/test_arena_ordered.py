"""Report Arena as the paper's Fig. 2i and 2j show it: ordered-pair win rates and scores in [0, 1]."""

import csv
import json

import numpy as np
import pytest

from eval.arena.bradley_terry import normalized
from eval.arena.run import main as arena_main
from eval.arena.run import ordered_win_rates
from tests.eval.test_arena import write_models


def test_ordered_win_rates_keep_the_presentation_order():
    names = ["r1", "llava-rad"]
    log = ([{"A": "r1", "B": "llava-rad", "verdict": v} for v in ("A", "A", "B", "tie", "unparseable")]
           + [{"A": "llava-rad", "B": "r1", "verdict": v} for v in ("A", "B", "B", "B")])
    rates, counts = ordered_win_rates(log, names)
    assert rates[0, 1] == pytest.approx(2.5 / 4) and rates[1, 0] == pytest.approx(1 / 4)  # position bias: sum != 1
    assert counts.tolist() == [[0, 4], [4, 0]] and np.isnan(rates[0, 0])


def test_normalized_scores_lie_in_0_1():
    assert normalized(np.array([2.0, -1.0, -1.0])).tolist() == [1.0, 0.25, 0.25]
    assert normalized(np.array([-2.0, 1.0, 1.0])).tolist() == [0.0, 0.75, 0.75]
    assert normalized(np.zeros(3)).tolist() == [0.5, 0.5, 0.5]


def test_arena_writes_ordered_matrix_heatmap_and_normalized_ranking(tmp_path):
    paths = write_models(tmp_path)
    out = tmp_path / "out"
    assert arena_main([f"--model={n}={p}" for n, p in paths.items()] + [
        "--judge", "reference", "--budget", "60", "--out", str(out), "--bootstrap", "0"]) == 0
    with (out / "win_rates_ordered.csv").open() as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["", "strong", "middle", "weak"] and [row[0] for row in table[1:]] == ["strong", "middle", "weak"]
    assert table[1][1] == ""  # diagonal
    assert float(table[1][3]) == 1.0 and float(table[3][1]) == 0.0  # strong first vs weak; weak first vs strong
    assert (out / "win_rates_ordered.png").stat().st_size > 0 and (out / "win_rates_ordered.json").exists()
    ranking = json.loads((out / "ranking.json").read_text())
    values = [row["score_normalized"] for row in ranking]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert max(values) == 1.0 or min(values) == 0.0  # the model farthest from the mean sits at an end
    with (out / "ranking.csv").open() as handle:
        assert "score_normalized" in next(csv.reader(handle))
    summary = json.loads((out / "summary.json").read_text())
    assert "max|s|" in summary["score_normalized"]
    assert sum(map(sum, summary["ordered_judgments"])) == summary["judgments"] - summary["verdicts"]["unparseable"]
