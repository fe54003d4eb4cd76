"""Tables and figures like the paper's, for one or several scored runs side by side.

    python -m eval.report --run NAME=DIR [--run NAME2=DIR2 ...] --out REPORT_DIR

Each DIR holds ``metrics.json`` (``eval.score``) and optionally ``predictions.jsonl``. Writes:
- ``report_generation.md`` / ``.csv``: Table 1 (runs x metrics, per split and the weighted average);
  the F1-RadGraph column names its variant (model, level) and "Average" says over how many of the
  11 metrics it was taken when some could not be computed ("Average over k of 11");
- ``vqa.md`` / ``.csv``: accuracy per dataset and question type (Fig. 3a-b as a table);
- ``lengths.png``: report length distributions against the references (Fig. 2a-d);
- ``report_weighted_average.png``: the weighted-average metrics per run (Fig. 2e);
- ``vqa_by_type.png``: accuracy per question type (Fig. 3a-b);
- ``vqa_per_object_<dataset>.png``: per-object F1 of the ten objects most often in that VQA
  dataset's multi-object references, one figure per dataset (Fig. 3c-d);
- ``chexbert_per_condition_<dataset>.png``: per-observation F1-CheXbert of the ten observations
  most often positive in the references, one figure per findings split (Fig. 2f-g), when CheXbert ran;
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
from eval.score import TABLE1_METRICS, extract_final_answers  # noqa: E402

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
    for rows in predictions.values():
        extract_final_answers(rows)  # lengths of the final reports eval.score scored, not of whole responses
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


def bar_figure(series: dict[str, dict[str, float]], title: str, ylabel: str, out: Path,
               order: list[str] | None = None, unit_range: bool = True) -> bool:
    """Grouped bars, one group per label (in ``order``, then the rest sorted), one bar per run; the
    y axis spans [0, 1] unless ``unit_range`` is False (values such as a weighted reward may leave it)."""
    present = {label for values in series.values() for label in values}
    labels = [label for label in order or [] if label in present] + sorted(present - set(order or []))
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
    if unit_range:
        axis.set_ylim(0, 1)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return True


def radgraph_label(metrics: dict) -> str:
    """The F1-RadGraph variant of one scored run (older metrics.json: from its implementation line)."""
    variant = metrics.get("radgraph")
    if variant:
        return variant["label"]
    return metrics.get("implementations", {}).get("F1-RadGraph", "variant not recorded")


def average_over(metrics: dict, split: str) -> dict:
    """The "Average over k of 11" record of a table row (``split`` or "weighted average")."""
    if split == "weighted average":
        return metrics.get("reports_weighted_average_over") or {}
    entry = metrics["reports"].get(split, {}).get("Average", {})
    return entry if "over" in entry else {}


def label_table1(header: list[str], rows: list[list[str]], runs: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """Table 1 with its variant labels: the F1-RadGraph column names the RadGraph model and level, and
    the Average column says over how many of the 11 metrics it was taken (per cell when rows differ)."""
    header = list(header)
    labels = {name: radgraph_label(m) for name, m in runs.items()}
    radgraph = header.index("F1-RadGraph")
    if len(set(labels.values())) == 1:
        header[radgraph] = f"F1-RadGraph ({next(iter(labels.values()))})"
    else:
        header[radgraph] = "F1-RadGraph (" + "; ".join(f"{n}: {label}" for n, label in labels.items()) + ")"
    average = header.index("Average")
    coverage = [average_over(runs[row[1]], row[0].removesuffix(NOT_COMPARABLE)) for row in rows]
    kinds = {(c.get("over"), c.get("of")) for c in coverage if c}
    if len(kinds) == 1:
        header[average] = next(c["label"] for c in coverage if c)
    elif kinds:
        rows = [row[:average] + [row[average] + (f" ({c['over']} of {c['of']})" if c and row[average] != "n/c" else "")]
                + row[average + 1:] for row, c in zip(rows, coverage)]
        header[average] = "Average (over k of 11 metrics, per cell)"
    return header, rows


def table1_notes(runs: dict[str, dict]) -> list[str]:
    notes = ["## Table 1 variants"]
    for name, m in runs.items():
        coverage = m.get("reports_weighted_average_over") or {}
        missing = ", ".join(coverage.get("missing", [])) or "none"
        notes.append(f"- {name}: F1-RadGraph = {radgraph_label(m)}; {coverage.get('label', 'Average')} "
                     f"(missing: {missing})")
        extraction = m.get("answer_extraction")
        if extraction and extraction.get("rows_extracted"):
            notes.append(f"  - {extraction['rows_extracted']} predictions held whole responses: scored on the final "
                         f"answer ({extraction['method']}); {extraction['rows_without_boxed_answer']} had none")
    if len({radgraph_label(m) for m in runs.values()}) > 1:
        notes.append("- WARNING: the runs used different RadGraph variants; their F1-RadGraph are not comparable")
    return notes


def file_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def weighted_average_figure(runs: dict[str, dict], out: Path) -> list[str]:
    """Fig. 2e: each run's weighted-average metrics, the Average bar labelled with its coverage."""
    series = {}
    for name, m in runs.items():
        values = dict(m.get("reports_weighted_average", {}))
        label = (m.get("reports_weighted_average_over") or {}).get("label", "Average")
        if "Average" in values:
            values[label] = values.pop("Average")
        series[name] = {k: v for k, v in values.items() if k in TABLE1_METRICS or k.startswith("Average")}
    path = out / "report_weighted_average.png"
    if any(series.values()) and bar_figure(series, "Report generation: weighted average over splits", "score", path,
                                           order=[*TABLE1_METRICS]):
        return [path.name]
    return []


