"""Model cards (``recipes/eval/models/*.yaml``): how each model of the paper's Table 1 is run and read.

A card states the model's weights (hub id), how to serve it (the exact ``vllm serve`` line where
vLLM supports the architecture; honestly "none" where it does not), the backend ``eval.infer``
uses for it, the prompt style (the paper's reasoning-format prompt on or off: "Qwen2.5-VL-7B
(think)" is Qwen2.5-VL-7B with it on), sampling, and how its replies are parsed into answers.
``load_card`` refuses a card with a missing, unknown or ill-typed field, so a typo cannot quietly
change an evaluation; ``infer_overrides`` turns a card into ``recipes/eval/xraybench.yaml`` values.

Answer parsing (``parsing``), applied to every backend's raw output by ``eval.infer``:
- ``answer: boxed``: the reasoning format's answer, as the reward reads it (last ``\\boxed{}``,
  else the text after ``</think>``, else everything; reasoning and boxes kept);
- ``answer: plain``: the whole reply is the answer (after a ``</think>`` if one slipped in, so
  reasoning text is never scored as the answer; a ``\\boxed{}`` inside a report is kept as text);
- ``strip_report_header: true``: for findings/impression items, a leading section header the model
  writes ("Findings:", "**IMPRESSION:**") is removed: the references are section bodies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from eval.predictions import extract_answer
from rewards.response import THINK_CLOSE

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "recipes" / "eval" / "models"
BACKENDS = ("endpoint", "hf", "vllm", "external")  # external: predictions written by the model's own code
ENGINES = ("vllm", "sglang", "tgi", "transformers", "none")
ANSWER_FORMATS = ("boxed", "plain")
REPORT_TASKS = ("findings", "impression")

# field -> (type(s), required); nested sections are checked key by key, unknown keys refused.
SCHEMA: dict[str, Any] = {
    "name": (str, True),
    "paper_name": (str, True),
    "hub_id": ((str, type(None)), True),
    "weights": (str, True),
    "backend": (str, True),
    "serve": {"engine": (str, True), "command": ((str, type(None)), True), "notes": (str, True)},
    "endpoint": {"base_url": (str, True), "model": (str, True), "api_key_env": (str, True),
                 "allow_remote_endpoint": (bool, True), "concurrency": (int, False),
                 "extra_body": (dict, False)},
    "prompt": {"reasoning_format": (bool, True), "system": ((str, type(None)), True)},
    "sampling": {"temperature": ((int, float), True), "top_p": ((int, float), True),
                 "max_new_tokens": (int, True), "seed": (int, True)},
    "parsing": {"answer": (str, True), "strip_report_header": (bool, True)},
    "unverified": (str, True),
}


OPTIONAL_SECTIONS = ("endpoint",)  # required by the endpoint backend only


class CardError(ValueError):
    """A model card that cannot be used as written."""


def _check(section: dict, schema: dict, where: str) -> None:
    if not isinstance(section, dict):
        raise CardError(f"{where}: expected a mapping, got {type(section).__name__}")
    unknown = sorted(set(section) - set(schema))
    if unknown:
        raise CardError(f"{where}: unknown keys {unknown} (known: {sorted(schema)})")
    for key, rule in schema.items():
        label = f"{where}.{key}" if where else key
        if isinstance(rule, dict):
            if key in section:
                _check(section[key], rule, label)
            elif key not in OPTIONAL_SECTIONS:
                raise CardError(f"{label}: missing")
            continue
        kinds, required = rule
        if key not in section:
            if required:
                raise CardError(f"{label}: missing")
            continue
        value = section[key]
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            raise CardError(f"{label}: expected {kinds}, got a boolean")
        if not isinstance(value, kinds):
            raise CardError(f"{label}: expected {kinds}, got {value!r}")


def validate_card(card: dict[str, Any], source: str = "card") -> dict[str, Any]:
    """The card if it is usable as written, else a ``CardError`` naming the field."""
    _check(card, SCHEMA, "")
    where = f"{source} ({card['name']})"
    if card["backend"] not in BACKENDS:
        raise CardError(f"{where}: backend must be one of {BACKENDS}, got {card['backend']!r}")
    if card["serve"]["engine"] not in ENGINES:
        raise CardError(f"{where}: serve.engine must be one of {ENGINES}, got {card['serve']['engine']!r}")
    if card["parsing"]["answer"] not in ANSWER_FORMATS:
        raise CardError(f"{where}: parsing.answer must be one of {ANSWER_FORMATS}")
    if card["backend"] == "endpoint":
        if "endpoint" not in card:
            raise CardError(f"{where}: an endpoint backend needs an endpoint section")
        if card["serve"]["engine"] == "none" or not card["serve"]["command"]:
            raise CardError(f"{where}: an endpoint backend needs serve.engine and serve.command")
    elif card["prompt"]["system"]:
        raise CardError(f"{where}: prompt.system is sent by the endpoint backend only")
    if card["prompt"]["reasoning_format"] and card["parsing"]["answer"] != "boxed":
        raise CardError(f"{where}: the reasoning-format prompt asks for \\boxed{{}}: parse with answer: boxed")
    if card["sampling"]["max_new_tokens"] < 1 or not 0 < card["sampling"]["top_p"] <= 1 \
            or card["sampling"]["temperature"] < 0:
        raise CardError(f"{where}: sampling out of range: {card['sampling']}")
    return card


def card_path(name: str) -> Path:
    return Path(name) if name.endswith((".yaml", ".yml")) else CARDS / f"{name}.yaml"


def load_card(name: str) -> dict[str, Any]:
    """A card by name (``recipes/eval/models/<name>.yaml``) or by path, validated."""
    path = card_path(name)
    if not path.is_file():
        known = sorted(p.stem for p in CARDS.glob("*.yaml"))
        raise CardError(f"no model card {path} (cards: {', '.join(known)})")
    card = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(card, dict) and card.get("name") != path.stem:
        raise CardError(f"{path}: name must be the file's name ({path.stem!r}), got {card.get('name')!r}")
    return validate_card(card, str(path))


def all_cards() -> list[dict[str, Any]]:
    return [load_card(str(path)) for path in sorted(CARDS.glob("*.yaml"))]


def infer_overrides(card: dict[str, Any]) -> dict[str, Any]:
    """``recipes/eval/xraybench.yaml`` values that run the card's model (merge over the recipe)."""
    values: dict[str, Any] = {
        "model": card["weights"],
        "backend": card["backend"],
        "reasoning_format": card["prompt"]["reasoning_format"],
        "system_prompt": card["prompt"]["system"],
        "sampling": dict(card["sampling"]),
        "parsing": dict(card["parsing"]),
    }
    if card["backend"] == "endpoint":
        values["endpoint"] = {key: value for key, value in card["endpoint"].items()}
    return values


