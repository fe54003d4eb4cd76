import pytest

from rewards.normalize import answer_items, normalize_answer


@pytest.mark.parametrize(
    "raw, normalized",
    [
        (" Yes. ", "yes"),
        ("TRUE", "yes"),
        ("y", "yes"),
        ("No!", "no"),
        ("false", "no"),
        ("Left  lower\nlobe.", "left lower lobe"),
        ('"PA"', "pa"),
        ("ｙｅｓ", "yes"),  # full-width (NFKC)
        ("yes or no", "yes or no"),
        ("yes, there is", "yes, there is"),
    ],
)
def test_normalize_answer(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_answer_items_split_and_normalise():
    assert answer_items("Left lung | right lung") == {"left lung", "right lung"}
    assert answer_items("atelectasis, effusion; edema and pneumonia") == {"atelectasis", "effusion", "edema", "pneumonia"}
    assert answer_items(["Edema.", "edema"]) == {"edema"}
    assert answer_items("None") == frozenset()
    assert answer_items([]) == frozenset()