def top_by_support(runs: dict[str, dict], support_of) -> list[str]:
    """The ten labels with the largest support (the references are the runs' shared items)."""
    support: dict[str, int] = {}
    for m in runs.values():
        for label, n in (support_of(m) or {}).items():
            support[label] = max(support.get(label, 0), n)
    return sorted((label for label in support if support[label] > 0), key=lambda label: (-support[label], label))[:10]


def per_object_figures(runs: dict[str, dict], out: Path) -> list[str]:
    """Fig. 3c-d: per-object F1 of each VQA dataset's ten most frequent reference objects, one figure per dataset."""
    written = []
    for dataset in sorted({d for m in runs.values() for d in m.get("vqa", {})}):
        def scores(m, dataset=dataset):
            return m.get("vqa", {}).get(dataset, {}).get("per_object_F1") or {}

        top = top_by_support(runs, lambda m: {item: entry["n"] for item, entry in scores(m).items()})
        series = {name: {item: scores(m)[item]["F1"] for item in top if item in scores(m)} for name, m in runs.items()}
        path = out / f"vqa_per_object_{file_part(dataset)}.png"
        if top and bar_figure(series, f"{dataset}: per-object F1, 10 most frequent objects", "F1", path, order=top):
            written.append(path.name)
    return written


def chexbert_figures(runs: dict[str, dict], out: Path) -> list[str]:
    """Fig. 2f-g: per-observation F1-CheXbert of the ten best-supported observations, one figure per findings split."""
    written = []
    splits = sorted({s for m in runs.values() for s, r in m["reports"].items()
                     if s.endswith("/findings") and "per_condition_F1" in r})
    for split in splits:
        top = top_by_support(runs, lambda m, split=split: m["reports"].get(split, {}).get("per_condition_support"))
        series = {name: {c: m["reports"][split]["per_condition_F1"][c] for c in top}
                  for name, m in runs.items() if "per_condition_F1" in m["reports"].get(split, {})}
        path = out / f"chexbert_per_condition_{file_part(split.split('/')[0])}.png"
        if top and bar_figure(series, f"{split}: F1-CheXbert, 10 best-supported observations", "F1", path, order=top):
            written.append(path.name)
    return written


class MetricsFileError(ValueError):
    """A run's metrics.json that is not one eval.score wrote (broken, cut, or another tool's)."""


METRICS_KEYS = ("reports", "vqa", "implementations", "bootstrap", "not_computed")


