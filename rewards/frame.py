"""The model's coordinate frame: the image size Qwen2.5-VL writes absolute box coordinates in.

Every consumer of an image resizes it before the model sees it. LLaMA-Factory (SFT,
``mm_plugin._preprocess_image``) and EasyR1 (GRPO, ``process_image``) pre-scale: above ``max_pixels``
both sides are multiplied by ``sqrt(max_pixels / (w*h))`` and truncated with ``int()``, below
``min_pixels`` likewise scaled up. The Qwen2.5-VL processor (HF inference, and vLLM, which the recipes
give ``max_pixels``) then applies ``smart_resize``: each side rounded to a multiple of 28 within its
pixel limits. A size that is a multiple of 28 on both sides and inside *every* one of those limits is
left unchanged by all of them: that is the frame (``model_frame``), the data build writes each image
at it, and every box the reward checks, every ground-truth box and the frame stored in the ground
truth live in it. Rounding within the processor's limits alone (as this module once did) lands 28 px
above ``max_pixels`` for ~6% of sizes, which the trainers then shrink a second time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Qwen2.5-VL's vision special tokens: a model must never generate them (a random one can, which
# breaks its image-token bookkeeping), so generation suppresses them.
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
# Qwen2.5-VL: 14-pixel patches merged 2x2, so one visual token per 28x28 pixels.
PATCH_FACTOR = 28
# The Qwen2.5-VL image processor's limits: transformers' defaults. A frame never exceeds them, so it is
# also a fixed point of a processor configured with wider ones (the fixed-point test checks 28*28*16384).
PROCESSOR_MIN_PIXELS = 56 * 56
PROCESSOR_MAX_PIXELS = 28 * 28 * 1280


@dataclass(frozen=True)
class Frame:
    """Width and height, in pixels, of the image as the model sees it."""

    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"frame {name} must be a positive integer, got {value!r}")

    @property
    def area(self) -> int:
        return self.width * self.height


def prescale(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The trainers' pre-scaling (EasyR1 ``process_image`` = LLaMA-Factory ``_preprocess_image``)."""
    if width * height > max_pixels:
        factor = math.sqrt(max_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if width * height < min_pixels:
        factor = math.sqrt(min_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    return width, height


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The Qwen2-VL / Qwen2.5-VL image processor's resize rule: (height, width) rounded to multiples
    of ``factor``, then scaled (keeping the aspect ratio) into [min_pixels, max_pixels].

    Written here, not imported from transformers, because that import pulls in torch (about 4 s in
    every data-preparation worker) for a few lines of integer arithmetic; a test checks it against
    transformers' own ``smart_resize`` over thousands of sizes.
    """
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio of {width}x{height} exceeds 200, which Qwen2.5-VL refuses")
    resized_height = round(height / factor) * factor
    resized_width = round(width / factor) * factor
    if resized_height * resized_width > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        resized_height = max(factor, math.floor(height / beta / factor) * factor)
        resized_width = max(factor, math.floor(width / beta / factor) * factor)
    elif resized_height * resized_width < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        resized_height = math.ceil(height * beta / factor) * factor
        resized_width = math.ceil(width * beta / factor) * factor
    return resized_height, resized_width


def model_frame(
    width: int,
    height: int,
    min_pixels: int,
    max_pixels: int,
    processor_min_pixels: int = PROCESSOR_MIN_PIXELS,
    processor_max_pixels: int = PROCESSOR_MAX_PIXELS,
) -> Frame:
    """The size to write an original ``width`` x ``height`` image at: both sides multiples of 28, the
    area inside both the recipes' limits and the processor's, so every consumer's resize is a no-op.

    It is ``smart_resize`` of the pre-scaled size within the tighter of the two pairs of limits (so
    it equals what the trainers compute wherever that already fits), except that an image too thin
    to reach ``min_pixels`` without exceeding ``max_pixels`` at a 28 px short side has its long side
    cut back. Raises ``ValueError`` when no such size exists (limits that cross, or an aspect ratio
    beyond the 200 the processor accepts).
    """
    low, high = max(min_pixels, processor_min_pixels), min(max_pixels, processor_max_pixels)
    if high < max(low, PATCH_FACTOR * PATCH_FACTOR):
        raise ValueError(f"no frame fits pixel limits [{low}, {high}] (min_pixels/max_pixels and the processor's)")
    scaled_width, scaled_height = prescale(width, height, min_pixels, max_pixels)
    resized_height, resized_width = smart_resize(scaled_height, scaled_width, PATCH_FACTOR, low, high)
    if resized_height * resized_width > high:  # a side held at 28 px, or rounded up to reach `low`
        if resized_height >= resized_width:
            resized_height = max(PATCH_FACTOR, high // resized_width // PATCH_FACTOR * PATCH_FACTOR)
        else:
            resized_width = max(PATCH_FACTOR, high // resized_height // PATCH_FACTOR * PATCH_FACTOR)
    area = resized_height * resized_width
    if not low <= area <= high or max(resized_height, resized_width) > 200 * min(resized_height, resized_width):
        raise ValueError(f"a {width}x{height} image has no frame within pixel limits [{low}, {high}] and an "
                         "aspect ratio of at most 200")
    return Frame(width=resized_width, height=resized_height)


def consumer_frame(
    width: int,
    height: int,
    min_pixels: int,
    max_pixels: int,
    processor_min_pixels: int = PROCESSOR_MIN_PIXELS,
    processor_max_pixels: int = PROCESSOR_MAX_PIXELS,
) -> Frame:
    """The size LLaMA-Factory and EasyR1 turn a ``width`` x ``height`` file into (pre-scaling, then the
    processor's ``smart_resize``): the frame of an image kept at its original size (``resize: false``).
    Not a fixed point: it can exceed ``max_pixels``, and inference (no pre-scaling) may differ."""
    scaled_width, scaled_height = prescale(width, height, min_pixels, max_pixels)
    resized_height, resized_width = smart_resize(
        scaled_height, scaled_width, PATCH_FACTOR, processor_min_pixels, processor_max_pixels
    )
    return Frame(width=resized_width, height=resized_height)


def scale_box_to_frame(
    box: tuple[float, float, float, float], original: tuple[int, int], frame: Frame
) -> tuple[float, float, float, float]:
    """Map ``[x1, y1, x2, y2]`` from original-image pixels (``original`` = width, height) to ``frame``."""
    sx, sy = frame.width / original[0], frame.height / original[1]
    x1, y1, x2, y2 = box
    return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
