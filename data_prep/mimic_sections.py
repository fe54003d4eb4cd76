"""Findings and impression of a MIMIC-CXR free-text report, sectioned as MIT-LCP's reference
parser (``mimic-cxr/txt/section_parser.py``) does it, so our targets match the literature's.

Its rules, which the reports' layout makes necessary:
- a header is upper-case text (letters, spaces, ``()/,-``) after a newline **and one space** and
  followed by a colon and whitespace (every report line starts with one space);
- text before the first header is the preamble (addenda and ``FINAL REPORT`` land there);
- the search for the next header resumes after the first newline following a header, so a header
  never ends immediately on its own line;
- header names are lower-cased and synonyms mapped (``conclusion`` -> impression, misspellings too);
- empty findings/impression sections are dropped;
- with neither section left, the text after the first blank line of the last section becomes
  ``last_paragraph``;
- when a section occurs more than once, the **last** occurrence wins.
"""

from __future__ import annotations

import re

HEADER = re.compile(r"\n ([A-Z ()/,-]+):\s", re.DOTALL)

# Header name (lower case, stripped) -> the section it stands for.
SECTION_SYNONYMS = {
    "impression": "impression",
    "impressions": "impression",
    "impresson": "impression",
    "impressiion": "impression",
    "impression and recommendation": "impression",
    "impression and recommendations": "impression",
    "final impression": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "findings and impression": "impression",
    "findings/impression": "impression",
    "findings": "findings",
    "finding": "findings",
    "pa and lateral views of the chest": "findings",
    "frontal and lateral views of the chest": "findings",
    "portable view of the chest": "findings",
    "chest, pa and lateral": "findings",
    "comparison": "comparison",
    "comparisons": "comparison",
}


def split_sections(text: str) -> list[tuple[str, str]]:
    """(name, text) pairs in report order; names normalised, empty findings/impression dropped."""
    first = HEADER.search(text)
    if first is None:
        return [("full report", text)]
    sections = [("preamble", text[: first.start(1)])]
    match = first
    while match is not None:
        name = match.group(1).strip().lower()
        start = match.end()
        newline = text.find("\n", start)
        match = HEADER.search(text, newline if newline != -1 else start)
        end = match.start() if match is not None else len(text)
        sections.append((SECTION_SYNONYMS.get(name, name), text[start:end]))

    sections = [(n, t) for n, t in sections if not (n in ("findings", "impression") and not t.strip())]
    names = {n for n, _ in sections}
    if "findings" not in names and "impression" not in names:
        last_name, last_text = sections[-1]
        if "\n \n" in last_text:
            head, _, tail = last_text.partition("\n \n")
            sections[-1] = (last_name, head)
            sections.append(("last_paragraph", tail))
    return sections


def report_sections(text: str) -> dict[str, str]:
    """The last occurrence of each of findings, impression, last_paragraph, comparison (raw text)."""
    found: dict[str, str] = {}
    for name, section_text in split_sections(text):
        if name in ("findings", "impression", "last_paragraph", "comparison"):
            found[name] = section_text.strip()
    return found
