"""VQA accuracy as the paper reports it: exact match for closed-ended questions, set F1 for
multi-object ones, per dataset and per question type, and overall (the mean over questions).

The per-question scores are the reward's own answer functions (``rewards.components``), so
training and evaluation normalise answers with one implementation.
"""

from __future__ import annotations

from rewards.components import closed_answer_score, multi_object_f1

IMPLEMENTATION = "exact match after rewards.normalize (closed); item-set F1 (multi-object)"


def answer_kind(row: dict) -> str:
    """From the row, else inferred: a list reference is multi-object, a string is closed."""
    kind = row.get("answer_kind")
    if kind in ("closed", "multi_object"):
        return kind
    return "multi_object" if isinstance(row["reference"], list) else "closed"


def question_score(row: dict) -> float:
    reference = row["reference"]
    if answer_kind(row) == "multi_object":
        items = tuple(reference) if isinstance(reference, list) else tuple(reference.split("|"))
        return multi_object_f1(row["prediction"], items)
    return closed_answer_score(row["prediction"], reference if isinstance(reference, str) else ", ".join(reference))


def per_object_recall(rows: list[dict]) -> dict[str, dict[str, float]]:
    """For each object named in multi-object references (abnormalities, locations, attributes), the
    share of its questions whose prediction names it (the paper's per-object scores, Fig. 3c-d)."""
    from rewards.normalize import answer_items

    found: dict[str, list[int]] = {}
    for row in rows:
        if answer_kind(row) != "multi_object":
            continue
        reference = row["reference"] if isinstance(row["reference"], list) else row["reference"].split("|")
        predicted = answer_items(row["prediction"])
        for item in answer_items(list(reference)):
            found.setdefault(item, []).append(int(item in predicted))
    return {item: {"recall": sum(hits) / len(hits), "n": len(hits)} for item, hits in sorted(found.items())}


def per_object_f1(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per object over the multi-object questions (the paper's Fig. 3c-d: F1 per observation): true
    positives are questions whose reference and prediction both name it, false positives name it only
    in the prediction, false negatives only in the reference; ``n`` = questions whose reference names it."""
    from rewards.normalize import answer_items

    counts: dict[str, list[int]] = {}  # item -> [tp, fp, fn]
    for row in rows:
        if answer_kind(row) != "multi_object":
            continue
        reference = row["reference"] if isinstance(row["reference"], list) else row["reference"].split("|")
        expected, predicted = answer_items(list(reference)), answer_items(row["prediction"])
        for item in expected | predicted:
            entry = counts.setdefault(item, [0, 0, 0])
            entry[0 if item in expected and item in predicted else 1 if item in predicted else 2] += 1
    result = {}
    for item, (tp, fp, fn) in sorted(counts.items()):
        if tp + fn == 0:
            continue  # only ever predicted, never asked about: no support
        result[item] = {"F1": 2 * tp / (2 * tp + fp + fn), "recall": tp / (tp + fn),
                        "precision": tp / (tp + fp) if tp + fp else 0.0, "n": tp + fn}
    return result
