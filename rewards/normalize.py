"""Answer normalisation, shared by the reward, cold-start validation and VQA evaluation.

``normalize_answer`` applies, in order:
1. Unicode NFKC and lower case;
2. whitespace runs collapsed to one space;
3. leading and trailing punctuation and quotes removed (``" Yes."`` -> ``yes``);
4. yes/no forms mapped to ``yes`` / ``no`` when they are the whole answer (``true``, ``y``,
   ``yeah``, ``yep`` -> ``yes``; ``false``, ``n``, ``nope`` -> ``no``).
Nothing else: no synonym lists, no partial matches, so ``yes or no`` stays ``yes or no`` and
matches neither.

Multi-object answers are lists. The project writes a list one way everywhere (prompts, SFT
targets, teacher traces, the ``upstream`` preset's ground truth): its items joined by ``|``
(``LIST_SEPARATOR``), which is how the released reward splits a list, and the empty list as
``none``. When scoring, a predicted list may be written with ``|``, ``,``, ``;`` or the word
``and`` between items; each item is normalised as above, and ``none`` / an empty answer is the
empty list (MIMIC-Ext-MIMIC-CXR-VQA has questions whose answer is the empty list).
"""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
_EDGE_PUNCTUATION = " \t\n.,;:!?\"'`()[]{}"
_YES_FORMS = frozenset({"yes", "y", "yeah", "yep", "true"})
_NO_FORMS = frozenset({"no", "n", "nope", "false"})
_ITEM_SEPARATORS = re.compile(r"\s*(?:[|,;]|\band\b)\s*")
_EMPTY_LIST_FORMS = frozenset({"", "none", "nothing", "no findings", "[]"})
LIST_SEPARATOR = "|"  # the released reward splits list answers on it (rewards/upstream.py)
EMPTY_LIST = "none"


def normalize_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _WHITESPACE.sub(" ", text).strip(_EDGE_PUNCTUATION)
    if text in _YES_FORMS:
        return "yes"
    if text in _NO_FORMS:
        return "no"
    return text


def written_answer(answer: str | list[str] | tuple[str, ...]) -> str:
    """An answer as a model should write it: a list as its items joined by "|" without spaces, the
    empty list as "none". Both presets read it back as the same items: ``answer_items`` (paper) and
    the released split on "|" (upstream); no spaces keep a list under the released reward's
    20-word limit for list answers as long as possible."""
    if isinstance(answer, str):
        return answer
    return LIST_SEPARATOR.join(answer) if answer else EMPTY_LIST


def answer_items(answer: str | list[str]) -> frozenset[str]:
    """The set of normalised items of a list answer (a written list, or a list of strings).

    Items of a given list are split by the same separators as a written one, so a reference item
    and the same item written by the model always normalise alike.
    """
    texts = [answer] if isinstance(answer, str) else answer
    items = (normalize_answer(piece) for text in texts for piece in _ITEM_SEPARATORS.split(text))
    return frozenset(item for item in items if item not in _EMPTY_LIST_FORMS)
