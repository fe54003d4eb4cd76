"""Score a predictions file: ``python -m eval.score PREDICTIONS.jsonl --out DIR``.

Writes ``DIR/metrics.json``: for each report split (``<dataset>/<task>``) the paper's Table 1
metrics (BLEU-1..4, METEOR, ROUGE-L, F1-RadGraph, Macro-14, Micro-14, Macro-5, Micro-5) and their
row average, plus their count-weighted average over the splits ("weighted_average", as Table 1);
for VQA the accuracy per dataset, per question type and overall; for phrase grounding (task
``grounding``, ``eval.grounding``) the mean IoU and IoU@0.5 of the best predicted box. Every
headline number carries a seeded bootstrap 95% interval (reports or questions resampled with
replacement). Each metric family names the implementation that computed it. A metric that cannot be computed here (no Java,
no CheXbert checkpoint, no RadGraph model) is listed under ``not_computed`` with where it looked and
how to provide it: never a crash, never a silent zero; "Average" then says over how many of the
11 metrics it was taken ("Average over k of 11").

A prediction that holds a whole response (``<think>...</think> The answer is: \boxed{yes}``) is
scored on its final answer, extracted as the GRPO reward reads it (``rewards.response.last_boxed``:
the last ``\boxed{}``; none scores as an empty answer), never on its reasoning; metrics.json says
how many rows were extracted (``answer_extraction``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from data_prep.writers import write_json
from eval import chexbert, grounding, nlg, radgraph_f1, vqa
from eval.predictions import PredictionsFileError, load_predictions
from rewards.response import BOXED_OPEN, THINK_CLOSE, THINK_OPEN, last_boxed

REPORT_TASKS = ("findings", "impression")
TABLE1_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "F1-RadGraph",
                  "Macro-14", "Micro-14", "Macro-5", "Micro-5")


def bootstrap(statistic: Callable[[np.ndarray | None], dict[str, float]], n: int, rounds: int, seed: int):
    """95% percentile intervals of every value ``statistic(rows)`` returns, resampling rows."""
    if rounds <= 0 or n < 2:
        return {}
    rng = np.random.default_rng(seed)
    samples = defaultdict(list)
    for _ in range(rounds):
        for name, value in statistic(rng.integers(0, n, n)).items():
            samples[name].append(value)
    return {name: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for name, v in samples.items()}


def with_intervals(values: dict[str, float], intervals: dict[str, list[float]]) -> dict[str, Any]:
    return {name: {"value": value, **({"ci95": intervals[name]} if name in intervals else {})}
            for name, value in values.items()}


def reference_text(row: dict) -> str:
    return row["reference"] if isinstance(row["reference"], str) else " ".join(row["reference"])


def tokenize_reports(rows: list[dict], args: argparse.Namespace, not_computed: dict[str, str]) -> dict[str, tuple]:
    """id -> (PTB hypothesis, PTB reference, METEOR or None), for every report at once: the Java
    tokenizer and METEOR start once per scoring run, not once per split."""
    if not rows:
        return {}
    try:
        hypotheses = nlg.ptb_tokenize([row["prediction"] for row in rows])
        references = nlg.ptb_tokenize([reference_text(row) for row in rows])
    except nlg.MetricUnavailable as error:
        not_computed.update({name: str(error) for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L")})
        return {}
    meteor: list[float | None] = [None] * len(rows)
    if not args.no_meteor:
        try:
            meteor = nlg.meteor_scores(hypotheses, references)[1]
        except nlg.MetricUnavailable as error:
            not_computed["METEOR"] = str(error)
    return {row["id"]: (h, r, m) for row, h, r, m in zip(rows, hypotheses, references, meteor)}


def score_reports(rows: list[dict], tokens: dict[str, tuple], args: argparse.Namespace,
                  not_computed: dict[str, str]) -> dict[str, Any]:
    hypotheses = [row["prediction"] for row in rows]
    references = [reference_text(row) for row in rows]
    parts: list[Callable[[np.ndarray | None], dict[str, float]]] = []
    if tokens:
        tokenized_h, tokenized_r = [tokens[row["id"]][0] for row in rows], [tokens[row["id"]][1] for row in rows]
        bleu_counts = nlg.bleu_counts(tokenized_h, tokenized_r)
        rouge = nlg.rouge_l_scores(tokenized_h, tokenized_r)
        parts.append(lambda r: dict(zip(("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"), bleu_counts.score(r))))
        parts.append(lambda r: {"ROUGE-L": float(rouge.mean() if r is None else rouge[r].mean())})
        if tokens[rows[0]["id"]][2] is not None:
            meteor = np.array([tokens[row["id"]][2] for row in rows])
            parts.append(lambda r: {"METEOR": float(meteor.mean() if r is None else meteor[r].mean())})
    try:
        if args.chexbert_checkpoint is None:
            raise nlg.MetricUnavailable(f"no CheXbert checkpoint given: {chexbert.HOW_TO_PROVIDE}")
        predicted = chexbert.label_reports(hypotheses, args.chexbert_checkpoint, args.chexbert_bert)
        reference_labels = chexbert.label_reports(references, args.chexbert_checkpoint, args.chexbert_bert)
        parts.append(lambda r: chexbert.chexbert_metrics(predicted, reference_labels, r))
        per_condition = chexbert.per_condition_f1(predicted, reference_labels)
        support = chexbert.per_condition_support(reference_labels)
    except nlg.MetricUnavailable as error:
        per_condition = None
        for name in ("Macro-14", "Micro-14", "Macro-5", "Micro-5"):
            not_computed[name] = str(error)
    try:
        radgraph = np.array(radgraph_f1.radgraph_scores(hypotheses, references, args.radgraph_model,
                                                        args.radgraph_level, args.radgraph_cache))
        parts.append(lambda r: {"F1-RadGraph": float(radgraph.mean() if r is None else radgraph[r].mean())})
    except nlg.MetricUnavailable as error:
        not_computed["F1-RadGraph"] = str(error)

    def statistic(rows_picked):
        values = {}
        for part in parts:
            values.update(part(rows_picked))
        table = [values[name] for name in TABLE1_METRICS if name in values]
        if table:
            values["Average"] = float(np.mean(table))
        return values

    result = with_intervals(statistic(None), bootstrap(statistic, len(rows), args.bootstrap, args.seed))
    result["n"] = len(rows)
    if "Average" in result:
        result["Average"].update(average_coverage(result))
    if per_condition is not None:
        result["per_condition_F1"] = per_condition
        result["per_condition_support"] = support
    return result


def score_vqa(rows: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    scores = np.array([vqa.question_score(row) for row in rows])
    types = np.array([row.get("question_type") or "unknown" for row in rows])

    def statistic(picked):
        s, t = (scores, types) if picked is None else (scores[picked], types[picked])
        values = {"overall": float(s.mean())}
        for kind in sorted(set(types)):
            if (t == kind).any():
                values[kind] = float(s[t == kind].mean())
        return values

    result = with_intervals(statistic(None), bootstrap(statistic, len(rows), args.bootstrap, args.seed))
    result["n"] = len(rows)
    result["n_by_type"] = {kind: int((types == kind).sum()) for kind in sorted(set(types))}
    result["per_object_recall"] = vqa.per_object_recall(rows)
    result["per_object_F1"] = vqa.per_object_f1(rows)
    return result


def weighted_average(splits: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Table 1's weighted average: each metric averaged over the report splits, weighted by size."""
    totals: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for split in splits.values():
        for name, entry in split.items():
            if isinstance(entry, dict) and "value" in entry:
                totals[name].append((entry["value"], split["n"]))
    return {name: sum(v * n for v, n in pairs) / sum(n for _, n in pairs) for name, pairs in totals.items()}


