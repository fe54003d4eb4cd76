"""eval.infer asks the model exactly what LLaMA-Factory trained it on: same token ids (system prompt,
chat template, expanded image tokens, text after the image) and the same pixels, for one sharegpt
row of the data build. A mismatch here makes a trained model look untrained on every real run."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from training.tiny_model import build

    return build(tmp_path_factory.mktemp("tiny") / "model")


def llamafactory_encoding(model_dir: Path, messages: list[dict], image: Path, max_pixels: int, min_pixels: int):
    """LLaMA-Factory 0.9.5's own path for an SFT row: template, multi-modal plugin, processor."""
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    # What llamafactory.model.loader.load_tokenizer attaches from ModelArguments.
    for key, value in {"image_max_pixels": max_pixels, "image_min_pixels": min_pixels, "image_do_pan_and_scan": False,
                       "video_max_pixels": max_pixels, "video_min_pixels": min_pixels, "video_fps": 2.0,
                       "video_maxlen": 128, "audio_sampling_rate": 16000, "use_audio_in_video": False}.items():
        setattr(processor, key, value)
    template = get_template_and_fix_tokenizer(processor.tokenizer, DataArguments(template="qwen2_vl"))
    images = [str(image)]
    processed = template.mm_plugin.process_messages(messages, images, [], [], processor)
    prompt_ids, answer_ids = template.encode_oneturn(processor.tokenizer, processed, None, None)
    mm = template.mm_plugin._get_mm_inputs(images, [], [], processor)
    return prompt_ids, answer_ids, mm, processor.tokenizer


LARGER_THAN_THE_FRAME = pytest.param((300, 200), marks=pytest.mark.xfail(strict=True, reason=(
    "known gap: above max_pixels LLaMA-Factory first resizes by its own rule (mm_plugin._preprocess_image) and "
    "eval.infer by the processor's smart_resize only, so the grids differ; the data build writes every image at "
    "its frame (<= max_pixels), where both agree")))


# The demo's frames (112 x 112 frontal, 84 x 140), then an image the data build would have resized.
@pytest.mark.parametrize("size", [(112, 112), (84, 140), LARGER_THAN_THE_FRAME])
def test_eval_prompt_and_pixels_are_the_training_ones(tiny, tmp_path, size):
    from eval.infer import HFGenerator

    image = tmp_path / "image.png"
    Image.effect_noise(size, 60).convert("RGB").save(image)
    question = "is there evidence of pleural effusion in this image? Answer with a single word or phrase."
    messages = [{"role": "user", "content": "<image>" + question}, {"role": "assistant", "content": "yes"}]
    generator = HFGenerator(str(tiny), OmegaConf.create({"temperature": 0, "top_p": 1.0, "seed": 0,
                                                         "max_new_tokens": 4}))
    processor = generator.processor.image_processor
    prompt_ids, answer_ids, trained, tokenizer = llamafactory_encoding(
        tiny, messages, image, processor.max_pixels, processor.min_pixels)
    fed = generator.inputs([question], [Image.open(image)])
    assert fed["input_ids"][0].tolist() == prompt_ids, tokenizer.decode(prompt_ids)
    assert fed["image_grid_thw"].tolist() == trained["image_grid_thw"].tolist()
    assert fed["pixel_values"].shape == trained["pixel_values"].shape
    assert (fed["pixel_values"] - trained["pixel_values"]).abs().max() < 0.05  # resampling rounding only
    assert tokenizer.decode(answer_ids[:1]) == "yes"  # the answer's first token decides it


def test_the_tiny_vocabulary_holds_short_answers_whole(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    for answer in ("yes", "no"):
        assert tokenizer.tokenize(answer) == [answer]
