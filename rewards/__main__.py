"""Score rollouts with the reward from the command line.

    python -m rewards score rollouts.jsonl [--kwargs '{"preset": "upstream"}'] [--output scores.jsonl]
    python -m rewards compare      # the paper and upstream presets side by side on example responses
    python -m rewards validate grpo/train.parquet [--answer-key answer] [--allow-plain]

``score`` reads JSON Lines with a ``response`` and a ``ground_truth`` (or ``answer``) field per line,
as EasyR1 would pass them. Lines that are not JSON objects with both fields are skipped and
counted, with their line numbers; the output (the input rows plus a ``reward`` dict) is written
atomically.

``validate`` checks the answer column of a GRPO dataset (JSON Lines or parquet, as EasyR1 reads it) before
training: every value must be a ground-truth JSON object that follows the schema, or with
``--allow-plain`` an upstream-style plain string. It lists every bad row and exits 1 if any.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from rewards.deepmedix import SCORE_KEYS, RewardConfig, RewardConfigError, score_batch
from rewards.frame import Frame
from rewards.ground_truth import GroundTruthError, encode_ground_truth, ground_truth_from_dict, parse_ground_truth


class LineProblem(str):
    """Why a line is not a JSON row (kept apart from a row that is itself a JSON string)."""


def json_lines(path: Path):
    """(line number, row or why the line is not one) for each non-blank line of a JSON Lines file.
    A line that is not UTF-8 or not JSON is a counted problem, never a traceback that loses the rest."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                yield number, LineProblem(f"not UTF-8 (byte {error.start})")
            except json.JSONDecodeError as error:
                yield number, LineProblem(f"not JSON ({error.msg})")


def read_rollouts(path: Path) -> tuple[list[dict], list[str]]:
    rows, problems = [], []
    for number, row in json_lines(path):
        if isinstance(row, LineProblem):
            problems.append(f"line {number}: {row}")
            continue
        if not isinstance(row, dict) or "response" not in row or not ({"ground_truth", "answer"} & set(row)):
            problems.append(f"line {number}: needs 'response' and 'ground_truth' (or 'answer')")
            continue
        rows.append(row)
    return rows, problems


