"""Compare the stages of one run side by side, like the paper's ablations: base, stage 1, 2, 3.

    python -m eval.stages --run base=DIR --run stage1=DIR ... --items ITEMS.jsonl [...] --out DIR
        [--reward-kwargs '{"preset": "paper"}'] [--experiment-log <stage3>/experiment_log.jsonl]

Each ``--run`` folder holds the ``predictions.jsonl`` (``eval.infer``) of one stage's model over
the same items (``--items``: the evaluation files, each item with its ``ground_truth``, the
reward's JSON, and its ``frame``). What each stage should move, measured on every stage:

- closed yes/no accuracy, against the majority-class rate of the same items (stage 1);
- report label F1: the findings the generated reports name against those the references name,
  read with the generated world's vocabulary (``world_labels``), against a fixed normal report
  (stage 1);
- the share of responses in the reasoning format with at least one box inside the frame, and
  phrase grounding's best-box IoU (``eval.grounding``: mean, median, IoU@0.5) (stage 2), with the
  median IoU of the final answer's box against the best coarse anatomical region's, an image-blind
  floor that the reasoning's region boxes alone come near;
- the GRPO reward (``rewards.deepmedix``, the same keyword arguments as training) on every item,
  with a paired bootstrap 95% interval of each stage's gain over the previous one (stage 3).

Writes ``stages.json``, ``stages.md`` / ``.csv`` (stages x metrics), ``stages.png`` (the table as
bars) and, from an ``experiment_log.jsonl`` (EasyR1's file logger, or the TRL backend's in the same
format), ``reward_curve.png``: every reward component per GRPO step and the share of groups with
zero reward spread.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.writers import write_json
from eval import grounding
from eval.jsonl import read_items
from eval.predictions import read_finished
from eval.report import bar_figure, run_folders, write_table
from rewards.boxes import BoxVerdict, judge_box, parse_boxes
from rewards.components import format_score
from rewards.frame import Frame
from rewards.normalize import normalize_answer
from rewards.response import first_reasoning

# The generated world's vocabulary (data_prep.fixtures.world.finding_text): the words with which
# its reports name each CheXpert finding. Exact for the demo's reports; not a CXR labeler.
WORLD_TERMS = {
    "Pleural Effusion": ("pleural effusion",),
    "Pneumothorax": ("pneumothorax",),
    "Atelectasis": ("atelectasis",),
    "Cardiomegaly": ("cardiomegaly", "heart is mildly enlarged", "heart is moderately enlarged",
                     "heart is severely enlarged"),
    "Edema": ("edema",),
    "Consolidation": ("consolidation",),
    "Pneumonia": ("pneumonia",),
    "Lung Opacity": ("opacity is noted", "basilar opacity"),
    "Support Devices": ("endotracheal tube",),
    "Fracture": ("fracture",),
}
NEGATION = re.compile(r"\b(no|without|not)\b")
NORMAL_REPORT = "No acute cardiopulmonary process. The lungs are clear."  # the fixed baseline
LOG_FILE = "experiment_log.jsonl"


def world_labels(text: str) -> set[str]:
    """The findings a report of the generated world states as present (negated sentences skipped)."""
    found = set()
    for sentence in re.split(r"[.;\n]", text.lower()):
        if NEGATION.search(sentence):
            continue
        found |= {label for label, terms in WORLD_TERMS.items() if any(term in sentence for term in terms)}
    return found


def label_f1(predicted: list[set[str]], reference: list[set[str]]) -> float:
    """Micro F1 over (report, finding) pairs; 0 when nothing is predicted or nothing is true."""
    tp = sum(len(p & r) for p, r in zip(predicted, reference))
    fp = sum(len(p - r) for p, r in zip(predicted, reference))
    fn = sum(len(r - p) for p, r in zip(predicted, reference))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def load_items(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """The evaluation items by id, through the one items reader (``eval.jsonl``): a bad line or a
    repeated id is an error naming it, never a silently smaller comparison."""
    items: dict[str, dict[str, Any]] = {}
    for path in paths:
        content = read_items(path)
        content.refuse_bad("evaluation items")
        for item in content.rows:
            if item["id"] in items:
                raise ValueError(f"{path}: item id {item['id']!r} appears twice in the evaluation files")
            items[item["id"]] = item
    return items


def in_frame_reasoning(raw: str, frame: Frame) -> bool:
    """The reasoning format holds and the reasoning cites at least one box inside the frame."""
    if format_score(raw) != 1.0:
        return False
    return any(judge_box(box, frame) is BoxVerdict.VALID for box in parse_boxes(first_reasoning(raw)))


def rewards_of(rows: list[dict[str, Any]], items: dict[str, dict[str, Any]], kwargs: dict[str, Any]) -> list[dict]:
    from rewards.deepmedix import compute_score

    inputs = [{"response": row.get("raw_output", row["prediction"]), "response_length": 0,
               "ground_truth": items[row["id"]]["ground_truth"]} for row in rows]
    return compute_score(inputs, **kwargs)


def paired_interval(a: np.ndarray, b: np.ndarray, rounds: int, seed: int) -> list[float]:
    """95% percentile interval of mean(b - a), items resampled in pairs."""
    rng = np.random.default_rng(seed)
    difference = b - a
    means = [difference[rng.integers(0, len(difference), len(difference))].mean() for _ in range(rounds)]
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def stage_metrics(rows: list[dict[str, Any]], items: dict[str, dict[str, Any]], kwargs: dict[str, Any]) -> dict:
    closed = [r for r in rows if items[r["id"]].get("answer_kind") == "closed"
              and normalize_answer(str(items[r["id"]]["answer"])) in ("yes", "no")]
    reports = [r for r in rows if items[r["id"]]["task"] in ("findings", "impression")]
    grounding_rows = [r for r in rows if items[r["id"]]["task"] == grounding.TASK]
    scored = [r for r in rows if items[r["id"]].get("ground_truth")]
    frames = {i: Frame(item["frame"]["width"], item["frame"]["height"]) for i, item in items.items() if "frame" in item}
    metrics: dict[str, Any] = {"n_items": len(rows)}
    if closed:
        truth = [normalize_answer(str(items[r["id"]]["answer"])) for r in closed]
        correct = [normalize_answer(r["prediction"]) == t for r, t in zip(closed, truth)]
        metrics["yes_no_accuracy"] = float(np.mean(correct))
        metrics["yes_no_majority"] = max(truth.count("yes"), truth.count("no")) / len(truth)
        metrics["yes_no_n"] = len(closed)
    if reports:
        reference = [world_labels(str(items[r["id"]]["answer"])) for r in reports]
        metrics["report_label_f1"] = label_f1([world_labels(r["prediction"]) for r in reports], reference)
        metrics["normal_report_label_f1"] = label_f1([world_labels(NORMAL_REPORT)] * len(reports), reference)
        metrics["reports_n"] = len(reports)
    with_frame = [r for r in rows if r["id"] in frames]
    if with_frame:
        metrics["reasoning_with_box"] = float(np.mean(
            [in_frame_reasoning(r.get("raw_output", ""), frames[r["id"]]) for r in with_frame]))
    if grounding_rows:
        ious = np.array([grounding.best_iou(r) for r in grounding_rows])
        answers = [grounding.answer_iou(r) for r in grounding_rows]
        metrics.update(grounding_mean_IoU=float(ious.mean()), grounding_median_IoU=float(np.median(ious)),
                       grounding_IoU50=float((ious >= 0.5).mean()), grounding_n=len(grounding_rows),
                       grounding_answer_median_IoU=float(np.median(answers)))
        if all(r["id"] in frames for r in grounding_rows):  # a floor over every item or none, never a subset
            metrics["grounding_region_median_IoU"] = float(np.median(
                [grounding.region_iou(r, frames[r["id"]]) for r in grounding_rows]))  # the image-blind floor
    if scored:
        results = rewards_of(scored, items, kwargs)
        metrics["reward_mean"] = float(np.mean([r["overall"] for r in results]))
        metrics["reward_n"] = len(scored)
        metrics["_reward_by_id"] = {row["id"]: float(r["overall"]) for row, r in zip(scored, results)}
    return metrics


def read_experiment_log(path: Path) -> list[dict[str, Any]]:
    """Records of EasyR1's file logger (``{"step": n, "reward": {"overall": ...}, ...}``), flattened
    back to ``reward/<key>`` names. The TRL backend writes the same format."""
    def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                flatten(f"{prefix}/{key}" if prefix else key, inner, out)
        else:
            out[prefix] = value

    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not a JSON record ({error})") from None
        flat: dict[str, Any] = {}
        flatten("", record, flat)
        records.append(flat)
    return records


def reward_curve(records: list[dict[str, Any]], out: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in records for k in r if k.startswith("reward/")})
    if not keys:
        return False
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for key in keys:
        points = [(r["step"], r[key]) for r in records if key in r]
        axes[0].plot([p[0] for p in points], [p[1] for p in points], label=key.removeprefix("reward/"))
    axes[0].set_xlabel("GRPO step")
    axes[0].set_title("reward per component (training rollouts)")
    axes[0].legend(fontsize=6)
    spread = [(r["step"], r[ZERO_SPREAD]) for r in records if ZERO_SPREAD in r]
    if spread:
        axes[1].plot([p[0] for p in spread], [p[1] for p in spread])
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("GRPO step")
    axes[1].set_title("share of groups with zero reward spread")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return True


ZERO_SPREAD = "reward_groups/zero_spread_share"
TABLE = (  # (metric key, column title)
    ("yes_no_accuracy", "yes/no accuracy"), ("yes_no_majority", "yes/no majority rate"),
    ("report_label_f1", "report label F1"), ("normal_report_label_f1", "normal-report F1"),
    ("reasoning_with_box", "reasoning + in-frame box"), ("grounding_mean_IoU", "grounding mean IoU"),
    ("grounding_median_IoU", "grounding median IoU"), ("grounding_IoU50", "grounding IoU@0.5"),
    ("grounding_answer_median_IoU", "answer-box median IoU"),
    ("grounding_region_median_IoU", "best anatomical region median IoU (image-blind)"),
    ("reward_mean", "mean GRPO reward"), ("reward_gain_ci95", "reward gain vs previous (95% CI)"),
)


def compare(runs: dict[str, Path], item_files: list[Path], out: Path, reward_kwargs: dict[str, Any],
            rounds: int = 1000, seed: int = 0, experiment_log: Path | None = None) -> dict[str, Any]:
    items = load_items(item_files)
    results: dict[str, dict[str, Any]] = {}
    ids = None
    for name, folder in runs.items():
        rows = read_finished(folder / "predictions.jsonl")
        unknown = [r["id"] for r in rows if r["id"] not in items]
        if unknown:
            raise ValueError(f"{folder}: {len(unknown)} predictions name no evaluation item, e.g. {unknown[:3]}")
        these = sorted(r["id"] for r in rows)
        if ids is not None and these != ids:
            raise ValueError(f"{folder}: predicts other items than {next(iter(runs))} ({len(these)} vs {len(ids)})")
        ids = these
        results[name] = stage_metrics(rows, items, reward_kwargs)
    names = list(results)
    for before, after in zip(names, names[1:]):
        a, b = results[before].get("_reward_by_id"), results[after].get("_reward_by_id")
        if a and b:
            keys = sorted(a)
            earlier, later = np.array([a[k] for k in keys]), np.array([b[k] for k in keys])
            results[after]["reward_gain"] = float((later - earlier).mean())
            results[after]["reward_gain_ci95"] = paired_interval(earlier, later, rounds, seed)
    for metrics in results.values():
        metrics.pop("_reward_by_id", None)
    summary: dict[str, Any] = {"stages": results, "items": len(ids or []),
                               "item_files": [str(p) for p in item_files], "reward_kwargs": reward_kwargs,
                               "bootstrap": {"rounds": rounds, "seed": seed, "interval": "95% percentile, paired"}}
    out.mkdir(parents=True, exist_ok=True)
    written = ["stages.json", "stages.md", "stages.csv"]
    if experiment_log is not None and experiment_log.exists():
        records = read_experiment_log(experiment_log)
        spread = [r[ZERO_SPREAD] for r in records if ZERO_SPREAD in r]
        summary["grpo_training"] = {
            "steps": len(records), "zero_spread_share_mean": float(np.mean(spread)) if spread else None,
            "reward_first": {k: v for k, v in records[0].items() if k.startswith("reward/")} if records else {},
            "reward_last": {k: v for k, v in records[-1].items() if k.startswith("reward/")} if records else {},
        }
        if reward_curve(records, out / "reward_curve.png"):
            written.append("reward_curve.png")

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return f"[{value[0]:+.3f}, {value[1]:+.3f}]"
        return f"{value:.3f}"

    header = ["stage", *[title for _, title in TABLE]]
    write_table(out / "stages", header, [[name, *[cell(m.get(key)) for key, _ in TABLE]] for name, m in results.items()])
    if stage_figure(results, out / "stages.png"):
        written.append("stages.png")
    summary["files"] = written
    write_json(out / "stages.json", summary)
    return summary


def stage_figure(results: dict[str, dict[str, Any]], out: Path) -> bool:
    """One bar group per TABLE metric any stage has (a missing value draws as 0), one bar per stage."""
    series = {name: {title: metrics[key] for key, title in TABLE if key != "reward_gain_ci95"
                     and isinstance(metrics.get(key), float)} for name, metrics in results.items()}
    return bar_figure(series, "each stage on the same held-out items", "", out,
                      order=[title for _, title in TABLE], unit_range=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.stages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="STAGE=DIR with predictions.jsonl (in order)")
    parser.add_argument("--items", action="append", required=True, type=Path, help="an evaluation items file")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reward-kwargs", default="{}", help="the GRPO reward's keyword arguments (JSON)")
    parser.add_argument("--experiment-log", type=Path, help="GRPO's experiment_log.jsonl (EasyR1 or TRL backend)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runs = run_folders(parser, args.run, "predictions.jsonl", what="STAGE")
    summary = compare(runs, args.items, args.out, json.loads(args.reward_kwargs), args.bootstrap, args.seed,
                      args.experiment_log)
    print((args.out / "stages.md").read_text())
    print(f"comparison written to {args.out}: {', '.join(summary['files'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