def load_metrics(path: Path) -> dict:
    """A run's metrics.json, checked for what the report reads; a broken one is named, not a traceback."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise MetricsFileError(f"{path}: not a readable metrics.json ({error})") from None
    missing = [key for key in METRICS_KEYS if key not in metrics] if isinstance(metrics, dict) else list(METRICS_KEYS)
    if missing:
        raise MetricsFileError(f"{path}: lacks {missing}: not a metrics.json written by eval.score (rescore the run)")
    return metrics


def build_report(runs: dict[str, Path], out: Path, allow_different_items: bool = False) -> list[str]:
    """The tables, figures and README. Runs scored on different items of a split are refused
    (``NotComparable``) unless ``allow_different_items``; non-comparable rows (that, or a split some
    runs lack) are marked and the README says why."""
    metrics = {name: load_metrics(folder / "metrics.json") for name, folder in runs.items()}
    differences, different_items = item_set_differences(metrics)
    if different_items and not allow_different_items:
        listed = "".join(f"\n  {split}: {differences[split]}" for split in sorted(different_items))
        raise NotComparable(f"the runs were not scored on the same items, so their numbers do not compare:{listed}\n"
                            "Score every run on the same items file, or pass --allow-different-items to write the "
                            f"report with these splits marked{NOT_COMPARABLE}.")
    out.mkdir(parents=True, exist_ok=True)
    write_table(out / "report_generation", *label_table1(*report_table(metrics, differences), metrics))
    write_table(out / "vqa", *vqa_table(metrics, differences))
    written = ["report_generation.md", "report_generation.csv", "vqa.md", "vqa.csv"]
    written += weighted_average_figure(metrics, out)
    if length_figure(runs, out / "lengths.png"):
        written.append("lengths.png")
    by_type = {name: {f"{dataset}: {kind}": entry["value"] for dataset, result in m["vqa"].items()
                      for kind, entry in result.items() if isinstance(entry, dict) and "value" in entry}
               for name, m in metrics.items()}
    if bar_figure(by_type, "VQA accuracy per question type", "accuracy", out / "vqa_by_type.png"):
        written.append("vqa_by_type.png")
    written += per_object_figures(metrics, out)
    written += chexbert_figures(metrics, out)
    notes = ["# Evaluation report", "", "Files: " + ", ".join(written), "", "## Implementations"]
    first = next(iter(metrics.values()))
    notes += [f"- {family}: {text}" for family, text in first["implementations"].items()]
    notes += ["", f"Bootstrap: {first['bootstrap']}", ""]
    notes += table1_notes(metrics)
    notes += [""]
    if differences:
        notes += ["## Not comparable", "", f"Rows marked{NOT_COMPARABLE} do not compare like with like:"]
        notes += [f"- {split}: {why}" for split, why in differences.items()] + [""]
    notes += ["## Not computed"]
    for name, m in metrics.items():
        notes += [f"- {name}: {metric}: {reason}" for metric, reason in sorted(m["not_computed"].items())] or [f"- {name}: none"]
    atomic_write_bytes(out / "README.md", ("\n".join(notes) + "\n").encode())
    return [*written, "README.md"]


def run_folders(parser: argparse.ArgumentParser, specs: list[str], required: str, what: str = "NAME") -> dict[str, Path]:
    """``--run NAME=DIR`` values as {name: folder}, in order; a value without ``=DIR`` or a folder
    without ``required`` is a usage error (shared by ``eval.report`` and ``eval.stages``)."""
    runs = {}
    for spec in specs:
        name, _, folder = spec.partition("=")
        if not folder or not (Path(folder) / required).exists():
            parser.error(f"--run {spec!r}: expected {what}=DIR with DIR/{required}")
        runs[name] = Path(folder)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="NAME=DIR with metrics.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--allow-different-items", action="store_true",
                        help="write the report even if the runs were scored on different items (marked)")
    args = parser.parse_args(argv)
    runs = run_folders(parser, args.run, "metrics.json")
    try:
        written = build_report(runs, args.out, args.allow_different_items)
    except (NotComparable, MetricsFileError) as error:
        parser.exit(2, f"eval.report: {error}\n")
    print(f"report written to {args.out}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
