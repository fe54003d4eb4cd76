"""`make demo` is a miniature reproduction with known truth: on two seeds, every stage measurably
improves its own target on held-out patients of the generated world (issue 13's thresholds, never
lowered to pass). Each seed runs ``make demo`` once, the user's own command with everything it does
after training (module fixture, ~7-15 minutes on 2 cores, by machine), and every assertion reads
what the real evaluation code wrote: ``eval/<stage>/predictions.jsonl``, ``eval/report/stages.json``
and the viewer's PNGs.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
STAGES = ("base", "stage1", "stage2", "stage3")


@pytest.fixture(scope="module", params=[0, 1], ids=["seed0", "seed1"])
def demo(request, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp(f"demo-seed{request.param}")
    # `-o setup`: the suite's interpreter (PY) already has the environment; make must not build one.
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", "setup", "demo", f"PY={sys.executable}", f"DEMO_DIR={run_dir}",
         f"SEED={request.param}"],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
        env={**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = json.loads((run_dir / "eval" / "report" / "stages.json").read_text())
    return run_dir, summary["stages"], summary


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_stage_answers_the_same_held_out_items(demo):
    run_dir, stages, summary = demo
    items = [item for path in sorted((run_dir / "data" / "test").glob("*.jsonl")) for item in read_jsonl(path)]
    assert all("frame" in item and item.get("ground_truth") for item in items)
    ids = sorted(item["id"] for item in items)
    for stage in STAGES:
        assert sorted(r["id"] for r in read_jsonl(run_dir / "eval" / stage / "predictions.jsonl")) == ids
    assert stages["stage1"]["yes_no_n"] >= 20 and stages["stage2"]["grounding_n"] >= 5
    assert stages["stage3"]["reward_n"] >= 20
    truth = json.loads((run_dir / "releases" / "fixture_truth.json").read_text())  # held-out: test patients only
    subjects = {re.search(r"/p1\d/p(1\d{7})/", item["images"][0]).group(1) for item in items
                if re.search(r"/p1\d/p(1\d{7})/", item["images"][0])}
    assert subjects and subjects <= set(truth["test_subjects"])


def test_stage1_learns_to_see_and_to_report(demo):
    _, stages, _ = demo
    stage1, base = stages["stage1"], stages["base"]
    assert stage1["yes_no_accuracy"] >= stage1["yes_no_majority"] + 0.25, stage1
    assert stage1["report_label_f1"] >= stage1["normal_report_label_f1"] + 0.2, stage1
    assert stage1["yes_no_accuracy"] > base["yes_no_accuracy"]


def test_stage2_reasons_with_boxes_on_the_findings(demo):
    _, stages, _ = demo
    stage2, stage1 = stages["stage2"], stages["stage1"]
    assert stage2["grounding_median_IoU"] >= 0.3, stage2  # the thresholds
    assert stage2["reasoning_with_box"] >= 0.9 and stage1["reasoning_with_box"] == 0.0, stage2
    # Beyond the issue: the best anatomical region, image-blind, already reaches a median IoU of ~0.38,
    # over the 0.3 above; the answer's own box must clearly beat it (measured: 0.75-0.81 against 0.38-0.39).
    assert stage2["grounding_answer_median_IoU"] >= stage2["grounding_region_median_IoU"] + 0.2, stage2


def test_stage2_learns_whole_traces_and_is_evaluated_with_room_for_them(demo):
    """No trace is cut at training (the stage would refuse: training.sft_lengths) and evaluation lets
    the reasoning models write the longest trace they learnt: a response cut before its answer scores
    no format. At cutoff_len 512, 190 of seed 0's 2,000 traces had lost their answer."""
    from transformers import AutoTokenizer

    run_dir, _, _ = demo
    stage2 = yaml.safe_load((run_dir / "configs" / "stage2.yaml").read_text())
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tiny-qwen2.5-vl")
    traces = read_jsonl(run_dir / "data" / "cold_start" / "train.jsonl")
    longest = max(len(tokenizer(row["messages"][-1]["content"])["input_ids"]) + 1 for row in traces)  # + <|im_end|>
    for stage in ("stage2", "stage3"):
        sampling = read_jsonl(run_dir / "eval" / stage / "predictions.jsonl")[0]["provenance"]["sampling"]
        assert sampling["max_new_tokens"] >= longest, (stage, sampling, longest)
    assert stage2["cutoff_len"] > longest


def test_stage3_trains_with_real_advantages_and_logs_every_component(demo):
    run_dir, stages, summary = demo
    assert summary["grpo_training"]["zero_spread_share_mean"] < 0.5, summary["grpo_training"]
    assert summary["grpo_training"]["steps"] >= 30
    assert {"reward/overall", "reward/answer", "reward/format", "reward/coordinate"} <= set(
        summary["grpo_training"]["reward_last"])
    assert (run_dir / "eval" / "report" / "reward_curve.png").exists()
    assert (run_dir / "eval" / "report" / "stages.png").exists()
    assert len(stages["stage3"]["reward_gain_ci95"]) == 2


def test_the_viewer_draws_every_stage_s_boxes_and_the_truth(demo):
    """`make demo`'s viewer PNGs (stage 2 beside stage 3 on grounding items) show the reasoning's
    boxes in colour and the true box in white (an X-ray is grey, so colour can only be a box)."""
    from eval.viewer.export import COLOURS

    run_dir, _, _ = demo
    sheets = sorted((run_dir / "eval" / "viewer").glob("*_stage2_vs_stage3.png"))
    assert len(sheets) == 4, sheets
    for path in sheets:
        with Image.open(path) as sheet:
            half = sheet.width // 2
            for panel in (sheet.crop((0, 0, half - 5, sheet.height)), sheet.crop((half + 5, 0, sheet.width, sheet.height))):
                colours = {colour for _, colour in panel.getcolors(maxcolors=1 << 20)}
                assert colours & set(COLOURS), f"{path.name}: no reasoning box drawn"
                assert (255, 255, 255) in colours, f"{path.name}: no true box drawn"


# Measured (README, "The demo"; 442 / 468 held-out items on seeds 0 / 1): the held-out gain +0.045
# ([+0.017, +0.078]) and +0.049 ([+0.026, +0.072]); development seeds 2 and 3 +0.065 and +0.134. Until
# the cold start leant to VQA traces and GRPO's yes/no set was balanced it was +0.003 and +0.005,
# inside the noise, and this test was an expected failure (docs/demo_grpo.md, "December 4, later").
def test_stage3_raises_the_held_out_reward(demo):
    _, stages, _ = demo
    stage3 = stages["stage3"]
    assert stage3["reward_mean"] > stages["stage2"]["reward_mean"]
    assert stage3["reward_gain_ci95"][0] > 0, stage3


# A guard that fails with a message that names the cause: GRPO keeps the reasoning format and does not
# lose more than 0.05 of the held-out reward (measured: format 0.975 / 0.962 on seeds 0 / 1; lr 3e-4
# lost 0.09 and broke the format to 0.91).
def test_stage3_keeps_the_format_and_the_held_out_reward(demo):
    _, stages, _ = demo
    stage3, stage2 = stages["stage3"], stages["stage2"]
    assert stage3["reasoning_with_box"] >= 0.95, stage3
    assert stage3["reward_mean"] >= stage2["reward_mean"] - 0.05, (stage2["reward_mean"], stage3["reward_mean"])