def write_jsonl_atomically(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def command_score(args: argparse.Namespace) -> int:
    try:
        config = RewardConfig.from_kwargs(json.loads(args.kwargs))
    except (json.JSONDecodeError, RewardConfigError) as error:
        print(f"error: --kwargs: {error}", file=sys.stderr)
        return 2
    if not args.rollouts.is_file():
        print(f"error: {args.rollouts} does not exist", file=sys.stderr)
        return 2
    rows, problems = read_rollouts(args.rollouts)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    scores = score_batch(
        [row["response"] for row in rows], [row.get("ground_truth", row.get("answer")) for row in rows], config
    )
    if args.output:
        write_jsonl_atomically([{**row, "reward": score} for row, score in zip(rows, scores)], args.output)
    print(f"scored {len(rows)} rollouts, skipped {len(problems)} malformed lines ({config.preset} preset)")
    for key in scores[0] if scores else SCORE_KEYS:
        mean = sum(score[key] for score in scores) / len(scores) if scores else 0.0
        print(f"  {key:22s} {mean:8.4f}")
    return 0


def example_rollouts() -> list[tuple[str, str, str]]:
    """(what it shows, response, ground truth): where the two presets disagree, and why."""
    frame = Frame(448, 532)
    yes = encode_ground_truth("closed", "yes", frame)
    report = encode_ground_truth("open_ended", "Small left pleural effusion. No pneumothorax.", frame)
    lungs = encode_ground_truth("multi_object", ["left lung", "right lung"], frame)
    think = "<think>Blunted left costophrenic angle [30, 330, 140, 450]; heart [150, 200, 330, 380].</think>"
    return [
        ("correct, two boxes", f"{think} The answer is: \\boxed{{yes}}", yes),
        ("correct, trailing period", f"{think} \\boxed{{Yes.}}", yes),
        ("box below 532 but past 512", "<think>Effusion at [30, 400, 140, 520].</think>\\boxed{yes}", yes),
        ("box spaced, decimals", "<think>Effusion at [ 30.5, 330 , 140,450 ].</think>\\boxed{yes}", yes),
        ("empty answer box", f"{think}\\boxed{{}}", yes),
        ("two think blocks", f"{think}{think}\\boxed{{yes}}", yes),
        ("report, same words", f"{think}\\boxed{{Small left pleural effusion. No pneumothorax.}}", report),
        ("report, shuffled words", f"{think}\\boxed{{No effusion. Small left pleural pneumothorax.}}", report),
        ("list with a duplicate", f"{think}\\boxed{{left lung|left lung|right lung}}", lungs),
        ("list, comma separated", f"{think}\\boxed{{left lung, right lung}}", lungs),
    ]


def command_compare(_: argparse.Namespace) -> int:
    examples = example_rollouts()
    responses, truths = [r for _, r, _ in examples], [t for _, _, t in examples]
    paper = score_batch(responses, truths, RewardConfig())
    upstream = score_batch(responses, truths, RewardConfig(preset="upstream"))
    print(f"{'example':30s} {'paper':>7s} {'upstream':>9s}   answer / format / coordinate (paper | upstream)")
    for (name, _, _), p, u in zip(examples, paper, upstream):
        terms = " | ".join(f"{s['answer']:.2f} / {s['format']:.0f} / {s['coordinate']:+.2f}" for s in (p, u))
        print(f"{name:30s} {p['overall']:7.3f} {u['overall']:9.3f}   {terms}")
    return 0


def ground_truth_problem(value: object, allow_plain: bool) -> str | None:
    """Why an answer-column value would not train as intended; None if it is fine."""
    if not isinstance(value, str):
        return f"answer must be a string (EasyR1 collates other types into arrays), got {type(value).__name__}"
    try:
        payload = json.loads(value)
    except json.JSONDecodeError:
        payload = None
    if isinstance(payload, dict):
        try:
            ground_truth_from_dict(payload)
        except GroundTruthError as error:
            return str(error)
        return None
    if not allow_plain:
        return "answer is not a ground-truth JSON object (pass --allow-plain for upstream-style answers)"
    try:
        parse_ground_truth(value)
    except GroundTruthError as error:
        return str(error)
    return None


def dataset_rows(path: Path):
    """(line or row number, row or a parse problem) for a JSON Lines or parquet dataset."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for number, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield number, row
        return
    yield from json_lines(path)


def command_validate(args: argparse.Namespace) -> int:
    if not args.dataset.is_file():
        print(f"error: {args.dataset} does not exist", file=sys.stderr)
        return 2
    rows = bad = 0
    for number, row in dataset_rows(args.dataset):
        rows += 1
        if isinstance(row, LineProblem):
            problem = row
        elif not isinstance(row, dict) or args.answer_key not in row:
            problem = f"no {args.answer_key!r} field"
        else:
            problem = ground_truth_problem(row[args.answer_key], args.allow_plain)
        if problem:
            bad += 1
            print(f"{args.dataset}:{number}: {problem}", file=sys.stderr)
    print(f"{args.dataset}: {rows - bad} of {rows} rows have a valid ground truth")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rewards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score a JSONL file of rollouts")
    score.add_argument("rollouts", type=Path)
    score.add_argument("--kwargs", default="{}", help="reward kwargs as JSON, as in reward_function_kwargs")
    score.add_argument("--output", type=Path, help="write rows with their scores here (JSONL)")
    score.set_defaults(run=command_score)
    compare = commands.add_parser("compare", help="paper vs upstream preset on example responses")
    compare.set_defaults(run=command_compare)
    validate = commands.add_parser("validate", help="check the ground truths of a GRPO dataset")
    validate.add_argument("dataset", type=Path)
    validate.add_argument("--answer-key", default="answer", help="EasyR1's data.answer_key")
    validate.add_argument("--allow-plain", action="store_true", help="accept upstream-style plain answers")
    validate.set_defaults(run=command_validate)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
