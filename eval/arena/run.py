"""Run Report Arena: ``python -m eval.arena --model NAME=predictions.jsonl ... --out DIR``.

Models are compared on the report-generation items all of them answered. Each round draws pairs of
models (``--sampling``), an item for each pair, and has the judge compare the two reports in both
orders; a budget of ``--budget`` judged pairs (paper: 6K). Then Bradley-Terry with inverse-
propensity weights (eq. 8) gives the scores, with sandwich and bootstrap intervals and ranks that
respect overlapping intervals. Writes to DIR: ``battles.jsonl`` (every judgment), ``battle_counts``
and ``win_rates`` matrices (CSV + JSON + heatmap PNG, Fig. 2h-i), ``ranking`` (Markdown / CSV /
JSON), ``arena_vs_automated.png`` (Fig. 2j, with ``--automated`` and ``--params``) and
``summary.json``.

The ranking and ``win_rates`` use each drawn pair's two presentation orders averaged (position bias
cancels). The paper's Fig. 2i instead reports ordered pairs, so ``win_rates_ordered`` (CSV + JSON +
heatmap) gives, per ordered pair, the share of judgments the first-shown model (row) won against
the second-shown (column), ties counting half, unparseable and failed judgments left out; its diagonal is empty
and cell (a, b) + cell (b, a) need not be 1 (position bias shows as their sum's distance from 1).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from data_prep.endpoint import EndpointConfig
from data_prep.writers import atomic_write_bytes, write_json, write_jsonl
from eval.arena.bradley_terry import (
    Battles,
    bootstrap_intervals,
    elo,
    fit,
    normalised,
    normalized,
    ranks,
    sandwich_intervals,
)
from eval.arena.judges import DECIDED, VERDICTS, Battle, EndpointJudge, ReferenceJudge
from eval.arena.sampling import STRATEGIES, PairSampler
from eval.jsonl import JsonlError, read_items
from eval.predictions import PredictionsFileError, load_predictions
from eval.report import write_table
from eval.score import extract_final_answers

REPORT_TASKS = ("findings", "impression")


def shared_items(models: dict[str, Path], problems: dict[str, list[str]] | None = None
                 ) -> tuple[list[str], dict[str, dict[str, dict]]]:
    """The report items every model answered; lines left out are listed per model in ``problems``
    (and on stderr); repeated ids stop the run."""
    rows = {}
    for name, path in models.items():
        try:
            loaded, skipped = load_predictions(path)
        except PredictionsFileError as error:
            raise SystemExit(str(error)) from None
        if skipped:
            print(f"{path}: {len(skipped)} line(s) left out:" + "".join(f"\n  {p}" for p in skipped[:10]), file=sys.stderr)
        if problems is not None:
            problems[name] = skipped
        extract_final_answers(loaded)  # a whole response is judged on its final report, as eval.score scores it
        rows[name] = {row["id"]: row for row in loaded if row["task"] in REPORT_TASKS}
    common = sorted(set.intersection(*(set(r) for r in rows.values()))) if rows else []
    if not common:
        raise SystemExit("the models share no report-generation item: nothing to compare")
    return common, rows


class JudgeUnavailable(RuntimeError):
    """The judge decided no battle (an endpoint that is down, or no parseable verdict at all)."""


def run_arena(args: argparse.Namespace) -> dict:
    names = list(args.model)
    models = len(names)
    if models < 2:
        raise SystemExit("Report Arena needs at least two models")
    problems: dict[str, list[str]] = {}
    items, rows = shared_items({name: args.model[name] for name in names}, problems)
    images = {}
    if args.with_image and not args.items_file:
        raise SystemExit("--with-image needs --items-file (the evaluation items say where each image is)")
    if args.items_file:
        try:
            content = read_items(Path(args.items_file))
        except JsonlError as error:
            raise SystemExit(str(error)) from None
        problems["items_file"] = content.problems()
        for item in content.rows:
            images[item["id"]] = Path(args.items_file).parent.parent / item["images"][0]
    if args.with_image and (unseen := [item for item in items if item not in images]):
        raise SystemExit(f"--with-image: {len(unseen)} compared item(s) have no valid entry in {args.items_file} "
                         f"(e.g. {unseen[0]!r}); the judge would see some battles without the image")
    if args.judge == "reference":
        judge = ReferenceJudge()
    else:
        config = EndpointConfig(base_url=args.base_url, model=args.judge_model, api_key_env=args.api_key_env,
                                allow_remote_endpoint=args.allow_remote_endpoint, temperature=0.0, max_tokens=8,
                                concurrency=args.concurrency, max_retries=args.max_retries, timeout_s=args.timeout)
        judge = EndpointJudge(config, args.cache_dir or args.out / "cache", with_reference=not args.no_reference,
                              with_image=args.with_image)

    sampler = PairSampler(models, args.sampling, args.seed)
    item_rng = np.random.default_rng(args.seed + 1)
    unused: dict[int, list[str]] = {}  # per pair, items not yet judged for it (drawn without replacement)
    log, first, second, outcome, propensity = [], [], [], [], []
    judged = 0
    while judged < args.budget:
        drawn = sampler.sample(min(args.round, args.budget - judged))
        battles, meta = [], []
        for pair, p in drawn:
            i, j = sampler.pairs[pair]
            if not unused.get(pair):
                unused[pair] = [items[k] for k in item_rng.permutation(len(items))]
            item = unused[pair].pop()
            reference = rows[names[i]][item]["reference"]
            reference = reference if isinstance(reference, str) else " ".join(reference)
            task = rows[names[i]][item]["task"]
            for a, b in ((i, j), (j, i)):
                battles.append(Battle(item, task, rows[names[a]][item]["prediction"], rows[names[b]][item]["prediction"],
                                      reference, images.get(item)))
            meta.append((pair, p, i, j))
        verdicts = judge.judge(battles)
        for index, (pair, p, i, j) in enumerate(meta):
            # The two orders of one drawn pair are one observation: averaged, i's share of the win.
            shares = []
            for (a, b), verdict, battle in zip(((i, j), (j, i)), verdicts[2 * index : 2 * index + 2],
                                               battles[2 * index : 2 * index + 2]):
                log.append({"item": battle.item, "A": names[a], "B": names[b], "verdict": verdict, "propensity": p})
                if verdict in DECIDED:
                    score_a = {"A": 1.0, "B": 0.0, "tie": 0.5}[verdict]
                    shares.append(score_a if a == i else 1 - score_a)
            if not shares:
                continue
            share = sum(shares) / len(shares)
            first.append(i), second.append(j), outcome.append(share), propensity.append(p)
            sampler.update(pair, share, p)
        judged += len(drawn)
        if all(verdict == "failed" for verdict in verdicts):
            raise JudgeUnavailable(f"the judge answered none of the {len(verdicts)} requests of a round "
                                   f"({'; '.join(sorted(set(getattr(judge, 'errors', [])))[:3])}); verdicts already "
                                   "given are cached, so a rerun once the judge answers repeats none of them")
    if not first:
        counts = ", ".join(f"{verdict} {sum(entry['verdict'] == verdict for entry in log)}" for verdict in VERDICTS)
        raise JudgeUnavailable(f"no battle was decided ({len(log)} judgments: {counts}): nothing to rank")

    battles = Battles(np.array(first), np.array(second), np.array(outcome), np.array(propensity))
    weighted = args.sampling != "uniform"
    clip = args.clip_weights
    scores = fit(battles, models, weighted, clip)
    sandwich = sandwich_intervals(scores, battles, weighted, clip)
    boot = bootstrap_intervals(battles, models, args.bootstrap, args.seed, weighted, clip) if args.bootstrap else sandwich
    rank = ranks(scores, boot)

    counts = np.zeros((models, models), dtype=int)
    wins = np.zeros((models, models))
    for a, b, h in zip(first, second, outcome):  # one entry per drawn pair (both orders averaged)
        counts[a, b] += 1
        counts[b, a] += 1
        wins[a, b] += h
        wins[b, a] += 1 - h
    win_rates = np.divide(wins, counts, out=np.full_like(wins, np.nan), where=counts > 0)

    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "battles.jsonl", log)
    table = []
    for index in np.argsort(-scores):
        table.append({
            "rank": int(rank[index]), "model": names[index], "score": float(scores[index]),
            "score_normalized": float(normalized(scores)[index]), "score_max_abs": float(normalised(scores)[index]),
            "elo": float(elo(scores)[index]),
            "ci95_sandwich": [float(v) for v in sandwich[index]], "ci95_bootstrap": [float(v) for v in boot[index]],
            "battles": int(counts[index].sum()),
        })
    write_matrix(args.out / "battle_counts", names, counts.tolist())
    write_matrix(args.out / "win_rates", names, [[None if np.isnan(v) else round(float(v), 4) for v in row]
                                                  for row in win_rates])
    write_ranking(args.out / "ranking", table)
    heatmap(args.out / "battle_counts.png", names, counts, "Battles per pair", "d")
    heatmap(args.out / "win_rates.png", names, win_rates, "Win rate of row model against column model", ".2f")
    ordered, ordered_counts = ordered_win_rates(log, names)
    write_matrix(args.out / "win_rates_ordered", names, [[None if np.isnan(v) else round(float(v), 4) for v in row]
                                                          for row in ordered])
    heatmap(args.out / "win_rates_ordered.png", names, ordered,
            "Win rate of the first-shown model (row) against the second-shown (column)", ".2f")
    if args.automated:
        scatter(args.out / "arena_vs_automated.png", table, args.automated, args.params)
    verdicts = {v: sum(1 for entry in log if entry["verdict"] == v) for v in VERDICTS}
    summary = {
        "models": names, "items": len(items), "judged_pairs": judged, "judgments": len(log), "verdicts": verdicts,
        "judge": judge.name, "sampling": args.sampling, "inverse_propensity_weights": weighted,
        "weights_clipped_at": clip, "max_weight": float(np.max(1 / battles.propensity)) if len(battles) else None,
        "requests_sent": getattr(judge, "calls_made", 0), "ranking": table,
        "ordered_judgments": ordered_counts.tolist(),
        "score_normalized": "(1 + s / max|s|) / 2 of the centred Bradley-Terry scores s: max-absolute scaling mapped "
                            "onto [0, 1] (eval.arena.bradley_terry.normalized)",
        "malformed_rows": {name: found for name, found in problems.items() if found},
        "judge_errors": sorted(set(getattr(judge, "errors", [])))[:10],
    }
    write_json(args.out / "summary.json", summary)
    return summary


def ordered_win_rates(log: list[dict], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per ordered pair (row = shown first as A, column = shown second as B): the row model's share of
    the parseable judgments (ties half), and how many there were. NaN where a pair has none."""
    index = {name: i for i, name in enumerate(names)}
    wins = np.zeros((len(names), len(names)))
    counts = np.zeros((len(names), len(names)), dtype=int)
    for entry in log:
        if entry["verdict"] not in DECIDED:
            continue
        a, b = index[entry["A"]], index[entry["B"]]
        wins[a, b] += {"A": 1.0, "B": 0.0, "tie": 0.5}[entry["verdict"]]
        counts[a, b] += 1
    return np.divide(wins, counts, out=np.full_like(wins, np.nan), where=counts > 0), counts


