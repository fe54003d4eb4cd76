"""Report metrics at XrayBench scale: our BLEU-1..4 and ROUGE-L against pycocoevalcap's, side by side.

Both score the same PTB-tokenised texts (4,547 report pairs by default, XrayBench's report count);
the script checks that every value agrees to 1e-4 and prints the time of each and the ratio.

    python benchmarks/nlg_metrics.py [--pairs 4547] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402

from eval.nlg import bleu_counts, ptb_tokenize, rouge_l_scores  # noqa: E402

SENTENCES = [
    "The heart size is normal.", "The lungs are clear.", "There is no pleural effusion or pneumothorax.",
    "Small left pleural effusion with adjacent atelectasis.", "Mild pulmonary vascular congestion.",
    "Stable moderate cardiomegaly.", "No focal consolidation is seen.", "Degenerative changes of the spine.",
    "An endotracheal tube terminates 4 cm above the carina.", "Right basilar opacity may reflect pneumonia.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4547)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    hypotheses = [" ".join(rng.sample(SENTENCES, rng.randint(1, 6))) for _ in range(args.pairs)]
    references = [" ".join(rng.sample(SENTENCES, rng.randint(1, 6))) for _ in range(args.pairs)]
    start = time.perf_counter()
    tokens_h, tokens_r = ptb_tokenize(hypotheses), ptb_tokenize(references)
    tokenize_s = time.perf_counter() - start

    start = time.perf_counter()
    gts, res = {i: [r] for i, r in enumerate(tokens_r)}, {i: [h] for i, h in enumerate(tokens_h)}
    theirs = list(Bleu(4).compute_score(gts, res, verbose=0)[0]) + [Rouge().compute_score(gts, res)[0]]
    theirs_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = bleu_counts(tokens_h, tokens_r).score() + [float(rouge_l_scores(tokens_h, tokens_r).mean())]
    ours_s = time.perf_counter() - start

    names = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"]
    worst = max(abs(a - b) for a, b in zip(ours, theirs))
    print(f"{args.pairs} report pairs; PTB tokenisation (shared, Java): {tokenize_s:.2f} s\n")
    print(f"{'metric':10s} {'pycocoevalcap':>14s} {'ours':>10s}")
    for name, a, b in zip(names, theirs, ours):
        print(f"{name:10s} {a:14.6f} {b:10.6f}")
    print(f"\n{'BLEU + ROUGE-L time':24s} pycocoevalcap {theirs_s:.2f} s, ours {ours_s:.2f} s, "
          f"ratio {theirs_s / ours_s:.1f}x; max difference {worst:.1e}")
    if worst > 1e-4:
        raise SystemExit("values disagree by more than 1e-4")


if __name__ == "__main__":
    main()