def average_coverage(values: dict[str, Any]) -> dict[str, Any]:
    """Which of Table 1's 11 metrics an "Average" was taken over: ``{"over": k, "of": 11, "missing":
    [...], "label": "Average over k of 11"}`` (label "Average" when all 11 are there)."""
    present = [name for name in TABLE1_METRICS if name in values]
    label = "Average" if len(present) == len(TABLE1_METRICS) else f"Average over {len(present)} of {len(TABLE1_METRICS)}"
    return {"over": len(present), "of": len(TABLE1_METRICS),
            "missing": [name for name in TABLE1_METRICS if name not in values], "label": label}


def holds_whole_response(prediction: str) -> bool:
    return any(tag in prediction for tag in (THINK_OPEN, THINK_CLOSE, BOXED_OPEN))


def extract_final_answers(rows: list[dict]) -> dict[str, Any]:
    """Replace, in place, every prediction that holds a whole response by its final answer, read as the
    GRPO reward reads it (the last ``\\boxed{}``; none: an empty answer, which the reward scores 0 too).
    The reasoning is never scored; the original text moves to ``raw_output`` when that is empty."""
    extracted = without_box = 0
    for row in rows:
        if not holds_whole_response(row["prediction"]):
            continue
        answer = last_boxed(row["prediction"])
        row.setdefault("raw_output", row["prediction"])
        row["prediction"] = answer or ""
        extracted += 1
        without_box += answer is None
    return {
        "method": "rewards.response.last_boxed (as the GRPO reward): a prediction holding <think> or \\boxed{ is "
                  "scored on the content of its last \\boxed{}; with none, as an empty answer; reasoning is never scored",
        "rows_extracted": extracted,
        "rows_without_boxed_answer": without_box,
    }


