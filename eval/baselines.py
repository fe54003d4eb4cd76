"""The paper's Table 1 models side by side: inference per model card, then scores and one report.

    python -m eval.baselines --models qwen2.5-vl-7b qwen2.5-vl-7b-think medgemma \\
        --items-file <data>/test/xraybench.jsonl --out outputs/baselines [--run ours=<run>/eval]

For each card (``recipes/eval/models/<name>.yaml``, ``eval.model_cards``): ``eval.infer`` with the
card's backend, prompt style, sampling and answer parsing into ``OUT/<name>/predictions.jsonl``
(endpoint cards: against the server you started with the card's ``serve.command``; a rerun resumes
and sends no request twice), then ``eval.score`` into ``OUT/<name>/metrics.json``; finally
``eval.report`` over every scored model (and any ``--run NAME=DIR`` already scored, e.g. our run's
``eval`` folder) into ``OUT/report``. ``OUT/baselines.md`` / ``.json`` say how each model was run.

Cards with ``backend: external`` (models no engine serves, e.g. LLaVA-Rad) take a predictions file
written by the model's own code: ``--predictions llava-rad=preds.jsonl`` (the predictions schema of
``eval.predictions``); any card can be given one this way. A model whose inference fails (endpoint
down, items without a reply) is reported and left out of the report; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from data_prep.endpoint import public_url, redact
from data_prep.writers import atomic_write_bytes, write_json
from eval.model_cards import ROOT, CardError, infer_overrides, load_card


def parse_pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"{flag} {value!r}: expected NAME=VALUE")
        pairs[name] = rest
    return pairs


def parse_sets(values: list[str]) -> dict[str, list[str]]:
    """``--set NAME:key=value`` -> {NAME: ["key=value", ...]} (eval.infer keys, OmegaConf dot-list)."""
    sets: dict[str, list[str]] = {}
    for value in values:
        name, sep, override = value.partition(":")
        if not sep or "=" not in override:
            raise ValueError(f"--set {value!r}: expected NAME:key=value (e.g. qwen2.5-vl-32b:endpoint.base_url=...)")
        sets.setdefault(name, []).append(override)
    return sets


def infer_config(card: dict[str, Any], args: argparse.Namespace, out: Path, sets: list[str]):
    base = OmegaConf.load(ROOT / "recipes" / "eval" / "xraybench.yaml")
    base.pop("hydra")
    values = infer_overrides(card)
    values.update(items_file=str(args.items_file), out=str(out), limit=args.limit,
                  image_root=str(args.image_root) if args.image_root else None)
    if card["backend"] == "endpoint":
        concurrency = card["endpoint"].get("concurrency", base.endpoint.concurrency)
        values["batch_size"] = 4 * concurrency  # written every batch; a batch keeps the threads busy
        if args.allow_remote_endpoint:
            values["endpoint"]["allow_remote_endpoint"] = True
    cfg = OmegaConf.merge(base, values, OmegaConf.from_dotlist(sets))
    return cfg


def describe(card: dict[str, Any]) -> list[str]:
    prompt = "task prompt + reasoning-format prompt" if card["prompt"]["reasoning_format"] else "task prompt only"
    if card["prompt"]["system"]:
        prompt += f"; system: {card['prompt']['system']!r}"
    s = card["sampling"]
    sampling = f"T={s['temperature']}, top-p={s['top_p']}, max {s['max_new_tokens']} tokens, seed {s['seed']}"
    served = card["serve"]["engine"] if card["backend"] == "endpoint" else card["backend"]
    parsing = card["parsing"]["answer"] + (", report header stripped" if card["parsing"]["strip_report_header"] else "")
    return [card["paper_name"], card["name"], card["weights"], served, prompt, sampling, parsing]


def run_model(card: dict[str, Any], args: argparse.Namespace, sets: list[str], given: str | None) -> dict[str, Any]:
    from eval import score
    from eval.infer import infer

    folder = args.out / card["name"]
    predictions = folder / "predictions.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"card": card["name"], "paper_name": card["paper_name"], "backend": card["backend"],
                              "weights": card["weights"]}
    if given is not None:
        source = Path(given)
        if not source.is_file():
            return {**result, "status": "failed", "error": f"--predictions {source}: no such file"}
        if source.resolve() != predictions.resolve():
            atomic_write_bytes(predictions, source.read_bytes())
        result["predictions_from"] = str(source)
    elif card["backend"] == "external":
        return {**result, "status": "failed", "error": (
            f"{card['name']} has no engine or backend here ({card['serve']['notes'].strip()}); write its "
            f"predictions with the model's own code and pass --predictions {card['name']}=FILE")}
    else:
        cfg = infer_config(card, args, predictions, sets)
        if cfg.backend == "endpoint":
            result.update(base_url=public_url(str(cfg.endpoint.base_url)), served_model=cfg.endpoint.model)
        try:
            result["inference"] = infer(cfg)
        except Exception as error:  # noqa: BLE001 - one model's failure must not stop the others
            # written to baselines.json and the console: no user:password@ of any URL the error names
            return {**result, "status": "failed", "error": redact(f"{type(error).__name__}: {error}", [])}
        if result["inference"].get("failed"):
            return {**result, "status": "failed",
                    "error": f"{result['inference']['failed']} items got no reply; rerun to retry only them"}
    try:
        score.main([str(predictions), "--out", str(folder), *args.score_args])
    except SystemExit as error:
        return {**result, "status": "failed", "error": f"eval.score: {error}"}
    return {**result, "status": "scored", "folder": str(folder)}


def write_summary(out: Path, cards: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    header = ["paper row", "card", "weights", "served by", "prompt", "sampling", "answer parsing", "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for card, result in zip(cards, results):
        status = result["status"] if result["status"] == "scored" else f"failed: {result['error']}"
        lines.append("| " + " | ".join([*describe(card), status]).replace("\n", " ") + " |")
    notes = ["", "Not verified in this project (no GPU and no weights there; the cards' `unverified`):", ""]
    notes += [f"- {card['name']}: {' '.join(card['unverified'].split())}" for card in cards]
    atomic_write_bytes(out / "baselines.md", ("\n".join(["# Baselines", "", *lines, *notes]) + "\n").encode())
    write_json(out / "baselines.json", {"models": results})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.baselines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="card names (recipes/eval/models), space/comma separated")
    parser.add_argument("--items-file", type=Path, required=True)
    parser.add_argument("--image-root", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, help="only the first N items (debugging)")
    parser.add_argument("--predictions", action="append", default=[], help="NAME=FILE: score this file for card NAME")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="NAME:key=value: an eval.infer override for one model (e.g. endpoint.base_url=...)")
    parser.add_argument("--run", action="append", default=[], help="NAME=DIR: an already scored run for the report")
    parser.add_argument("--allow-remote-endpoint", action="store_true",
                        help="let endpoint cards send images to non-local base URLs (credentialed data: only "
                             "where your data use agreement allows)")
    parser.add_argument("--score-args", default="", help='eval.score arguments, e.g. "--bootstrap 0"')
    args = parser.parse_args(argv)
    args.score_args = args.score_args.split()
    names = [name for value in args.models for name in value.replace(",", " ").split()]
    if len(set(names)) != len(names):
        parser.error(f"--models: a model is listed twice: {names}")
    try:
        cards = [load_card(name) for name in names]  # every card checked before any long run
    except CardError as error:
        parser.error(str(error))
    try:
        given = parse_pairs(args.predictions, "--predictions")
        sets = parse_sets(args.sets)
        parse_pairs(args.run, "--run")
    except ValueError as error:
        parser.error(str(error))
    from eval.report import run_folders

    runs = run_folders(parser, args.run, "metrics.json")  # checked now, not after every model's inference
    for name in [*given, *sets]:
        if name not in names:
            parser.error(f"{name!r} is not among --models {names}")
    if not args.items_file.is_file() and len(given) < len(names):
        parser.error(f"--items-file {args.items_file}: no such file")

    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for card in cards:
        print(f"== {card['paper_name']} ({card['name']})", file=sys.stderr)
        results.append(run_model(card, args, sets.get(card["name"], []), given.get(card["name"])))
        if results[-1]["status"] != "scored":
            print(f"   {card['name']}: {results[-1]['error']}", file=sys.stderr)
    write_summary(args.out, cards, results)
    scored = {result["card"]: result["folder"] for result in results if result["status"] == "scored"}
    report_runs = {**scored, **runs}
    if report_runs:
        from eval import report

        if (args.out / "report").exists():
            shutil.rmtree(args.out / "report")  # one report of this run's models, no stale figure
        report.main([arg for name, folder in report_runs.items() for arg in ("--run", f"{name}={folder}")]
                    + ["--out", str(args.out / "report")])
    failed = [result["card"] for result in results if result["status"] != "scored"]
    print(json.dumps({"scored": sorted(scored), "failed": failed, "report": str(args.out / "report"),
                      "summary": str(args.out / "baselines.md")}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
