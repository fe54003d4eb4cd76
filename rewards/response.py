"""The response grammar: ``<think>reasoning</think>`` then the answer in ``\\boxed{...}``.

The paper's format prompt (recipes' Jinja file) asks for one reasoning block in ``<think>`` tags
followed by the final answer in ``\\boxed{}``. These functions split a response along that grammar
and say precisely why a response does not follow it. They never raise, whatever the text.
"""

from __future__ import annotations

import re
from typing import NamedTuple

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
BOXED_OPEN = "\\boxed{"
_BRACE = re.compile(r"[{}]")


def boxed_content(text: str, start: int) -> str | None:
    """Content of the ``\\boxed{`` starting at ``start``, brace-balanced; None if never closed."""
    content_start = start + len(BOXED_OPEN)
    close = text.find("}", content_start)
    if close != -1 and text.find("{", content_start, close) == -1:  # the common case: no nested braces
        return text[content_start:close]
    depth = 0
    for brace in _BRACE.finditer(text, content_start):
        if brace.group() == "{":
            depth += 1
        elif depth == 0:
            return text[content_start : brace.start()]
        else:
            depth -= 1
    return None


def last_boxed(text: str) -> str | None:
    """Stripped content of the last ``\\boxed{...}`` in ``text``; None if there is none or it is unclosed."""
    start = text.rfind(BOXED_OPEN)
    if start == -1:
        return None
    content = boxed_content(text, start)
    return None if content is None else content.strip()


def first_reasoning(text: str) -> str:
    """Text of the first ``<think>...</think>`` block; empty when there is no closed block."""
    start = text.find(THINK_OPEN)
    if start == -1:
        return ""
    end = text.find(THINK_CLOSE, start + len(THINK_OPEN))
    return "" if end == -1 else text[start + len(THINK_OPEN) : end]


class ParsedResponse(NamedTuple):
    reasoning: str  # first_reasoning(text)
    answer: str | None  # last_boxed(text)
    format_problem: str | None  # format_problem(text)


def parse_response(text: str) -> ParsedResponse:
    """``first_reasoning``, ``last_boxed`` and ``format_problem`` of ``text`` at once, as the reward
    needs all three: each tag is searched for once and serves the reading and the format check."""
    box_start = text.rfind(BOXED_OPEN)
    content = None if box_start == -1 else boxed_content(text, box_start)
    answer = None if content is None else content.strip()
    start = text.find(THINK_OPEN)
    if start == -1:
        return ParsedResponse("", answer, "missing_think")
    end = text.find(THINK_CLOSE, start + len(THINK_OPEN))  # the first close after the first open
    reasoning = "" if end == -1 else text[start + len(THINK_OPEN) : end]
    # format_problem's rules, in its order. There is an open tag here, so only the close can be
    # missing; with one tag of each, no close after the open means the close comes first.
    closes = text.count(THINK_CLOSE)
    if closes == 0:
        problem = "missing_think"
    elif closes > 1 or text.count(THINK_OPEN) > 1:
        problem = "several_think_blocks"
    elif end == -1:
        problem = "think_tags_out_of_order"
    elif start and not text[:start].isspace():  # isspace: what strip() removes
        problem = "text_before_think"
    elif not reasoning or reasoning.isspace():
        problem = "empty_think"
    elif box_start == -1:
        problem = "missing_boxed"
    elif text.find(BOXED_OPEN) != box_start:  # the first box is not the last
        problem = "several_boxed"
    elif box_start < end:
        problem = "boxed_inside_think"
    elif content is None:
        problem = "unbalanced_boxed"
    elif not answer:
        problem = "empty_boxed"
    else:
        problem = None
    return ParsedResponse(reasoning, answer, problem)


def format_problem(text: str) -> str | None:
    """Why ``text`` breaks the reasoning format, as a short reason code; None if it conforms.

    Conforming: optional whitespace, exactly one ``<think>`` block with non-blank content, then
    (after optional text such as "The answer is:") exactly one ``\\boxed{...}`` whose braces
    balance and whose content is non-blank, then optional text without tags. Everything else
    fails, in particular several think blocks, a think block nested in another, a box inside the
    reasoning, several boxed answers (``\\boxed{A} or \\boxed{B}``), nested boxes. The first rule
    broken names the reason, in this order: missing_think, several_think_blocks,
    think_tags_out_of_order, text_before_think, empty_think, missing_boxed, several_boxed,
    boxed_inside_think, unbalanced_boxed, empty_boxed.
    """
    return parse_response(text).format_problem
