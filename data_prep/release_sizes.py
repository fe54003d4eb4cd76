"""What the default build yields on the real releases, worked out from their published sizes.

The releases are credentialed, so the build has not been run on them here; this module applies the
build's own planning (``data_prep.mixtures.plan_mixture``, with ``recipes/data/build.yaml``) to
the pool sizes the releases' documentation states. Where a size is not published, the pool is
taken as large enough and the table says how large it must be for the numbers to hold.

    python -m data_prep.release_sizes      # prints the Markdown table the README shows

Assumptions (each stated in the table's notes):
- MS-CXR's 1,162 phrase-box pairs fall into MIMIC's splits like MIMIC's images do (368,960 of
  377,110 images are in train), so 1,136 are training pairs; GRPO takes its share of them first.
- MIMIC-CXR training reports with a findings / an impression section and a frontal image: not in
  the release notes; the table gives the count the plan needs.
- VQA: MIMIC-Ext-MIMIC-CXR-VQA's train file alone holds 290,031 questions (Medical-CXR-VQA adds
  more; its split sizes are not published).
- Images whose report rules a finding out (CheXpert 0.0): tens of thousands per category in
  227,827 studies, far more than the grounding questions need.
Evaluation patients are dropped from training pools too; that removes at most a few percent.
"""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import OmegaConf

from data_prep.build import BALANCED
from data_prep.mixtures import plan_mixture

BUILD_CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "data" / "build.yaml"
UNBOUNDED = 10**9  # a pool whose size is not published and is assumed large enough

MS_CXR_PAIRS = 1_162
MIMIC_TRAIN_IMAGES, MIMIC_VALIDATE_IMAGES, MIMIC_IMAGES = 368_960, 2_991, 377_110
EXT_VQA_TRAIN = 290_031
EXT_VQA_VALID = 73_567


def ms_cxr_pairs(split_images: int) -> int:
    return math.floor(MS_CXR_PAIRS * split_images / MIMIC_IMAGES)


def default_plans(config_path: Path = BUILD_CONFIG) -> dict[str, dict[str, dict]]:
    """The default build's plan per output: {output: {task: {weight, target, available, planned}}}."""
    cfg = OmegaConf.load(config_path)
    grounding_train = ms_cxr_pairs(MIMIC_TRAIN_IMAGES)
    grpo_pools = {"findings": UNBOUNDED, "impression": UNBOUNDED, "vqa": EXT_VQA_TRAIN,
                  "grounding": grounding_train, "grounding_absent": UNBOUNDED}
    plans = {"grpo/train.parquet": plan_mixture(cfg.grpo.size, dict(cfg.grpo.weights), grpo_pools,
                                                cfg.grpo.fill_shortfall, BALANCED)}
    val_pools = dict(grpo_pools, vqa=EXT_VQA_VALID, grounding=ms_cxr_pairs(MIMIC_VALIDATE_IMAGES))
    plans["grpo/val.parquet"] = plan_mixture(cfg.grpo.val_size, dict(cfg.grpo.weights), val_pools,
                                             cfg.grpo.fill_shortfall, BALANCED)
    grpo = {task: entry["planned"] for task, entry in plans["grpo/train.parquet"].items()}
    after_grpo = {task: size if size == UNBOUNDED else size - grpo.get(task, 0) for task, size in grpo_pools.items()}
    plans["cold_start/candidates.parquet"] = plan_mixture(
        cfg.cold_start.candidates, dict(cfg.cold_start.weights), after_grpo, cfg.cold_start.fill_shortfall, BALANCED)
    stage1_pools = {"findings": UNBOUNDED, "impression": UNBOUNDED, "vqa": after_grpo["vqa"],
                    "grounding_phrase_to_box": after_grpo["grounding"], "grounding_box_to_phrase": after_grpo["grounding"]}
    plans["stage1/train.jsonl"] = plan_mixture(cfg.stage1.size, dict(cfg.stage1.weights), stage1_pools,
                                               cfg.stage1.fill_shortfall)
    return plans


NOTES = {
    "findings": "needs that many reports with a findings section in the split (MIMIC-CXR + Open-I)",
    "impression": "needs that many reports with an impression section in the split (MIMIC-CXR + Open-I)",
    "grounding": "MS-CXR: 1,136 training pairs (assumed), GRPO's drawn first",
    "grounding_absent": "as many as `grounding` (images whose report rules the finding out)",
    "grounding_phrase_to_box": "capped: MS-CXR's training pairs left after GRPO",
    "grounding_box_to_phrase": "capped: MS-CXR's training pairs left after GRPO",
}


def markdown(plans: dict[str, dict[str, dict]] | None = None) -> str:
    plans = plans or default_plans()
    lines = ["| set | task | weight | target | on the real releases | note |", "| --- | --- | --- | --- | --- | --- |"]
    for output in ("stage1/train.jsonl", "grpo/train.parquet", "grpo/val.parquet", "cold_start/candidates.parquet"):
        plan = plans[output]
        for task, entry in plan.items():
            if entry["weight"] <= 0:  # a task switched off (e.g. "locate" rows outside the demo)
                continue
            note = NOTES.get(task, "")
            if task.startswith("grounding") and output == "grpo/val.parquet":
                note = "MS-CXR: 9 validation pairs (assumed)" if task == "grounding" else NOTES[task]
            lines.append(f"| `{output}` | {task} | {entry['weight']:g} | {entry['target']:,} | {entry['planned']:,} | {note} |")
        total = sum(entry["planned"] for entry in plan.values())
        target = sum(entry["target"] for entry in plan.values())
        lines.append(f"| `{output}` | **all** | | **{target:,}** | **{total:,}** | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