# -------------------------------------------------------------------------------- answer parsing

# a leading "Findings:" / "**IMPRESSION:**" / "## Findings" (a heading line) and the space after it
_HEADER = re.compile(r"^\s*[#*_]*\s*(findings|impressions?)\s*[*_]*[ \t]*(:[*_]*|(?=\n))\s*", re.IGNORECASE)


def strip_report_header(text: str) -> str:
    """``"**Findings:** The lungs are clear."`` -> ``"The lungs are clear."`` (a leading header only)."""
    return _HEADER.sub("", text, count=1).strip()


def parse_output(raw_output: str, task: str, answer: str = "boxed", strip_header: bool = False) -> dict[str, Any]:
    """``prediction``, ``reasoning`` and ``boxes`` of one raw model output, per the card's parsing."""
    if answer == "boxed":
        parsed = extract_answer(raw_output)
    elif answer == "plain":
        text = raw_output.rsplit(THINK_CLOSE, 1)[1] if THINK_CLOSE in raw_output else raw_output
        parsed = {"prediction": text.strip(), "reasoning": "", "boxes": []}
    else:
        raise CardError(f"parsing.answer must be one of {ANSWER_FORMATS}, got {answer!r}")
    if strip_header and task in REPORT_TASKS:
        parsed["prediction"] = strip_report_header(parsed["prediction"])
    return parsed


def output_parser(parsing: Any) -> Callable[[str, str], dict[str, Any]]:
    """``parse(raw_output, task)`` for an ``eval.infer`` config's ``parsing`` section (None: boxed)."""
    answer = parsing.get("answer", "boxed") if parsing else "boxed"
    strip = bool(parsing.get("strip_report_header", False)) if parsing else False
    if answer not in ANSWER_FORMATS:
        raise CardError(f"parsing.answer must be one of {ANSWER_FORMATS}, got {answer!r}")
    return lambda raw_output, task: parse_output(raw_output, task, answer, strip)
