import numpy as np
import pytest
from sklearn.metrics import f1_score

from eval import chexbert
from eval.nlg import MetricUnavailable


def tiny_checkpoint(tmp_path, corrupt=False):
    """A randomly initialised CheXbert of the real architecture (small BERT), saved like the original."""
    import torch
    from transformers import BertConfig, BertTokenizerFast

    bert_dir = tmp_path / "bert"
    bert_dir.mkdir()
    BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32, max_position_embeddings=128).save_pretrained(bert_dir)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + "no pleural effusion heart size normal lungs are clear".split()
    (bert_dir / "vocab.txt").write_text("\n".join(vocab + [f"w{i}" for i in range(64 - len(vocab))]) + "\n")
    BertTokenizerFast(vocab_file=str(bert_dir / "vocab.txt")).save_pretrained(bert_dir)
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in chexbert.build_labeler(bert_dir).state_dict().items()}
    if corrupt:
        state.pop("module.linear_heads.13.weight")
    path = tmp_path / "chexbert.pth"
    torch.save({"model_state_dict": state}, path)
    return path, bert_dir


def test_tiny_checkpoint_loads_strictly_and_labels(tmp_path):
    checkpoint, bert_dir = tiny_checkpoint(tmp_path)
    labels = chexbert.label_reports(["No pleural effusion.", "", "Heart size is normal."], checkpoint, bert_dir)
    assert labels.shape == (3, 14) and labels[:, :13].max() <= 3 and labels[:, 13].max() <= 1


def test_a_mismatched_checkpoint_is_an_error_not_random_weights(tmp_path):
    checkpoint, bert_dir = tiny_checkpoint(tmp_path, corrupt=True)
    with pytest.raises(RuntimeError, match="Missing key"):
        chexbert.load_labeler(checkpoint, bert_dir)


def test_missing_weights_say_where_and_how(tmp_path):
    with pytest.raises(MetricUnavailable, match=str(tmp_path / "nope.pth")):
        chexbert.load_labeler(tmp_path / "nope.pth", tmp_path)


def test_f1_equals_scikit_learn_and_both_uncertain_policies():
    rng = np.random.default_rng(0)
    predicted = rng.integers(0, 4, (200, 14))
    reference = rng.integers(0, 4, (200, 14))
    metrics = chexbert.chexbert_metrics(predicted, reference)
    five = [chexbert.CONDITIONS.index(c) for c in chexbert.FIVE]
    for uncertain, suffix in ((True, ""), (False, " (u=0)")):
        p, r = chexbert.binarise(predicted, uncertain), chexbert.binarise(reference, uncertain)
        for average in ("micro", "macro"):
            assert metrics[f"{average.capitalize()}-14{suffix}"] == pytest.approx(
                f1_score(r, p, average=average, zero_division=0))
            assert metrics[f"{average.capitalize()}-5{suffix}"] == pytest.approx(
                f1_score(r[:, five], p[:, five], average=average, zero_division=0))
