"""Reward throughput: our batch reward against a straightforward per-sample implementation.

The baseline scores each response on its own, the way the released reward does: it decodes the
ground truth every time and computes the open-ended answer score with nltk's ``sentence_bleu``
(BLEU-1 and BLEU-4, smoothing method2) and rouge-score's ``RougeScorer(["rougeL"])`` per response,
on the same word tokens. Format and coordinate terms follow the same rules in both (the baseline
calls ``format_score``, ``last_boxed`` and ``first_reasoning`` one by one; ours reads a response
once, ``parse_response``), so the ratio measures the answer-score path and what a batch shares:
identical responses, answers and references within it are worked on once. In "all answers
distinct" every response has a unique answer, so that no answer can be shared: it shows what the
sharing costs when it cannot help (each prompt's n rollouts still share their ground truth, as in
every GRPO batch); in "converged VQA groups" each VQA prompt's rollouts repeat two responses, as
late in training, where whole responses are shared. Both must agree on every score exactly (0 difference:
ours repeats nltk's and rouge-score's floating-point steps), and ours in a batch must equal ours scored
one response at a time exactly. Each side is timed in CPU seconds of the process (other jobs on a
shared machine do not count) as the fastest of ``--repeats`` runs, the two sides interleaved,
every run starting with empty caches.

    python benchmarks/reward_throughput.py            # 8,000 responses per workload (1,000 prompts x 8)
    python benchmarks/reward_throughput.py --prompts 100 --rollouts 8
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu  # noqa: E402
from rouge_score import rouge_scorer  # noqa: E402

from rewards.components import (  # noqa: E402
    closed_answer_score,
    coordinate_score,
    format_score,
    judge_reasoning_boxes,
    multi_object_f1,
)
from rewards.deepmedix import compute_score  # noqa: E402
from rewards.frame import Frame  # noqa: E402
from rewards.ground_truth import _parse_ground_truth_text, encode_ground_truth, ground_truth_from_dict  # noqa: E402
from rewards.response import first_reasoning, last_boxed  # noqa: E402
from rewards.text_overlap import prepare_reference, word_tokens  # noqa: E402

FINDINGS = [
    "The heart size is normal.", "The cardiomediastinal silhouette is within normal limits.",
    "There is a small left pleural effusion.", "No pneumothorax is seen.", "The lungs are clear.",
    "Mild pulmonary vascular congestion is present.", "There is left lower lobe atelectasis.",
    "An endotracheal tube terminates 4 cm above the carina.", "Degenerative changes of the thoracic spine.",
    "No focal consolidation is identified.", "Stable moderate cardiomegaly.", "Right basilar opacity may reflect pneumonia.",
]
OBJECTS = ["left lung", "right lung", "heart", "mediastinum", "left lower lobe", "right upper lobe", "trachea"]


def make_ground_truths(n: int, rng: random.Random, report_share: float) -> list[str]:
    """Ground truths of a GRPO batch: ``report_share`` reports, the rest 2:1 closed / list VQA."""
    truths = []
    for i in range(n):
        frame = Frame(28 * rng.randint(14, 20), 28 * rng.randint(14, 20))
        kind = rng.random()
        if kind < report_share:
            answer = " ".join(rng.sample(FINDINGS, rng.randint(3, 7)))
            truths.append(encode_ground_truth("open_ended", answer, frame, sample_id=f"r{i}"))
        elif kind < report_share + (1 - report_share) * 2 / 3:
            truths.append(encode_ground_truth("closed", rng.choice(["yes", "no", "pa", "ap"]), frame, sample_id=f"c{i}"))
        else:
            truths.append(encode_ground_truth("multi_object", rng.sample(OBJECTS, rng.randint(1, 3)), frame))
    return truths


def make_response(truth_json: str, rng: random.Random, distinct: int | None = None) -> str:
    """A rollout for ``truth_json``; with ``distinct`` (a number unique in the batch) its answer
    text is unique too, so that nothing in the batch can be shared."""
    truth = json.loads(truth_json)
    boxes = " ".join(
        f"[{rng.randint(0, 200)}, {rng.randint(0, 200)}, {rng.randint(210, 560)}, {rng.randint(210, 560)}]"
        for _ in range(rng.randint(0, 4))
    )
    if truth["task"] == "open_ended":
        sentences = truth["answer"].split(". ")
        rng.shuffle(sentences)
        answer = ". ".join(sentences[: rng.randint(1, len(sentences))] + rng.sample(FINDINGS, rng.randint(0, 3)))
    elif truth["task"] == "closed":
        answer = rng.choice(["yes", "no", "Yes.", "PA"])
    else:
        answer = ", ".join(rng.sample(OBJECTS, rng.randint(1, 3)))
    if distinct is not None:
        answer = f"{answer} (rollout {distinct})"
    reasoning = " ".join(rng.sample(FINDINGS, 3))
    return f"<think>{reasoning} Regions: {boxes}</think> The answer is: \\boxed{{{answer}}}"


_SMOOTHING = SmoothingFunction().method2
_ROUGE_L = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def baseline_score(response: str, ground_truth: str) -> dict[str, float]:
    """Per-sample reference: nltk + rouge-score per response, no caching (paper preset defaults)."""
    truth = ground_truth_from_dict(json.loads(ground_truth))
    answer = last_boxed(response)
    if answer is None:
        raw = 0.0
    elif truth.task == "closed":
        raw = closed_answer_score(answer, truth.answer)
    elif truth.task == "multi_object":
        raw = multi_object_f1(answer, truth.answer)
    else:
        hyp, ref = list(word_tokens(answer)), list(word_tokens(truth.answer))
        bleu_1 = sentence_bleu([ref], hyp, weights=(1, 0, 0, 0), smoothing_function=_SMOOTHING)
        bleu_4 = sentence_bleu([ref], hyp, weights=(0.25,) * 4, smoothing_function=_SMOOTHING)
        rouge_l = _ROUGE_L.score(truth.answer, answer)["rougeL"].fmeasure
        raw = (bleu_1 + bleu_4 + rouge_l) / 3
    boxes, left = judge_reasoning_boxes(first_reasoning(response), truth.frame)
    answer_term, form, coordinate = 1.5 * raw, format_score(response), coordinate_score(len(boxes), left)
    return {"overall": 0.9 * answer_term + 0.1 * form + coordinate}


def timed(fn, *args):
    """(result, CPU seconds of this process): other jobs on a shared machine do not count."""
    start = time.process_time()
    result = fn(*args)
    return result, time.process_time() - start


def clear_caches() -> None:
    """Forget every parsed ground truth and prepared reference, so no run profits from an earlier
    one (within a run, a GRPO group still shares its reference)."""
    prepare_reference.cache_clear()
    _parse_ground_truth_text.cache_clear()


def best_of(repeats: int, ours, baseline) -> tuple[tuple, tuple]:
    """The fastest of ``repeats`` cold-cache runs of each, ours and the baseline's interleaved so
    that both see the same machine (after one warm-up of each)."""
    ours(), baseline()
    runs: tuple[list, list] = ([], [])
    for _ in range(repeats):
        for side, fn in zip(runs, (ours, baseline)):
            clear_caches()
            side.append(timed(fn))
    return tuple(min(side, key=lambda run: run[1]) for side in runs)


WORKLOADS = {  # name -> (share of report-generation prompts, kind of VQA group)
    "report rollouts": (1.0, "sampled"),
    "mixed GRPO batch": (0.4, "sampled"),
    "mixed, all answers distinct": (0.4, "distinct"),  # no response or answer repeats: nothing to share
    "mixed, converged VQA groups": (0.4, "converged"),  # each VQA group: 2 distinct responses
}


def make_group(truth: str, rng: random.Random, rollouts: int, kind: str, first: int) -> list[str]:
    """One prompt's rollouts. ``sampled``: each drawn on its own (reasoning and boxes differ, short
    answers repeat); ``distinct``: every answer unique too; ``converged``: a VQA group repeats two
    responses, as a policy does late in GRPO training on a question it has learnt."""
    if kind == "distinct":
        return [make_response(truth, rng, first + n) for n in range(rollouts)]
    if kind == "converged" and json.loads(truth)["task"] != "open_ended":
        pair = [make_response(truth, rng), make_response(truth, rng)]
        return [rng.choice(pair) for _ in range(rollouts)]
    return [make_response(truth, rng) for _ in range(rollouts)]


def run_workload(name: str, share: float, kind: str, args: argparse.Namespace) -> tuple[float, float]:
    rng = random.Random(args.seed)
    truths = make_ground_truths(args.prompts, rng, share)
    inputs = [
        {"response": response, "response_length": 0, "ground_truth": truth}
        for i, truth in enumerate(truths)
        for response in make_group(truth, rng, args.rollouts, kind, args.rollouts * i)
    ]
    (ours, ours_s), (baseline, baseline_s) = best_of(
        args.repeats, lambda: compute_score(inputs),
        lambda: [baseline_score(i["response"], i["ground_truth"]) for i in inputs])
    differences = [abs(a["overall"] - b["overall"]) for a, b in zip(ours, baseline)]
    if any(differences):
        raise SystemExit(f"{name}: ours differs from the baseline on {sum(map(bool, differences))} of "
                         f"{len(inputs)} responses, by at most {max(differences)}")
    # What the batch shares must change nothing: ours, one response at a time (nothing to share).
    alone = [compute_score([item])[0] for item in inputs]
    if alone != ours:
        raise SystemExit(f"{name}: batch scores differ from scoring each response alone")
    label = f"{name} ({len(inputs)} responses, {share:.0%} reports)"
    print(f"{label:58s} {baseline_s:12.3f} {ours_s:9.3f} {len(inputs) / ours_s:9.0f} {baseline_s / ours_s:9.1f}x")
    return baseline_s, ours_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--rollouts", type=int, default=8, help="responses per prompt (GRPO group size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side; the fastest is reported")
    args = parser.parse_args()

    print(f"{'workload':58s} {'baseline s':>12s} {'ours s':>9s} {'resp/s':>9s} {'speed-up':>10s}")
    for name, (share, kind) in WORKLOADS.items():
        run_workload(name, share, kind, args)

    rng = random.Random(args.seed)
    huge_truth = encode_ground_truth("open_ended", " ".join(FINDINGS), Frame(448, 448))
    filler = " ".join(rng.choice(FINDINGS) for _ in range(3000))
    huge = f"<think>{filler[:50_000]} [10, 10, 100, 100]</think> \\boxed{{{filler[:50_000]}}}"
    huge_inputs = [{"response": huge, "response_length": 0, "ground_truth": huge_truth}]
    (_, huge_ours_s), (_, huge_baseline_s) = best_of(
        args.repeats, lambda: compute_score(huge_inputs), lambda: baseline_score(huge, huge_truth))
    label = f"one {len(huge) // 1000} KB report response (ms)"
    print(f"{label:58s} {1000 * huge_baseline_s:12.1f} {1000 * huge_ours_s:9.1f} {'':9s} "
          f"{huge_baseline_s / huge_ours_s:9.1f}x")
    print("\nScores equal the baseline's exactly on every response, and ours in a batch equal ours scored one "
          "response at a time exactly (both checked).")


if __name__ == "__main__":
    main()
