"""Model cards: every card file is valid and honest about serving; broken cards are refused; the
cards' answer parsing."""

import itertools
import re
import shlex
from pathlib import Path

import pytest
import yaml

from eval.model_cards import CARDS, CardError, all_cards, infer_overrides, load_card, parse_output, validate_card

TABLE1 = {"Qwen2.5-VL-7B", "Qwen2.5-VL-7B (think)", "Qwen2.5-VL-32B", "DeepSeek-VL-7B", "HuatuoGPT-Vision",
          "CheXagent", "LLaVA-Rad", "MedGemma", "DeepMedix", "DeepMedix-R1"}
CARD_FILES = sorted(CARDS.glob("*.yaml"))


def test_every_table1_model_has_exactly_one_card():
    assert sorted(card["paper_name"] for card in all_cards()) == sorted(TABLE1)


@pytest.mark.parametrize("path", CARD_FILES, ids=lambda p: p.stem)
def test_each_card_file_is_valid_and_consistent(path):
    card = load_card(path.stem)
    assert card["name"] == path.stem
    if card["backend"] == "endpoint":
        endpoint = card["endpoint"]
        assert endpoint["allow_remote_endpoint"] is False  # shipped cards stay local
        assert re.match(r"http://(127\.0\.0\.1|localhost):\d+/v1$", endpoint["base_url"])
        words = shlex.split(card["serve"]["command"])
        flags = dict(itertools.pairwise(words))
        assert words[:2] == ["vllm", "serve"] and card["serve"]["engine"] == "vllm"
        assert flags["--served-model-name"] == endpoint["model"]
        assert flags["--host"] == "127.0.0.1" and endpoint["base_url"].endswith(f":{flags['--port']}/v1")
        assert flags["--generation-config"] == "vllm"  # the card's sampling, not the checkpoint's defaults
        assert yaml.safe_load(flags["--limit-mm-per-prompt"]) == {"image": 1}
        if card["hub_id"]:
            assert words[2] == card["weights"]
    else:
        assert "endpoint" not in card and card["serve"]["command"] is None
    if card["backend"] == "external":
        assert card["serve"]["engine"] == "none" and card["serve"]["notes"]
    assert card["prompt"]["reasoning_format"] == (card["parsing"]["answer"] == "boxed")
    overrides = infer_overrides(card)
    assert overrides["model"] == card["weights"] and overrides["sampling"] == card["sampling"]


def test_the_think_row_differs_from_the_plain_row_only_in_prompt_and_parsing():
    plain, think = load_card("qwen2.5-vl-7b"), load_card("qwen2.5-vl-7b-think")
    assert plain["prompt"]["reasoning_format"] is False and think["prompt"]["reasoning_format"] is True
    assert plain["endpoint"] == think["endpoint"] and plain["sampling"] == think["sampling"]
    assert plain["weights"] == think["weights"]


def good_card():
    return yaml.safe_load((CARDS / "qwen2.5-vl-7b.yaml").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(temprature=0.6), "unknown keys"),
    (lambda c: c["sampling"].update(temprature=0.6), "unknown keys"),
    (lambda c: c["endpoint"].update(allow_remote_endpoint="false"), "allow_remote_endpoint: expected"),
    (lambda c: c["prompt"].update(reasoning_format="yes"), "reasoning_format: expected"),
    (lambda c: c["sampling"].update(max_new_tokens=True), "got a boolean"),
    (lambda c: c.pop("parsing"), "parsing: missing"),
    (lambda c: c["parsing"].pop("answer"), "parsing.answer: missing"),
    (lambda c: c.update(backend="openai"), "backend must be one of"),
    (lambda c: c["parsing"].update(answer="json"), "parsing.answer must be one of"),
    (lambda c: c["prompt"].update(reasoning_format=True), "parse with answer: boxed"),
    (lambda c: c.pop("endpoint"), "needs an endpoint section"),
    (lambda c: c["serve"].update(command=None), "needs serve.engine and serve.command"),
    (lambda c: c.update(backend="hf") or c["prompt"].update(system="x"), "endpoint backend only"),
    (lambda c: c["sampling"].update(top_p=0), "sampling out of range"),
])
def test_broken_cards_are_refused(edit, message):
    card = good_card()
    edit(card)
    with pytest.raises(CardError, match=re.escape(message)):
        validate_card(card)


def test_a_card_named_unlike_its_file_or_missing_is_refused(tmp_path):
    card = good_card()
    path = tmp_path / "renamed.yaml"
    path.write_text(yaml.safe_dump(card))
    with pytest.raises(CardError, match="name must be the file's name"):
        load_card(str(path))
    with pytest.raises(CardError, match="no model card"):
        load_card("gpt-4v")


@pytest.mark.parametrize("raw, task, answer, strip, expected", [
    ("<think>a [1, 2, 3, 4]</think> \\boxed{yes}", "vqa", "boxed", False, "yes"),
    ("<think>a</think> The lungs are clear.", "findings", "boxed", False, "The lungs are clear."),
    ("Findings: The lungs are clear.", "findings", "plain", True, "The lungs are clear."),
    ("**IMPRESSION:** No acute process.", "impression", "plain", True, "No acute process."),
    ("## Findings\n- The lungs are clear.", "findings", "plain", True, "- The lungs are clear."),
    ("Findings - a list follows", "findings", "plain", True, "Findings - a list follows"),
    ("Findings: none", "vqa", "plain", True, "Findings: none"),  # VQA answers keep their words
    ("Findings of note: effusion.", "findings", "plain", True, "Findings of note: effusion."),
    ("<think>long reasoning</think>Yes.", "vqa", "plain", False, "Yes."),  # reasoning never scored
    ("Yes, \\boxed{no} is not my answer", "vqa", "plain", False, "Yes, \\boxed{no} is not my answer"),
])
def test_answer_parsing(raw, task, answer, strip, expected):
    assert parse_output(raw, task, answer, strip)["prediction"] == expected


def test_boxed_parsing_keeps_reasoning_and_boxes():
    parsed = parse_output("<think>Effusion at [10, 20, 30, 40].</think>\\boxed{yes}", "vqa", "boxed")
    assert parsed == {"prediction": "yes", "reasoning": "Effusion at [10, 20, 30, 40].", "boxes": [[10, 20, 30, 40]]}
    assert parse_output("plain reply", "vqa", "plain") == {"prediction": "plain reply", "reasoning": "", "boxes": []}


def test_cards_folder_holds_only_cards():
    assert {p.suffix for p in Path(CARDS).iterdir()} == {".yaml"}
