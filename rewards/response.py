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
    needs all three: the last box is read once and serves both the answer and the format check."""
    box_start = text.rfind(BOXED_OPEN)
    content = None if box_start == -1 else boxed_content(text, box_start)
    return ParsedResponse(first_reasoning(text), None if content is None else content.strip(),
                          _format_problem(text, (box_start, content)))


_UNREAD = object()


def format_problem(text: str) -> str | None:
    """Why ``text`` breaks the reasoning format, as a short reason code; None if it conforms.

    Conforming: optional whitespace, exactly one ``<think>`` block with non-blank content, then
    (after optional text such as "The answer is:") exactly one ``\\boxed{...}`` whose braces
    balance and whose content is non-blank, then optional text without tags. Everything else
    fails, in particular several think blocks, a think block nested in another, a box inside the
    reasoning, several boxed answers (``\\boxed{A} or \\boxed{B}``), nested boxes.
    """
    return _format_problem(text, _UNREAD)


def _format_problem(text: str, last_box) -> str | None:
    """``format_problem``; ``last_box`` is (start, content) of the last box when already read, else ``_UNREAD``."""
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if opens == 0 or closes == 0:
        return "missing_think"
    if opens > 1 or closes > 1:
        return "several_think_blocks"
    start = text.find(THINK_OPEN)
    end = text.find(THINK_CLOSE)
    if end < start:
        return "think_tags_out_of_order"
    if text[:start].strip():
        return "text_before_think"
    if not text[start + len(THINK_OPEN) : end].strip():
        return "empty_think"
    boxes = text.count(BOXED_OPEN)
    if boxes == 0:
        return "missing_boxed"
    if boxes > 1:
        return "several_boxed"
    # The only box is also the last one: it may have been read already.
    box_start, content = (text.find(BOXED_OPEN), _UNREAD) if last_box is _UNREAD else last_box
    if box_start < end:
        return "boxed_inside_think"
    if content is _UNREAD:
        content = boxed_content(text, box_start)
    if content is None:
        return "unbalanced_boxed"
    if not content.strip():
        return "empty_boxed"
    return None
