"""Images: verified, sized in the model's frame and (by default) written once at that size.

Writing each image at its frame size (both sides multiples of 28, inside the recipes' pixel limits)
makes every later resize a no-op: LLaMA-Factory, EasyR1 and evaluation then see identical pixels
and the boxes in the ground truth fit them exactly, and trainers stop decoding 3000 x 2500 JPEGs
every epoch. A missing, truncated or undecodable image is reported with its reason, never raised.
Work is spread over processes (``workers``) with a progress bar; an image already written at the
right size by an earlier run is kept, so an interrupted build resumes.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from rewards.frame import Frame, consumer_frame, model_frame

Image.MAX_IMAGE_PIXELS = 200_000_000  # chest X-rays reach ~4,000 x 5,000; refuse only absurd sizes


@dataclass(frozen=True)
class PreparedImage:
    path: str  # as written into the datasets: relative to the output folder, or the original path
    original_size: tuple[int, int]  # (width, height) of the source image
    frame: Frame


@dataclass(frozen=True)
class ImageJob:
    source: Path
    target: Path | None  # None: keep the original file (``resize: false``)
    min_pixels: int
    max_pixels: int
    quality: int


def prepare_one(job: ImageJob) -> PreparedImage | tuple[str, str]:
    """The prepared image, or (reason, detail) when it cannot be used."""
    try:
        with Image.open(job.source) as image:
            width, height = image.size
            # written: at the frame every consumer leaves unchanged; kept: the size the trainers resize it to
            frame = (model_frame if job.target is not None else consumer_frame)(width, height, job.min_pixels,
                                                                                 job.max_pixels)
            if job.target is not None and _already_written(job.target, frame):
                return PreparedImage(str(job.target), (width, height), frame)
            if job.target is None:
                image.load()  # decode fully: a truncated file fails here, not inside a trainer
                return PreparedImage(str(job.source), (width, height), frame)
            resized = decode_into_frame(image, frame)
    except FileNotFoundError:
        return ("missing_image", str(job.source))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return ("unreadable_image", f"{job.source}: {error}")
    job.target.parent.mkdir(parents=True, exist_ok=True)
    temporary = job.target.with_name(f".{job.target.name}.{os.getpid()}.tmp")
    resized.save(temporary, format="JPEG", quality=job.quality)
    os.replace(temporary, job.target)
    return PreparedImage(str(job.target), (width, height), frame)


def decode_into_frame(image: Image.Image, frame: Frame) -> Image.Image:
    """``image`` decoded and resized (bicubic) to ``frame``, in grey.

    A JPEG at least twice the frame's size is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain
    (libjpeg's scaled IDCT, ``Image.draft``), the largest reduction that still leaves at least the
    frame's size; the bicubic resize then reads exactly the original extent (``box``), so the
    geometry, and with it every box in the frame, is unchanged. On MIMIC-sized X-rays this is over
    2x faster per image than decoding all 2544 x 3056 pixels and differs from it by well under one
    grey level on average (``benchmarks/data_prep_scale.py``). It still verifies the file: the data
    is entropy-decoded to its end whatever the scale, so a truncated JPEG fails here exactly as when
    decoded in full (tests/data_prep/test_images.py cuts files at many offsets). Everything else
    is decoded in full. Deterministic: the same bytes in give the same pixels, in any process.
    """
    size = (frame.width, frame.height)
    box = None
    if image.format == "JPEG":
        drafted = image.draft(image.mode, size)  # keeps the mode: colour is converted below as before
        box = drafted[1] if drafted else None
    return image.convert("L").resize(size, Image.Resampling.BICUBIC, box=box)


def _already_written(target: Path, frame: Frame) -> bool:
    try:
        with Image.open(target) as written:
            return written.size == (frame.width, frame.height)
    except (FileNotFoundError, UnidentifiedImageError, OSError):
        return False


def prepare_images(jobs: list[ImageJob], workers: int, description: str = "images") -> list:
    """``prepare_one`` over ``jobs`` (in order), in ``workers`` processes (0: in this process)."""
    progress = tqdm(total=len(jobs), desc=description, unit="img", disable=not jobs, mininterval=1.0)
    results = []
    if workers <= 0:
        for job in jobs:
            results.append(prepare_one(job))
            progress.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(prepare_one, jobs, chunksize=max(1, min(64, len(jobs) // (workers * 8) or 1))):
                results.append(result)
                progress.update()
    progress.close()
    return results
