"""F1-CheXbert: CheXbert labels the generated and the reference report; F1 between the label sets.

CheXbert (Smit et al. 2020) is BERT-base with 14 linear heads on the [CLS] state: 13 conditions
with four classes (0 blank, 1 positive, 2 negative, 3 uncertain) and "No Finding" with two. We load
its checkpoint ourselves, from a local path and **strictly** (the PyPI ``f1chexbert`` package loads
non-strictly, so a key mismatch silently leaves random weights, and it needs the hub).

Binarisation: a label counts as present when positive, and uncertain counts as present too in the
headline numbers (``Micro-14`` ...; the f1chexbert "rrg" / Miura et al. convention); the ``(u=0)``
variants count uncertain as absent, as LLaVA-Rad also reports. F1 is for the positive class,
``zero_division = 0``: micro (pooled over labels) and macro (mean over labels), over the 14 labels
and over the 5 (Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eval.nlg import MetricUnavailable

CONDITIONS = (
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
    "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices", "No Finding",
)
FIVE = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
IMPLEMENTATION = "CheXbert (strict local checkpoint); uncertain as positive; positive-class F1, zero_division=0"
HOW_TO_PROVIDE = (
    "download chexbert.pth (e.g. StanfordAIMI/RRG_scorers) and a bert-base-uncased folder (config.json, "
    "vocab.txt) on a machine with internet, copy them here, and pass --chexbert-checkpoint and --chexbert-bert"
)


def build_labeler(bert_dir: Path):
    """CheXbert's architecture, named so its checkpoint's keys (less ``module.``) match exactly."""
    import torch
    from transformers import BertConfig, BertModel

    class CheXbertLabeler(torch.nn.Module):
        def __init__(self, config: BertConfig):
            super().__init__()
            self.bert = BertModel(config, add_pooling_layer=True)
            self.dropout = torch.nn.Dropout(0.1)
            heads = [torch.nn.Linear(config.hidden_size, 4) for _ in range(13)]
            self.linear_heads = torch.nn.ModuleList(heads + [torch.nn.Linear(config.hidden_size, 2)])

        def forward(self, input_ids, attention_mask):
            cls = self.dropout(self.bert(input_ids=input_ids, attention_mask=attention_mask)[0][:, 0, :])
            return [head(cls) for head in self.linear_heads]

    return CheXbertLabeler(BertConfig.from_pretrained(bert_dir))


def load_labeler(checkpoint: Path, bert_dir: Path):
    import torch

    for path, what in ((checkpoint, "CheXbert checkpoint"), (bert_dir / "config.json", "bert-base-uncased config")):
        if not path.exists():
            raise MetricUnavailable(f"{what} not found at {path}: {HOW_TO_PROVIDE}")
    model = build_labeler(bert_dir)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = state.get("model_state_dict", state)
    state = {key.removeprefix("module."): value for key, value in state.items()}
    model.load_state_dict(state, strict=True)  # a mismatch is an error, never random weights
    return model.eval()


def label_reports(texts: list[str], checkpoint: Path, bert_dir: Path, batch_size: int = 32) -> np.ndarray:
    """``[reports, 14]`` CheXbert classes (0 blank, 1 positive, 2 negative, 3 uncertain)."""
    import torch
    from transformers import BertTokenizerFast

    model = load_labeler(checkpoint, bert_dir)
    tokenizer = BertTokenizerFast.from_pretrained(bert_dir)
    labels = np.zeros((len(texts), len(CONDITIONS)), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = [text.strip() or " " for text in texts[start : start + batch_size]]
            encoded = tokenizer(batch, padding=True, truncation=True, max_length=512, return_tensors="pt")
            outputs = model(encoded["input_ids"], encoded["attention_mask"])
            labels[start : start + len(batch)] = torch.stack([o.argmax(dim=1) for o in outputs], dim=1).numpy()
    return labels


def binarise(classes: np.ndarray, uncertain_positive: bool) -> np.ndarray:
    present = classes == 1
    if uncertain_positive:
        present |= classes == 3
    return present.astype(np.int64)


def f1_scores(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float | list[float]]:
    """Positive-class F1 per label, micro and macro, from binary ``[reports, labels]`` matrices."""
    tp = (predicted & reference).sum(axis=0).astype(float)
    fp = (predicted & (1 - reference)).sum(axis=0).astype(float)
    fn = ((1 - predicted) & reference).sum(axis=0).astype(float)
    denominator = 2 * tp + fp + fn
    per_label = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    pooled = 2 * tp.sum() + fp.sum() + fn.sum()
    return {"micro": float(2 * tp.sum() / pooled) if pooled else 0.0, "macro": float(per_label.mean()),
            "per_label": per_label.tolist()}


def chexbert_metrics(predicted_classes: np.ndarray, reference_classes: np.ndarray,
                     rows: np.ndarray | None = None) -> dict[str, float]:
    pick = slice(None) if rows is None else rows
    five = [CONDITIONS.index(name) for name in FIVE]
    metrics = {}
    for uncertain_positive, suffix in ((True, ""), (False, " (u=0)")):
        predicted = binarise(predicted_classes[pick], uncertain_positive)
        reference = binarise(reference_classes[pick], uncertain_positive)
        all14, only5 = f1_scores(predicted, reference), f1_scores(predicted[:, five], reference[:, five])
        metrics.update({f"Micro-14{suffix}": all14["micro"], f"Macro-14{suffix}": all14["macro"],
                        f"Micro-5{suffix}": only5["micro"], f"Macro-5{suffix}": only5["macro"]})
    return metrics


def per_condition_f1(predicted_classes: np.ndarray, reference_classes: np.ndarray) -> dict[str, float]:
    scores = f1_scores(binarise(predicted_classes, True), binarise(reference_classes, True))["per_label"]
    return dict(zip(CONDITIONS, scores))


def per_condition_support(reference_classes: np.ndarray) -> dict[str, int]:
    """Reference reports positive for each observation (uncertain as positive, as ``per_condition_f1``):
    the paper's Fig. 2f-g show the ten best-supported observations."""
    return dict(zip(CONDITIONS, binarise(reference_classes, True).sum(axis=0).astype(int).tolist()))
