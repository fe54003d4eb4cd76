"""The frame is a fixed point of every consumer's preprocessing, checked against their real code.

An image written at ``model_frame`` size must come out of each consumer at that same size, or the
model sees another frame than the ground truth's boxes: LLaMA-Factory's Qwen2-VL plugin pre-scaling
(SFT), EasyR1's ``process_image`` (GRPO, pinned commit), then the Qwen2.5-VL processor's
``smart_resize`` (transformers; HF inference), vLLM (the same processor given the run's
``max_pixels`` as ``mm_processor_kwargs``) and qwen-vl-utils' ``smart_resize``. Sizes only matter, so
the consumers get a stand-in image object that records each resize (nothing is decoded), which lets
the real functions run over 50,176 sizes per setting in seconds.
"""

from __future__ import annotations

import pytest
from transformers.models.qwen2_vl.image_processing_qwen2_vl import (
    smart_resize as transformers_smart_resize,
)

from rewards.frame import PROCESSOR_MIN_PIXELS, consumer_frame, model_frame
from tests.easyr1 import import_easyr1

# 224 x 224 sizes from 60 to 4,300 px (portable radiographs to full-resolution CXRs): 50,176 pairs.
SIDES = range(60, 4301, 19)
SIZES = [(width, height) for width in SIDES for height in SIDES]
# The released Qwen2.5-VL checkpoints' processor limit and transformers' default one.
PROCESSOR_MAX_PIXELS = (28 * 28 * 16384, 28 * 28 * 1280)
SETTINGS = {"default run": (3136, 262144), "demo run": (3136, 12544), "1280 tokens": (3136, 1003520)}


class SizeOnlyImage:
    """Stands in for a PIL image where only the size matters: ``resize`` returns the new size."""

    mode = "RGB"

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def resize(self, size, *args, **kwargs) -> SizeOnlyImage:
        return SizeOnlyImage(*size)

    def load(self) -> None:
        pass

    def convert(self, mode: str) -> SizeOnlyImage:
        return self


@pytest.fixture(scope="module")
def consumers():
    """name -> fn(frame, min_pixels, max_pixels) -> (width, height) the model would see."""
    from llamafactory.data.template import TEMPLATES
    from qwen_vl_utils.vision_process import smart_resize as qwen_vl_utils_smart_resize

    import_easyr1("verl.utils.dataset")
    from verl.utils.dataset import process_image

    plugin = TEMPLATES["qwen2_vl"].mm_plugin  # the recipes' template

    def processor(width, height, max_pixels):
        h, w = transformers_smart_resize(height, width, factor=28, min_pixels=PROCESSOR_MIN_PIXELS,
                                         max_pixels=max_pixels)
        return w, h

    def llamafactory(frame, low, high, processor_max):
        image = plugin._preprocess_image(SizeOnlyImage(frame.width, frame.height), image_max_pixels=high,
                                         image_min_pixels=low)
        return processor(image.width, image.height, processor_max)

    def easyr1(frame, low, high, processor_max):
        image = process_image(SizeOnlyImage(frame.width, frame.height), low, high)
        return processor(image.width, image.height, processor_max)

    def hf_inference(frame, low, high, processor_max):
        return processor(frame.width, frame.height, processor_max)

    def vllm_inference(frame, low, high, processor_max):  # eval/infer.py: mm_processor_kwargs={"max_pixels": ...}
        return processor(frame.width, frame.height, high)

    def qwen_vl_utils(frame, low, high, processor_max):
        h, w = qwen_vl_utils_smart_resize(frame.height, frame.width, 28, min_pixels=low, max_pixels=high)
        return w, h

    return {"LLaMA-Factory": llamafactory, "EasyR1": easyr1, "HF inference": hf_inference,
            "vLLM inference": vllm_inference, "qwen-vl-utils": qwen_vl_utils}


def mismatches(frame_of, consumers, low, high) -> dict[str, list]:
    found = {name: [] for name in consumers}
    for width, height in SIZES:
        frame = frame_of(width, height, low, high)
        for processor_max in PROCESSOR_MAX_PIXELS:
            for name, consume in consumers.items():
                if consume(frame, low, high, processor_max) != (frame.width, frame.height):
                    found[name].append(((width, height), frame, processor_max))
    return found


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_consumer_leaves_the_frame_unchanged(consumers, setting):
    low, high = SETTINGS[setting]
    assert len(SIZES) >= 50_000
    found = mismatches(model_frame, consumers, low, high)
    assert {name: len(cases) for name, cases in found.items()} == {name: 0 for name in consumers}, (
        {name: cases[:3] for name, cases in found.items() if cases})
    for width, height in SIZES[::97]:
        frame = model_frame(width, height, low, high)
        assert frame.width % 28 == 0 and frame.height % 28 == 0 and low <= frame.area <= high
        assert model_frame(frame.width, frame.height, low, high) == frame  # idempotent


def test_the_check_catches_the_old_frame(consumers):
    """The old frame (smart_resize within the processor's limits, what the trainers compute from an
    unresized file) is shrunk again by EasyR1 for 5,958 of these 50,176 sizes (12%)."""
    found = mismatches(consumer_frame, consumers, 3136, 262144)
    assert len({case[0] for case in found["EasyR1"]}) > 0.05 * len(SIZES)
    assert found["LLaMA-Factory"] and found["vLLM inference"]


def test_real_processor_sees_the_frame_on_real_images():
    """The Qwen2.5-VL image processor on decoded images: its patch grid is the frame, 14 px a patch."""
    from PIL import Image
    from transformers import Qwen2VLImageProcessor

    processor = Qwen2VLImageProcessor(min_pixels=3136, max_pixels=28 * 28 * 16384)
    for width, height in SIZES[::1601]:
        frame = model_frame(width, height, 3136, 262144)
        image = Image.new("RGB", (frame.width, frame.height), (90, 90, 90))
        grid = processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
        assert grid == [1, frame.height // 14, frame.width // 14], (width, height, frame)

