"""F1-RadGraph: per-report F1 between the RadGraph graphs of a generated and a reference report.

Computed by the ``radgraph`` package itself (``F1RadGraph``: its annotator and its reward levels),
so the number is the package's definition. It is optional (``pip install radgraph==0.1.18``, which
needs transformers < 5, like us), and its model weights must sit in a local cache
(``--radgraph-cache``): nothing is downloaded at scoring time.

Variant (model and level), named in metrics.json and every table:
- model: ``radgraph`` (default) is RadGraph v1, the model of the RadGraph paper (Jain et al. 2021)
  that DeepMedix-R1 cites; ``radgraph-xl`` / ``modern-radgraph-xl`` are the newer models (the
  package's own default is radgraph-xl). Scores from different models are not comparable.
- level (radgraph's ``reward_level``): ``simple`` = entities (tokens, label); ``partial`` (default;
  the paper states no level) = entities plus whether they have a relation; ``complete`` = entities
  with their relations and targets. A report pair with an empty side scores 0.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from eval.nlg import MetricUnavailable

MODELS = {"radgraph": "RadGraph v1", "radgraph-xl": "RadGraph-XL", "modern-radgraph-xl": "ModernBERT RadGraph-XL"}
LEVELS = ("simple", "partial", "complete")
DEFAULT_MODEL, DEFAULT_LEVEL = "radgraph", "partial"
MODEL_FILES = ("config.json", "weights.th")  # what radgraph reads from <cache>/<model>/ (else it downloads)
HOW_TO_PROVIDE = ("install radgraph==0.1.18, extract its model archive (e.g. radgraph.tar.gz from "
                  "StanfordAIMI/RRG_scorers) into <folder>/<model type>/ and place the BERT tokenizer its config names "
                  "in the Hugging Face cache layout under <folder>, then pass --radgraph-cache <folder>")


def variant(model_type: str, level: str) -> dict[str, str]:
    """The variant as metrics.json records it; ``label`` is what tables print."""
    return {"model_type": model_type, "level": level, "label": f"{MODELS.get(model_type, model_type)}, {level}"}


def describe(model_type: str, level: str) -> str:
    return (f"radgraph package (F1RadGraph), model {model_type} ({MODELS.get(model_type, 'unknown')}), reward level "
            f"{level}; per-report F1 averaged over reports")


def radgraph_scores(hypotheses: list[str], references: list[str], model_type: str, level: str,
                    cache_dir: Path | None) -> list[float]:
    """Per-report F1 from radgraph's own ``F1RadGraph`` at ``level``, with the model in ``cache_dir``."""
    if model_type not in MODELS or level not in LEVELS:
        raise ValueError(f"RadGraph model {model_type!r} / level {level!r}: expected one of {sorted(MODELS)} / {LEVELS}")
    if importlib.util.find_spec("radgraph") is None:
        raise MetricUnavailable(f"the radgraph package is not installed: {HOW_TO_PROVIDE}")
    model_dir = Path(cache_dir or ".") / model_type
    missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
    if cache_dir is None or missing:
        raise MetricUnavailable(f"no RadGraph model at {model_dir} (missing {', '.join(missing)}): {HOW_TO_PROVIDE}")
    from radgraph import F1RadGraph

    scorer = F1RadGraph(reward_level=level, model_type=model_type, model_cache_dir=str(cache_dir),
                        tokenizer_cache_dir=str(cache_dir))
    _, per_report, _, _ = scorer(hyps=list(hypotheses), refs=list(references))
    if len(per_report) != len(hypotheses):
        raise RuntimeError(f"radgraph returned {len(per_report)} scores for {len(hypotheses)} reports")
    return [float(value) for value in per_report]
