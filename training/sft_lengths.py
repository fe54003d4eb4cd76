"""Rows longer than ``cutoff_len``, counted before an SFT stage starts.

LLaMA-Factory cuts a row longer than ``cutoff_len`` without a word (``infer_seqlen`` in
``data/processor/processor_utils.py``): it drops the end of the prompt, the assistant header
included, and the end of the response, so the model learns traces that stop before their answer
(with ``packing`` it drops the row, with a log line).
This module counts such rows with LLaMA-Factory's own dataset list, converter, template and image
plugin, so the count is the trainer's; it runs in the parser's child process
(``training/llamafactory_parser.py``), which already holds LLaMA-Factory.

An image's tokens depend only on its size, so each distinct size is expanded once by the plugin
on a blank image of that size; a row's images are measured from their file headers, not decoded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.jsonl import read_jsonl

IMAGE_PLACEHOLDER = "<image>"  # LLaMA-Factory's default (extras/constants.py), what our builds write


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines or JSON-list file of objects as LLaMA-Factory's ``json`` loader (HF datasets) reads
    it: a key that some rows lack is None in them. JSON lines are read by the project's one JSONL
    reader (``eval.jsonl``): every line that is not a JSON object is named, not only the first."""
    if path.suffix == ".json":
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:  # not JSON, or not UTF-8
            raise ValueError(f"{path}: not a JSON document ({error})") from None
        rows = loaded if isinstance(loaded, list) else [loaded]
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise ValueError(f"{path}: item {number} is not a JSON object")
    else:
        content = read_jsonl(path)
        if content.bad:  # LLaMA-Factory's loader would stop at the first, after the stages before it ran
            shown = content.problems()[:5]
            more = f"; and {len(content.bad) - len(shown)} more" if len(content.bad) > len(shown) else ""
            raise ValueError(f"{len(content.bad)} line(s) are not JSON objects: {'; '.join(shown)}{more}")
        rows = content.rows
    keys = {key for row in rows for key in row}
    return [{**dict.fromkeys(keys), **row} for row in rows]


class RowMeasure:
    """Token length of a converted row, as LLaMA-Factory's supervised processor encodes it."""

    def __init__(self, template, tokenizer, processor):
        self.template, self.tokenizer, self.processor = template, tokenizer, processor
        self.image_tokens_by_size: dict[tuple[int, int], int] = {}

    def encode(self, messages, system, tools, images) -> int:
        messages = self.template.mm_plugin.process_messages(messages, images, [], [], self.processor)
        input_ids, _ = self.template.mm_plugin.process_token_ids([], [], images, [], [], self.tokenizer, self.processor)
        pairs = self.template.encode_multiturn(self.tokenizer, messages, system, tools)
        extra = 1 if self.template.efficient_eos else 0
        return len(input_ids) + extra + sum(len(source) + len(target) for source, target in pairs)

    def image_tokens(self, size: tuple[int, int]) -> int:
        """What one image of ``size`` adds to a row: the plugin's expansion of its placeholder."""
        if size not in self.image_tokens_by_size:
            from PIL import Image

            with_image = [{"role": "user", "content": IMAGE_PLACEHOLDER}, {"role": "assistant", "content": ""}]
            without = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]
            self.image_tokens_by_size[size] = (self.encode(with_image, None, None, [Image.new("RGB", size)])
                                               - self.encode(without, None, None, []))
        return self.image_tokens_by_size[size]

    def __call__(self, row: dict[str, Any]) -> int:
        from PIL import Image

        images = row.get("_images") or []
        sizes = []
        for image in images:
            with Image.open(image) as opened:  # reads the header only
                sizes.append(opened.size)
        messages = [{**message, "content": message["content"].replace(IMAGE_PLACEHOLDER, "")}
                    for message in row["_prompt"] + row["_response"]]
        text = self.encode(messages, row.get("_system") or None, row.get("_tools") or None, [])
        return text + sum(self.image_tokens(size) for size in sizes)


def over_cutoff_problems(model_args, data_args) -> list[str]:
    """One problem per dataset with rows longer than ``cutoff_len``; none when the datasets or the
    tokenizer are not there yet (an earlier stage writes them: this runs again at the stage's start)."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list

    if data_args.dataset is None:
        return []
    try:
        attributes = get_dataset_list(data_args.dataset, data_args.dataset_dir)
    except ValueError:
        return []  # not registered (yet): training.check.sft_dataset_problems says which
    files = [Path(data_args.dataset_dir) / attribute.dataset_name for attribute in attributes]
    if any(attribute.load_from != "file" for attribute in attributes) or not all(path.is_file() for path in files):
        return []
    try:
        from llamafactory.model import load_tokenizer

        loaded = load_tokenizer(model_args)
    except (OSError, ValueError):
        return []  # the model is not there yet (an earlier stage writes it) or not local; the trainer says so
    tokenizer, processor = loaded["tokenizer"], loaded["processor"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    measure = RowMeasure(template, tokenizer, processor)
    problems = []
    names = [name.strip() for name in data_args.dataset]
    for name, attribute, path in zip(names, attributes, files):
        converter = get_dataset_converter(attribute.formatting, attribute, data_args)
        try:
            rows = read_rows(path)
        except ValueError as error:
            problems.append(f"dataset {name!r}: {error}")
            continue
        lengths, unreadable = [], []
        for row in rows:
            converted = converter(row)
            if len(converted["_prompt"]) % 2 != 1 or len(converted["_response"]) != 1:
                continue  # LLaMA-Factory drops it as invalid, with a warning of its own
            try:
                lengths.append(measure(converted))
            except OSError as error:  # the trainer would stop on it hours in
                unreadable.append(f"{type(error).__name__}: {error}")
        if unreadable:
            problems.append(f"dataset {name!r} ({path}): {len(unreadable)} rows name an image that cannot be "
                            f"opened (first: {unreadable[0]})")
        over = [length for length in lengths if length > data_args.cutoff_len]
        if over:
            problems.append(
                f"dataset {name!r} ({path}): {len(over)} of {len(lengths)} rows are longer than "
                f"cutoff_len={data_args.cutoff_len} tokens (longest {max(over)}); LLaMA-Factory would cut the "
                "end of their prompt and response without a warning (with packing: drop them). Raise cutoff_len "
                f"to at least {max(over)} or shorten those rows")
    return problems

