"""F1-RadGraph: entity (and relation) set F1 between the RadGraph graphs of two reports.

The graphs come from the ``radgraph`` package (optional: ``pip install radgraph==0.1.18``, which
needs transformers < 5, like us) with its model weights in a local cache (``--radgraph-cache``;
nothing is downloaded at scoring time). The F1 itself is computed here, per report, at one of
radgraph's reward levels, and averaged over reports:
- ``simple``: entities as (tokens, label);
- ``partial``: (tokens, label, has a relation);
- ``complete``: (tokens, label, the set of (relation, target tokens, target label)).
A report pair with no entity on either side scores 0. Model type and level are named in every table.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from eval.nlg import MetricUnavailable

HOW_TO_PROVIDE = ("install radgraph==0.1.18 and place its model files (e.g. radgraph-xl) under a folder "
                  "passed as --radgraph-cache (radgraph's model_cache_dir)")


def describe(model_type: str, level: str) -> str:
    return f"radgraph package, model {model_type}, reward level {level}; entity-set F1 averaged over reports"


def entity_set(annotation: dict, level: str) -> set:
    entities = annotation.get("entities", {})
    items = set()
    for entity in entities.values():
        key = (str(entity.get("tokens", "")).lower(), entity.get("label"))
        if level == "simple":
            items.add(key)
        elif level == "partial":
            items.add(key + (bool(entity.get("relations")),))
        else:
            targets = frozenset(
                (relation, str(entities.get(target, {}).get("tokens", "")).lower(), entities.get(target, {}).get("label"))
                for relation, target in entity.get("relations", [])
            )
            items.add(key + (targets,))
    return items


def entity_f1(hypothesis: dict, reference: dict, level: str) -> float:
    predicted, expected = entity_set(hypothesis, level), entity_set(reference, level)
    matched = len(predicted & expected)
    if not matched:
        return 0.0
    precision, recall = matched / len(predicted), matched / len(expected)
    return 2 * precision * recall / (precision + recall)


def radgraph_scores(hypotheses: list[str], references: list[str], model_type: str, level: str,
                    cache_dir: Path | None) -> list[float]:
    if importlib.util.find_spec("radgraph") is None:
        raise MetricUnavailable(f"the radgraph package is not installed: {HOW_TO_PROVIDE}")
    if cache_dir is None or not (Path(cache_dir) / model_type).exists():
        raise MetricUnavailable(f"no RadGraph model at {cache_dir}/{model_type}: {HOW_TO_PROVIDE}")
    from radgraph import RadGraph

    annotator = RadGraph(model_type=model_type, model_cache_dir=str(cache_dir), tokenizer_cache_dir=str(cache_dir))
    hyp_graphs, ref_graphs = annotator(hypotheses), annotator(references)
    return [entity_f1(hyp_graphs[str(i)], ref_graphs[str(i)], level) for i in range(len(hypotheses))]
