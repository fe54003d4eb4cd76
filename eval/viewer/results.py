"""The paper's Table 2 from the stored labels: per group and model, the five ratings, their average
over groups, and the agreement between groups (percent agreement and Cohen's kappa).

Relevance and correctness are means over rated steps, completeness over rated traces; a preference
is the share of pairs in which the model was preferred. A group's label for one (item, model, step,
dimension) is its annotators' majority (ties: the alphabetically first annotator); agreement
compares the two groups on the labels both gave.
"""

from __future__ import annotations

from collections import Counter, defaultdict

DIMENSIONS = ("relevance", "correctness", "completeness", "grounded_preference", "overall_preference")
PREFERENCES = ("grounded_preference", "overall_preference")


def cohen_kappa(first: list, second: list) -> float:
    """Cohen's kappa of two raters over the same items (1 when they agree perfectly)."""
    n = len(first)
    if n == 0:
        return float("nan")
    observed = sum(a == b for a, b in zip(first, second)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[c] * count_b[c] for c in set(count_a) | set(count_b)) / (n * n)
    if expected == 1:
        return 1.0 if observed == 1 else 0.0
    return (observed - expected) / (1 - expected)


def group_labels(rows: list[dict]) -> dict[str, dict[tuple, str]]:
    """group -> {(item, model or 'pair', step, dimension): the group's label}."""
    votes: dict[str, dict[tuple, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        preference = row["dimension"] in PREFERENCES
        target = "pair" if preference else row["model"]
        value = row["model"] if preference else row["value"]  # a preference is the preferred model (blinding undone)
        votes[row["group"]][(row["item_id"], target, row["step"], row["dimension"])].append((row["annotator"], value))
    labels = {}
    for group, keyed in votes.items():
        labels[group] = {}
        for key, ballots in keyed.items():
            counts = Counter(value for _, value in ballots)
            best = max(counts.values())
            labels[group][key] = sorted((a, v) for a, v in ballots if counts[v] == best)[0][1]
    return labels


def table2(rows: list[dict]) -> dict:
    models = sorted({row["model"] for row in rows if row["model"]})
    labels = group_labels(rows)
    groups = sorted(labels)
    scores: dict[str, dict[str, dict[str, float | None]]] = {}
    for model in models:
        scores[model] = {}
        for group in groups:
            values = {}
            for dimension in DIMENSIONS:
                if dimension in PREFERENCES:
                    picks = [v for (item, target, step, d), v in labels[group].items() if d == dimension]
                    values[dimension] = sum(v == model for v in picks) / len(picks) if picks else None
                else:
                    ratings = [int(v) for (item, target, step, d), v in labels[group].items() if d == dimension and target == model]
                    values[dimension] = sum(ratings) / len(ratings) if ratings else None
            scores[model][group] = values
        scores[model]["average"] = {
            d: (sum(v for v in (scores[model][g][d] for g in groups) if v is not None) /
                max(1, sum(1 for g in groups if scores[model][g][d] is not None)))
            if any(scores[model][g][d] is not None for g in groups) else None
            for d in DIMENSIONS
        }
    agreement = {}
    if len(groups) >= 2:
        first, second = labels[groups[0]], labels[groups[1]]
        for dimension in DIMENSIONS:
            shared = sorted(k for k in set(first) & set(second) if k[3] == dimension)
            a, b = [first[k] for k in shared], [second[k] for k in shared]
            agreement[dimension] = {
                "n": len(shared),
                "percent_agreement": sum(x == y for x, y in zip(a, b)) / len(shared) if shared else None,
                "cohen_kappa": cohen_kappa(a, b) if shared else None,
            }
    return {"groups": groups, "models": models, "scores": scores, "agreement": agreement,
            "annotators": sorted({row["annotator"] for row in rows}), "labels": len(rows)}