def write_matrix(path: Path, names: list[str], matrix: list[list]) -> None:
    write_json(path.with_suffix(".json"), {"models": names, "matrix": matrix})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["", *names])
    for name, row in zip(names, matrix):
        writer.writerow([name, *["" if v is None else v for v in row]])
    atomic_write_bytes(path.with_suffix(".csv"), buffer.getvalue().encode())


def write_ranking(path: Path, table: list[dict]) -> None:
    write_json(path.with_suffix(".json"), table)
    header = ["rank", "model", "score", "score_normalized", "Elo", "95% CI (bootstrap)", "battles"]
    rows = [[str(row["rank"]), row["model"], f"{row['score']:.3f}", f"{row['score_normalized']:.3f}", f"{row['elo']:.0f}",
             f"[{row['ci95_bootstrap'][0]:.3f}, {row['ci95_bootstrap'][1]:.3f}]", str(row["battles"])] for row in table]
    write_table(path, header, rows)


def heatmap(path: Path, names: list[str], matrix: np.ndarray, title: str, fmt: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(1.0 + 0.7 * len(names), 0.8 + 0.6 * len(names)))
    image = axis.imshow(np.ma.masked_invalid(matrix.astype(float)), cmap="viridis")
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            if not np.isnan(float(matrix[i, j])) and i != j:
                axis.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize=7, color="white")
    axis.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def scatter(path: Path, table: list[dict], automated: dict[str, Path], params: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4))
    coverage: set[str] = set()
    for row in table:
        metrics_path = automated.get(row["model"])
        if metrics_path is None:
            continue
        metrics = json.loads(Path(metrics_path).read_text())
        average = metrics.get("reports_weighted_average", {}).get("Average")
        if average is None:
            continue
        coverage.add((metrics.get("reports_weighted_average_over") or {}).get("label", "Average"))
        size = 40 + 20 * np.sqrt(params.get(row["model"], 1e9) / 1e9)
        axis.scatter(average, row["score_normalized"], s=size, alpha=0.6)
        axis.annotate(row["model"], (average, row["score_normalized"]), fontsize=7)
    axis.set_xlabel(f"automated metrics, weighted average ({'; '.join(sorted(coverage)) or 'Average'})", fontsize=8)
    axis.set_ylabel("Report Arena score (normalized to [0, 1])")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def at_least(lowest: int):
    """argparse type: an integer >= ``lowest`` (``--round 0`` looped forever, ``--budget 0`` judged nothing)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest}, got {value}")
        return value

    return parse


def pairs_argument(kind):
    def parse(values: list[str]) -> dict:
        parsed = {}
        for value in values or []:
            name, _, rest = value.partition("=")
            if not rest:
                raise SystemExit(f"expected NAME=VALUE, got {value!r}")
            parsed[name] = kind(rest)
        return parsed

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.arena", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="NAME=predictions.jsonl (twice or more)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=at_least(1), default=6000, help="judged pairs (each judged in both orders)")
    parser.add_argument("--round", type=at_least(1), default=200, help="pairs drawn per round between updates")
    parser.add_argument("--sampling", choices=STRATEGIES, default="uniform",
                        help="uniform (default: see the README's benchmark), active (paper eq. 7), active_mixed")
    parser.add_argument("--clip-weights", type=float, help="cap inverse-propensity weights at this value")
    parser.add_argument("--bootstrap", type=at_least(0), default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge", choices=["reference", "endpoint"], default="endpoint")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--judge-model", default="Qwen/Qwen2.5-72B-Instruct")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--allow-remote-endpoint", action="store_true",
                        help="allow a non-local judge (reports of credentialed data leave your site)")
    parser.add_argument("--concurrency", type=at_least(1), default=8)
    parser.add_argument("--max-retries", type=at_least(0), default=4)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--no-reference", action="store_true", help="judge without the reference report")
    parser.add_argument("--with-image", action="store_true", help="show the judge the X-ray (needs --items-file)")
    parser.add_argument("--items-file", help="the evaluation items (for images)")
    parser.add_argument("--automated", action="append", help="NAME=metrics.json, for the arena-vs-metrics figure")
    parser.add_argument("--params", action="append", help="NAME=parameter count, circle sizes of that figure")
    args = parser.parse_args(argv)
    args.model = pairs_argument(Path)(args.model)
    args.automated = pairs_argument(Path)(args.automated)
    args.params = pairs_argument(float)(args.params)
    try:
        summary = run_arena(args)
    except JudgeUnavailable as error:
        parser.exit(2, f"eval.arena: {error}\n")
    if summary["verdicts"]["failed"]:
        print(f"eval.arena: {summary['verdicts']['failed']} judgments failed and were left out (not cached: a rerun "
              f"retries them): {summary['judge_errors'][:3]}", file=sys.stderr)
    for row in summary["ranking"]:
        low, high = row["ci95_bootstrap"]
        print(f"{row['rank']:>3}  {row['model']:24s} {row['score']:+.3f}  [{low:+.3f}, {high:+.3f}]  Elo {row['elo']:.0f}")
    print(f"verdicts: {summary['verdicts']}; requests sent: {summary['requests_sent']}; written to {args.out}")
    return 0