def items_fingerprint(rows: list[dict]) -> str:
    """sha256 of the sorted item ids: two runs with equal fingerprints were scored on the same items."""
    return hashlib.sha256("\n".join(sorted(row["id"] for row in rows)).encode()).hexdigest()


def score(args: argparse.Namespace) -> dict[str, Any]:
    try:
        rows, problems = load_predictions(args.predictions)
    except PredictionsFileError as error:
        raise SystemExit(str(error)) from None
    if problems:
        shown = "".join(f"\n  {problem}" for problem in problems[:10])
        print(f"{args.predictions}: {len(problems)} line(s) left out of the scores (listed in metrics.json "
              f"under malformed_rows):{shown}", file=sys.stderr)
    extraction = extract_final_answers(rows)
    if not rows:
        raise SystemExit(f"{args.predictions}: no scorable rows ({len(problems)} malformed)")
    grounding_rows = [row for row in rows if row["task"] == grounding.TASK]
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in (row for row in rows if row["task"] != grounding.TASK):
        key = f"{row['dataset']}/{row['task']}" if row["task"] in REPORT_TASKS else str(row["dataset"])
        groups[key].append(row)
    not_computed: dict[str, str] = {}
    report_rows = [row for row in rows if row["task"] in REPORT_TASKS]  # ids unique: load_predictions refuses repeats
    tokens = tokenize_reports(report_rows, args, not_computed)
    reports = {key: score_reports(group, tokens, args, not_computed) for key, group in sorted(groups.items())
               if group[0]["task"] in REPORT_TASKS}
    vqa_results = {key: score_vqa(group, args) for key, group in sorted(groups.items())
                   if group[0]["task"] not in REPORT_TASKS}
    vqa_rows = [row for key, group in groups.items() if group[0]["task"] not in REPORT_TASKS for row in group]
    for key, result in [*reports.items(), *vqa_results.items()]:
        result["items_sha256"] = items_fingerprint(groups[key])
    metrics = {
        "predictions": str(args.predictions),
        "rows": len(rows),
        "items_sha256": items_fingerprint(rows),
        "malformed_rows": problems,
        "implementations": {
            "BLEU/METEOR/ROUGE-L": nlg.IMPLEMENTATION, "CheXbert": chexbert.IMPLEMENTATION,
            "F1-RadGraph": radgraph_f1.describe(args.radgraph_model, args.radgraph_level), "VQA": vqa.IMPLEMENTATION,
            "grounding": grounding.IMPLEMENTATION,
        },
        "radgraph": radgraph_f1.variant(args.radgraph_model, args.radgraph_level),
        "answer_extraction": extraction,
        "bootstrap": {"rounds": args.bootstrap, "seed": args.seed, "interval": "95% percentile"},
        "reports": reports,
        "reports_weighted_average": weighted_average(reports) if reports else {},
        "reports_weighted_average_over": average_coverage(weighted_average(reports)) if reports else {},
        "vqa": vqa_results,
        "vqa_overall": score_vqa(vqa_rows, args) if vqa_rows else {},
        "grounding": grounding.score_grounding(grounding_rows, args.bootstrap, args.seed) if grounding_rows else {},
        "not_computed": not_computed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "metrics.json", metrics)
    return metrics


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.score", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("predictions", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds (0: no intervals)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (Java, ~5 s per 1,000 reports)")
    p.add_argument("--chexbert-checkpoint", type=Path)
    p.add_argument("--chexbert-bert", type=Path, help="a local bert-base-uncased folder")
    p.add_argument("--radgraph-cache", type=Path, help="radgraph's model_cache_dir with the weights")
    p.add_argument("--radgraph-model", default=radgraph_f1.DEFAULT_MODEL, choices=sorted(radgraph_f1.MODELS),
                   help="radgraph = RadGraph v1, the paper's (default); radgraph-xl: the newer model")
    p.add_argument("--radgraph-level", default=radgraph_f1.DEFAULT_LEVEL, choices=radgraph_f1.LEVELS)
    return p


def main(argv: list[str] | None = None) -> int:
    metrics = score(parser().parse_args(argv))
    summary = {key: {name: round(entry["value"], 4) for name, entry in split.items() if isinstance(entry, dict)
                     and "value" in entry and name in (*TABLE1_METRICS, "Average", "overall")}
               for key, split in {**metrics["reports"], **metrics["vqa"]}.items()}
    print(json.dumps(summary, indent=1))
    for name, reason in sorted(metrics["not_computed"].items()):
        print(f"not computed: {name}: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
