"""Judges of a battle: an LLM behind an OpenAI-compatible endpoint, or an offline reference-based one.

A battle shows one item's two reports in a fixed order (A, B); every pair is judged in both orders,
so a judge's position bias cancels out. Verdicts are "A", "B", "tie" or "unparseable" (counted, and
left out of the fit).
- ``EndpointJudge``: the prompt template ``recipes/prompts/arena_judge.jinja`` (with or without the
  reference report and the image). It goes through ``data_prep.endpoint``: local endpoints only
  unless the user opts in, the key from the environment, retries with backoff, bounded
  concurrency, and every verdict cached on disk by the whole request, that is by (judge model,
  template, item, ordered pair): a rerun makes no call.
- ``ReferenceJudge``: deterministic and offline, for the demo and tests: prefers the report whose
  mean of word BLEU-1, BLEU-4 and ROUGE-L against the reference (the reward's open-ended score) is
  higher; a tie within ``margin``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from data_prep.endpoint import CallCache, ChatEndpoint, EndpointConfig, image_part, public_url
from rewards.components import open_ended_overlaps

ROOT = Path(__file__).resolve().parents[2]
VERDICTS = ("A", "B", "tie", "unparseable", "failed")  # failed: the judge gave no reply (not cached; a rerun retries)
DECIDED = ("A", "B", "tie")  # the verdicts that count


@dataclass(frozen=True)
class Battle:
    item: str
    task: str
    report_a: str
    report_b: str
    reference: str
    image: Path | None


def parse_verdict(reply: str | None) -> str:
    """A, B or tie from the judge's first line: a reply that is just a letter, a leading capital
    A or B, or the word TIE; anything else (including "a tie" read as A) is unparseable or a tie."""
    if not reply or not reply.strip():
        return "unparseable"
    line = reply.strip().splitlines()[0]
    words = re.findall(r"[A-Za-z]+", line)
    if len(words) == 1 and words[0].upper() in ("A", "B"):
        return words[0].upper()
    if words and words[0] in ("A", "B"):  # case-sensitive: the article "a" is not a verdict
        return words[0]
    if any(word.upper() in ("TIE", "EQUAL") for word in words):
        return "tie"
    return "unparseable"


class ReferenceJudge:
    name = "reference-overlap (offline; not a model)"

    def __init__(self, margin: float = 1e-9):
        self.margin = margin

    def judge(self, battles: list[Battle]) -> list[str]:
        a = open_ended_overlaps([b.report_a for b in battles], [b.reference for b in battles])
        b = open_ended_overlaps([b.report_b for b in battles], [b.reference for b in battles])
        return ["tie" if abs(x - y) <= self.margin else ("A" if x > y else "B") for x, y in zip(a, b)]


class EndpointJudge:
    def __init__(self, config: EndpointConfig, cache_dir: Path, template: str = "arena_judge.jinja",
                 with_reference: bool = True, with_image: bool = False):
        self.endpoint = ChatEndpoint(config, CallCache(cache_dir))
        self.template = jinja2.Template((ROOT / "recipes" / "prompts" / template).read_text().strip())
        self.with_reference, self.with_image = with_reference, with_image
        self.name = f"{config.model} at {public_url(config.base_url)}"  # no user:password@ in summaries
        self.errors: list[str] = []

    def messages(self, battle: Battle) -> list[dict]:
        text = self.template.render(task=battle.task, report_a=battle.report_a, report_b=battle.report_b,
                                    reference=battle.reference if self.with_reference else "")
        content = [{"type": "text", "text": text}]
        if self.with_image and battle.image is not None:
            content.insert(0, image_part(battle.image))
        return [{"role": "user", "content": content}]

    def judge(self, battles: list[Battle]) -> list[str]:
        """A verdict per battle; "failed" where the call got no reply after its retries (its error,
        redacted, kept in ``errors``): a judge that is down is not a judge that cannot decide."""
        results = self.endpoint.complete_all([self.messages(b) for b in battles])
        self.errors += [result.error or "no reply" for result in results if result.content is None]
        return ["failed" if result.content is None else parse_verdict(result.content) for result in results]

    @property
    def calls_made(self) -> int:
        return self.endpoint.calls_made
