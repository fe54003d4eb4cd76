import pytest

from data_prep.mixtures import draw, draw_mixture, equalize, integer_targets


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


def test_equalize_draws_each_class_down_to_the_rarest_and_keeps_the_unlabelled():
    pool = [("yes", i) for i in range(4)] + [("no", i) for i in range(10)] + [(None, i) for i in range(3)]
    kept, set_aside = equalize(pool, lambda item: item[0], ("yes", "no"), seed=0, purpose="t")
    assert set_aside == {"yes": 0, "no": 6}
    assert sum(label == "yes" for label, _ in kept) == sum(label == "no" for label, _ in kept) == 4
    assert [item for item in kept if item[0] != "no"] == [item for item in pool if item[0] != "no"]
    assert kept == [item for item in pool if item in kept]  # pool order
    assert kept == equalize(pool, lambda item: item[0], ("yes", "no"), seed=0, purpose="t")[0]
    assert kept != equalize(pool, lambda item: item[0], ("yes", "no"), seed=1, purpose="t")[0]


def test_equalize_with_a_class_missing_sets_the_others_aside_and_says_how_many():
    pool = [("no", i) for i in range(5)] + [(None, 0)]
    kept, set_aside = equalize(pool, lambda item: item[0], ("yes", "no"), seed=0, purpose="t")
    assert kept == [(None, 0)] and set_aside == {"yes": 0, "no": 5}
