import pytest

from data_prep.mixtures import draw, draw_mixture, integer_targets


def test_integer_targets_sum_exactly():
    targets = integer_targets(100, {"a": 1, "b": 1, "c": 1})
    assert sum(targets.values()) == 100 and sorted(targets.values()) == [33, 33, 34]
    assert integer_targets(10, {"a": 0, "b": 2}) == {"a": 0, "b": 10}
    with pytest.raises(ValueError):
        integer_targets(10, {"a": -1})


def test_draw_is_deterministic_and_order_preserving():
    pool = list(range(100))
    first = draw(pool, 10, seed=0, purpose="x")
    assert first == draw(pool, 10, seed=0, purpose="x") == sorted(first)
    assert first != draw(pool, 10, seed=1, purpose="x")
    assert draw(pool, 500, seed=0, purpose="x") == pool


def test_mixture_reports_shortfalls_and_rejects_unknown_tasks():
    pools = {"findings": list(range(5)), "vqa": list(range(100))}
    drawn, short = draw_mixture(pools, 20, {"findings": 1, "vqa": 1}, seed=0, purpose="t")
    assert sum(task == "findings" for task, _ in drawn) == 5 and sum(task == "vqa" for task, _ in drawn) == 10
    assert short == {"findings": {"target": 10, "drawn": 5}}
    with pytest.raises(ValueError, match="unknown tasks"):
        draw_mixture(pools, 10, {"grounding": 1}, seed=0, purpose="t")


def test_one_task_weight_does_not_reshuffle_another():
    pools = {"a": list(range(50)), "b": list(range(50))}
    first, _ = draw_mixture(pools, 20, {"a": 1, "b": 1}, 0, "t")
    second, _ = draw_mixture(pools, 30, {"a": 1, "b": 2}, 0, "t")
    assert [x for t, x in first if t == "a"] == [x for t, x in second if t == "a"]
