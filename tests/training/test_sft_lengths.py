"""Rows longer than cutoff_len are refused before an SFT stage starts, counted as LLaMA-Factory counts.

The demo's stage 2 ran for rounds at cutoff_len 512 with 190 of its 2,000 traces (findings reports, up
to 684 tokens) cut by LLaMA-Factory without a word: the end of the prompt and the answer were gone."""

import json

import pytest
from PIL import Image

from training.llamafactory_parser import LlamaFactoryParser

pytestmark = pytest.mark.slow

REPORT = "The heart size is normal. The lungs are clear. There is no pleural effusion or pneumothorax. " * 12
ROWS = [
    {"messages": [{"role": "user", "content": "<image>Is there a pneumothorax?"},
                  {"role": "assistant", "content": "no"}], "images": ["images/square.jpg"]},
    {"messages": [{"role": "user", "content": "<image>Please write the FINDINGS section."},
                  {"role": "assistant", "content": REPORT}], "images": ["images/wide.jpg"]},
    {"messages": [{"role": "user", "content": "<image><image>Compare the two studies."},
                  {"role": "assistant", "content": "<think> Both are clear. </think> \\boxed{no}"}],
     "images": ["images/square.jpg", "images/small.png"]},
    {"messages": [{"role": "user", "content": "What is a pleural effusion?"},
                  {"role": "assistant", "content": REPORT[:200]}]},
]
SIZES = {"square.jpg": (336, 336), "wide.jpg": (300, 200), "small.png": (60, 52)}  # small: below min_pixels


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from training import tiny_model

    root = tmp_path_factory.mktemp("lengths")
    model = tiny_model.build(root / "tiny", min_pixels=3136, max_pixels=12544)
    data = root / "data"
    (data / "images").mkdir(parents=True)
    for name, size in SIZES.items():
        Image.new("L", size, 90).save(data / "images" / name)
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    (data / "dataset_info.json").write_text(json.dumps({"rows": {
        "file_name": "rows.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"},
        "tags": tags}}))
    (data / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return root, model, data


def config(model, data, cutoff_len: int) -> dict:
    return {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
            "dataset": "rows", "dataset_dir": str(data), "template": "qwen2_vl", "cutoff_len": cutoff_len,
            "output_dir": str(data.parent / "out"), "image_max_pixels": 12544, "image_min_pixels": 3136,
            "per_device_train_batch_size": 1, "report_to": "none", "bf16": False}


def llamafactory_view(model, data):
    """The tokenizer, template and converter LLaMA-Factory builds for ``config``, and the rows it reads."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    from training.sft_lengths import read_rows

    model_args, data_args, *_ = get_train_args(config(model, data, 100_000))
    loaded = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(loaded["tokenizer"], data_args)
    attribute = get_dataset_list(data_args.dataset, data_args.dataset_dir)[0]
    converter = get_dataset_converter(attribute.formatting, attribute, data_args)
    return loaded, template, data_args, [converter(row) for row in read_rows(data / "rows.jsonl")]


def trainer_lengths(model, data) -> list[int]:
    """Each row's length from LLaMA-Factory's own supervised processor, images decoded and processed."""
    from llamafactory.data.processor.supervised import SupervisedDatasetProcessor

    loaded, template, data_args, rows = llamafactory_view(model, data)
    processor = SupervisedDatasetProcessor(template=template, tokenizer=loaded["tokenizer"],
                                           processor=loaded["processor"], data_args=data_args)
    lengths = []
    for row in rows:
        input_ids, _ = processor._encode_data_example(
            row["_prompt"], row["_response"], row["_system"], row["_tools"], row["_images"] or [], [], [])
        lengths.append(len(input_ids))
    return lengths


def test_lengths_are_the_trainers_own(world):
    """Image tokens from the header size (one blank image per size) add up to what the trainer encodes."""
    from training.sft_lengths import RowMeasure

    _, model, data = world
    loaded, template, _, rows = llamafactory_view(model, data)
    measure = RowMeasure(template, loaded["tokenizer"], loaded["processor"])
    assert [measure(row) for row in rows] == trainer_lengths(model, data)
    assert len(set(measure.image_tokens_by_size.values())) > 1  # the sizes really differ in tokens


@pytest.fixture(scope="module")
def parser():
    child = LlamaFactoryParser()
    yield child
    child.close()


def test_a_row_past_cutoff_len_is_refused_with_the_count_and_the_length_to_set(world, parser):
    _, model, data = world
    lengths = trainer_lengths(model, data)
    longest = max(lengths)
    cutoff = sorted(lengths)[-2]  # every row but the longest fits
    problems = parser.problems(config(model, data, cutoff))
    assert len(problems) == 1, problems
    assert f"1 of {len(ROWS)} rows are longer than cutoff_len={cutoff}" in problems[0]
    assert f"(longest {longest})" in problems[0] and f"at least {longest}" in problems[0]
    assert parser.problems(config(model, data, longest)) == []


def test_before_the_model_or_the_rows_exist_nothing_is_measured(world, parser):
    root, model, data = world
    assert parser.problems(config(root / "stage1-not-yet", data, 16)) == []  # written by an earlier stage
    assert parser.problems(config(model, root / "no-data-yet", 16)) == []


def test_an_unreadable_image_or_a_broken_line_is_named(world, parser, tmp_path):
    _, model, data = world
    broken = tmp_path / "data"
    (broken / "images").mkdir(parents=True)
    (broken / "dataset_info.json").write_text((data / "dataset_info.json").read_text())
    (broken / "images" / "square.jpg").write_bytes(b"not a jpeg")
    (broken / "rows.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    problems = parser.problems(config(model, broken, 4096))
    assert len(problems) == 1 and "1 rows name an image that cannot be opened" in problems[0], problems
    # Every bad line is named, with its line number and why, not only the first.
    (broken / "rows.jsonl").write_text(json.dumps(ROWS[3]) + "\n{not json\n" + json.dumps(ROWS[3]) + "\n[1, 2]\n")
    problems = parser.problems(config(model, broken, 4096))
    assert len(problems) == 1 and "2 line(s) are not JSON objects" in problems[0], problems
    assert "rows.jsonl:2: not valid JSON" in problems[0] and "rows.jsonl:4: not a JSON object" in problems[0], problems


def test_read_rows_fills_missing_keys_and_names_every_bad_item(tmp_path):
    from training.sft_lengths import read_rows

    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"a": 1}\n\n{"a": 2, "b": 3}\n')
    assert read_rows(lines) == [{"a": 1, "b": None}, {"a": 2, "b": 3}]  # as HF's json loader: a blank line skipped
    lines.write_text('{"a": 1}\nNaN\n"text"\n{"a": \n')
    with pytest.raises(ValueError, match=r"3 line\(s\) are not JSON objects: .*:2: .*:3: not a JSON object.*:4: "):
        read_rows(lines)
    listed = tmp_path / "rows.json"
    listed.write_text('[{"a": 1}, {"b": 2}]')
    assert read_rows(listed) == [{"a": 1, "b": None}, {"a": None, "b": 2}]
    listed.write_text('[{"a": 1}, 7]')
    with pytest.raises(ValueError, match="item 2 is not a JSON object"):
        read_rows(listed)
    listed.write_text('[{"a": 1},')
    with pytest.raises(ValueError, match="rows.json: not a JSON document"):
        read_rows(listed)
