"""Tables and figures like the paper's, for one or several scored runs side by side.

    python -m eval.report --run NAME=DIR [--run NAME2=DIR2 ...] --out REPORT_DIR

Each DIR holds ``metrics.json`` (``eval.score``) and optionally ``predictions.jsonl``. Writes:
- ``report_generation.md`` / ``.csv``: Table 1 (runs x metrics, per split and the weighted average);
- ``vqa.md`` / ``.csv``: accuracy per dataset and question type (Fig. 3a-b as a table);
- ``lengths.png``: report length distributions against the references (Fig. 2a-d);
- ``vqa_by_type.png``: accuracy per question type (Fig. 3a-b);
- ``vqa_per_object.png``: recall of the ten most frequent objects in multi-object answers (Fig. 3c-d);
- ``chexbert_per_condition.png``: per-observation F1-CheXbert (Fig. 2f-g), when CheXbert ran;
- ``README.md``: what is where, which implementation computed each metric, what was not computed.

Every row shows its ``n``. Runs whose split was scored on different items (``items_sha256`` in
``metrics.json``) are refused: their numbers do not compare (``--allow-different-items`` writes the
report anyway). Non-comparable rows (that, or a split some runs lack, and the weighted average over
such splits) are marked ``[not comparable]`` and explained in the README.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from data_prep.writers import atomic_write_bytes  # noqa: E402
from eval.predictions import read_predictions  # noqa: E402
from eval.score import TABLE1_METRICS  # noqa: E402

COLUMNS = (*TABLE1_METRICS, "Average")


def value(entry) -> str:
    return f"{entry['value']:.4f}" if isinstance(entry, dict) and "value" in entry else "n/c"


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> None:
    markdown = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    markdown += ["| " + " | ".join(row) + " |" for row in rows]
    atomic_write_bytes(path.with_suffix(".md"), ("\n".join(markdown) + "\n").encode())
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    atomic_write_bytes(path.with_suffix(".csv"), buffer.getvalue().encode())


NOT_COMPARABLE = " [not comparable]"


class NotComparable(ValueError):
    """Runs scored on different item sets, put side by side without ``--allow-different-items``."""


def item_set_differences(runs: dict[str, dict]) -> tuple[dict[str, str], set[str]]:
    """Per split (report ``dataset/task`` or VQA dataset, and the report weighted average), why the
    runs' numbers are not comparable: scored on different items (``items_sha256``, or ``n`` for
    older metrics files: these splits are also returned second), or the split is missing from
    some runs. Empty when all agree."""
    differences: dict[str, str] = {}
    different_items: set[str] = set()
    if len(runs) < 2:
        return differences, different_items
    for section in ("reports", "vqa"):
        splits = sorted({split for metrics in runs.values() for split in metrics[section]})
        for split in splits:
            present = {name: m[section][split] for name, m in runs.items() if split in m[section]}
            missing = sorted(set(runs) - set(present))
            identities = {(r.get("n"), r.get("items_sha256")) for r in present.values()}
            if missing:
                differences[split] = f"not scored for {', '.join(missing)}"
            elif len(identities) > 1:
                different_items.add(split)
                differences[split] = "different items: " + ", ".join(f"{name} n={r.get('n')}" for name, r in present.items())
    report_splits = [split for split in differences if any(split in m["reports"] for m in runs.values())]
    if report_splits:
        differences["weighted average"] = f"averages over non-comparable splits ({', '.join(report_splits)})"
    return differences, different_items


def report_table(runs: dict[str, dict], differences: dict[str, str] | None = None) -> tuple[list[str], list[list[str]]]:
    splits = sorted({split for metrics in runs.values() for split in metrics["reports"]})
    differences = differences or {}
    rows = []
    for split in [*splits, "weighted average"]:
        for name, metrics in runs.items():
            if split == "weighted average":
                entries = {k: {"value": v} for k, v in metrics.get("reports_weighted_average", {}).items()}
                n = sum(result.get("n", 0) for result in metrics["reports"].values())
            else:
                entries = metrics["reports"].get(split, {})
                n = entries.get("n", 0)
            label = split + (NOT_COMPARABLE if split in differences else "")
            rows.append([label, name, str(n), *[value(entries.get(column)) for column in COLUMNS]])
    return ["split", "model", "n", *COLUMNS], rows


def vqa_table(runs: dict[str, dict], differences: dict[str, str] | None = None) -> tuple[list[str], list[list[str]]]:
    differences = differences or {}
    rows = []
    for name, metrics in runs.items():
        for dataset, result in sorted(metrics["vqa"].items()):
            for kind, entry in result.items():
                if isinstance(entry, dict) and "value" in entry:
                    count = result.get("n_by_type", {}).get(kind, result["n"]) if kind != "overall" else result["n"]
                    rows.append([dataset + (NOT_COMPARABLE if dataset in differences else ""), kind, name,
                                 value(entry), str(count)])
    return ["dataset", "question type", "model", "accuracy", "n"], rows


def length_figure(runs: dict[str, Path], out: Path) -> bool:
    # the scorable rows (eval.score already counted and named the others in metrics.json)
    predictions = {name: read_predictions(folder / "predictions.jsonl")[0].rows for name, folder in runs.items()
                   if (folder / "predictions.jsonl").exists()}
    report_rows = {name: [r for r in rows if r["task"] in ("findings", "impression")] for name, rows in predictions.items()}
    splits = sorted({f"{r['dataset']}/{r['task']}" for rows in report_rows.values() for r in rows})
    if not splits:
        return False
    figure, axes = plt.subplots(1, len(splits), figsize=(4 * len(splits), 3.2), squeeze=False)
    for axis, split in zip(axes[0], splits):
        chosen = {name: [r for r in rows if f"{r['dataset']}/{r['task']}" == split] for name, rows in report_rows.items()}
        series = {"ground truth": [len(str(r["reference"]).split()) for r in next(iter(chosen.values()))]}
        series.update({name: [len(r["prediction"].split()) for r in picked] for name, picked in chosen.items()})
        longest = max((max(lengths) for lengths in series.values() if lengths), default=1)
        bins = np.linspace(0, longest + 1, 21)  # one set of bins, so the series compare
        for label, lengths in series.items():
            axis.hist(lengths, bins=bins, alpha=0.45, label=label)
        axis.set_title(split, fontsize=9)
        axis.set_xlabel("words")
    axes[0][0].set_ylabel("reports")
    axes[0][-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return True


def bar_figure(series: dict[str, dict[str, float]], title: str, ylabel: str, out: Path) -> bool:
    labels = sorted({label for values in series.values() for label in values})
    if not labels:
        return False
    figure, axis = plt.subplots(figsize=(max(6, 0.6 * len(labels) * max(1, len(series))), 3.6))
    width = 0.8 / max(1, len(series))
    for offset, (name, values) in enumerate(series.items()):
        axis.bar([i + offset * width for i in range(len(labels))], [values.get(label, 0) for label in labels],
                 width=width, label=name)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, rotation=40, ha="right", fontsize=7)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return True


def build_report(runs: dict[str, Path], out: Path, allow_different_items: bool = False) -> list[str]:
    """The tables, figures and README. Runs scored on different items of a split are refused
    (``NotComparable``) unless ``allow_different_items``; non-comparable rows (that, or a split some
    runs lack) are marked and the README says why."""
    metrics = {name: json.loads((folder / "metrics.json").read_text()) for name, folder in runs.items()}
    differences, different_items = item_set_differences(metrics)
    if different_items and not allow_different_items:
        listed = "".join(f"\n  {split}: {differences[split]}" for split in sorted(different_items))
        raise NotComparable(f"the runs were not scored on the same items, so their numbers do not compare:{listed}\n"
                            "Score every run on the same items file, or pass --allow-different-items to write the "
                            f"report with these splits marked{NOT_COMPARABLE}.")
    out.mkdir(parents=True, exist_ok=True)
    write_table(out / "report_generation", *report_table(metrics, differences))
    write_table(out / "vqa", *vqa_table(metrics, differences))
    written = ["report_generation.md", "report_generation.csv", "vqa.md", "vqa.csv"]
    if length_figure(runs, out / "lengths.png"):
        written.append("lengths.png")
    by_type = {name: {f"{dataset}: {kind}": entry["value"] for dataset, result in m["vqa"].items()
                      for kind, entry in result.items() if isinstance(entry, dict) and "value" in entry}
               for name, m in metrics.items()}
    if bar_figure(by_type, "VQA accuracy per question type", "accuracy", out / "vqa_by_type.png"):
        written.append("vqa_by_type.png")
    top_objects = {}
    for name, m in metrics.items():
        objects = m.get("vqa_overall", {}).get("per_object_recall", {})
        top = sorted(objects, key=lambda item: -objects[item]["n"])[:10]  # the ten most asked-about
        top_objects[name] = {item: objects[item]["recall"] for item in top}
    if any(top_objects.values()) and bar_figure(top_objects, "VQA recall of the 10 most frequent objects", "recall",
                                                out / "vqa_per_object.png"):
        written.append("vqa_per_object.png")
    per_condition = {name: split["per_condition_F1"] for name, m in metrics.items()
                     for key, split in m["reports"].items() if key.endswith("findings") and "per_condition_F1" in split}
    if per_condition and bar_figure(per_condition, "F1-CheXbert per observation (findings)", "F1",
                                    out / "chexbert_per_condition.png"):
        written.append("chexbert_per_condition.png")
    notes = ["# Evaluation report", "", "Files: " + ", ".join(written), "", "## Implementations"]
    first = next(iter(metrics.values()))
    notes += [f"- {family}: {text}" for family, text in first["implementations"].items()]
    notes += ["", f"Bootstrap: {first['bootstrap']}", ""]
    if differences:
        notes += ["## Not comparable", "", f"Rows marked{NOT_COMPARABLE} do not compare like with like:"]
        notes += [f"- {split}: {why}" for split, why in differences.items()] + [""]
    notes += ["## Not computed"]
    for name, m in metrics.items():
        notes += [f"- {name}: {metric}: {reason}" for metric, reason in sorted(m["not_computed"].items())] or [f"- {name}: none"]
    atomic_write_bytes(out / "README.md", ("\n".join(notes) + "\n").encode())
    return [*written, "README.md"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="NAME=DIR with metrics.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--allow-different-items", action="store_true",
                        help="write the report even if the runs were scored on different items (marked)")
    args = parser.parse_args(argv)
    runs = {}
    for spec in args.run:
        name, _, folder = spec.partition("=")
        if not folder or not (Path(folder) / "metrics.json").exists():
            parser.error(f"--run {spec!r}: expected NAME=DIR with DIR/metrics.json")
        runs[name] = Path(folder)
    try:
        written = build_report(runs, args.out, args.allow_different_items)
    except NotComparable as error:
        parser.exit(2, f"eval.report: {error}\n")
    print(f"report written to {args.out}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
