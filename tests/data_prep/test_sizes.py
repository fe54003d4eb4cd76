"""Target vs achieved sizes: the plan, the manifest and the build's output, and the README's sizes
on the real releases."""

from pathlib import Path

from data_prep import release_sizes
from data_prep.mixtures import draw_planned, plan_mixture

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_pool_is_taken_whole_and_the_others_make_up_the_difference():
    weights = {"a": 0.4, "b": 0.4, "c": 0.2}
    plan = plan_mixture(100, weights, {"a": 1000, "b": 1000, "c": 5}, fill=True)
    assert {task: entry["target"] for task, entry in plan.items()} == {"a": 40, "b": 40, "c": 20}
    assert {task: entry["planned"] for task, entry in plan.items()} == {"a": 48, "b": 47, "c": 5}
    assert sum(entry["planned"] for entry in plan.values()) == 100
    # without fill the set is short; with every pool short, everything is taken
    assert sum(e["planned"] for e in plan_mixture(100, weights, {"a": 1000, "b": 1000, "c": 5}, False).values()) == 85
    assert sum(e["planned"] for e in plan_mixture(100, weights, {"a": 10, "b": 10, "c": 5}, True).values()) == 25
    # a second pool filling up mid-way passes its remainder on
    plan = plan_mixture(100, weights, {"a": 1000, "b": 45, "c": 5}, fill=True)
    assert [plan[t]["planned"] for t in "abc"] == [50, 45, 5]


def test_tied_tasks_keep_their_ratio_and_stay_out_of_the_fill():
    weights = {"yes": 0.1, "no": 0.1, "other": 0.8}
    plan = plan_mixture(100, weights, {"yes": 4, "no": 1000, "other": 1000}, fill=True, ties=(("yes", "no"),))
    assert plan["yes"]["planned"] == plan["no"]["planned"] == 4 and plan["other"]["planned"] == 92
    drawn, _ = draw_planned({"yes": list(range(4)), "no": list(range(50)), "other": list(range(500))}, 100, weights,
                            0, "t", True, (("yes", "no"),))
    assert sum(task == "yes" for task, _ in drawn) == sum(task == "no" for task, _ in drawn) == 4


def test_manifest_reports_target_vs_achieved_per_task_and_source(built):
    _, manifest = built
    stage1 = manifest["outputs"]["stage1/train.jsonl"]
    assert stage1["target"] == 300 and stage1["achieved"] == stage1["rows"] and stage1["fill_shortfall"] is True
    for task, entry in stage1["tasks"].items():
        assert entry["achieved"] == stage1["by_task"].get(task, 0) == sum(entry["by_source"].values())
        assert entry["achieved"] <= entry["available"] == sum(entry["available_by_source"].values())
    grounding = stage1["tasks"]["grounding_phrase_to_box"]
    assert grounding["achieved"] < grounding["target"] and set(grounding["available_by_source"]) == {"ms-cxr"}
    assert any("stage1/train.jsonl: grounding_phrase_to_box capped" in line and "ms-cxr" in line
               for line in manifest["warnings"])
    bench = manifest["outputs"]["test/xraybench.jsonl"]["shortfalls"]
    assert bench and all(any(f"{row['source']} {row['task']}/{row['subtype']} capped" in line
                             for line in manifest["warnings"]) for row in bench)
    # the capped share was made up by the other tasks: the set has its size when they can
    uncapped = [t for t, e in stage1["tasks"].items() if e["available"] > e["achieved"]]
    assert stage1["achieved"] == 300 or not uncapped


def test_readme_sizes_are_what_the_default_build_yields_on_the_real_releases():
    plans = release_sizes.default_plans()
    stage1 = plans["stage1/train.jsonl"]
    assert sum(entry["planned"] for entry in stage1.values()) == 351_500  # the paper's size, kept by fill
    grounding = stage1["grounding_phrase_to_box"]["planned"] + stage1["grounding_box_to_phrase"]["planned"]
    assert grounding / 351_500 < 0.01  # MS-CXR caps the 15% grounding share: declared in the README
    grpo = plans["grpo/train.parquet"]
    assert sum(e["planned"] for e in grpo.values()) == 6_600
    assert grpo["grounding"]["planned"] == grpo["grounding_absent"]["planned"]
    assert release_sizes.markdown(plans) in (ROOT / "README.md").read_text(encoding="utf-8")
