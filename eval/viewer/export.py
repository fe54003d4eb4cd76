"""Static export: one PNG per item with every box of the reasoning drawn on the X-ray, numbered by
step, the models side by side, for papers and slides. The item's true boxes (from its ground
truth), where it has any, are drawn thin and white underneath. A model's box is drawn wherever it
points, even with its corners swapped (the reward's judgement of it is in the scores, not here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image, ImageDraw

from eval.viewer.items import ViewItem, reasoning_steps

COLOURS = ((230, 57, 70), (29, 53, 87), (42, 157, 143), (233, 196, 106), (244, 162, 97), (69, 123, 157))


def true_boxes(item: dict) -> list:
    """The item's ground-truth boxes (the reward's JSON), in its frame; [] without any."""
    try:
        boxes = json.loads(item.get("ground_truth") or "{}").get("boxes", [])
    except (json.JSONDecodeError, AttributeError):
        return []
    return boxes if isinstance(boxes, list) else [boxes]


def drawable(box, scale: int, size: tuple[int, int]) -> list[float] | None:
    """The box as PIL's rectangle wants it (left <= right, top <= bottom), scaled and clipped to just
    outside the ``size`` canvas; ``None`` for anything that is not four finite numbers. Models write
    boxes with their corners swapped or far off the image (``[1e300, ...]`` parses), and PIL refuses
    those with errors that would stop the whole export."""
    try:
        x1, y1, x2, y2 = (float(value) for value in box)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(value) for value in (x1, y1, x2, y2)):
        return None
    width, height = size
    xs = sorted(min(max(value * scale, -2.0), width + 2.0) for value in (x1, x2))
    ys = sorted(min(max(value * scale, -2.0), height + 2.0) for value in (y1, y2))
    return [xs[0], ys[0], xs[1], ys[1]]


def render_side(item: ViewItem, side: int, problems: list[str] | None = None) -> Image.Image:
    """The image at its frame size (boxes are in that frame) with the side's boxes drawn; a true box
    that is not four finite numbers, or a model's box past float range, is left out and named in
    ``problems``."""
    frame = item.item.get("frame") or {}
    with Image.open(item.image) as original:
        image = original.convert("RGB")
    if frame and (image.width, image.height) != (frame["width"], frame["height"]):
        image = image.resize((frame["width"], frame["height"]))
    scale = max(1, round(512 / max(image.size)))  # upscale small frames so the drawing stays legible
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    for written in true_boxes(item.item):  # the ground truth's boxes, thin white, under the model's
        if (box := drawable(written, scale, image.size)) is None:
            if side == 0 and problems is not None:  # the same truth is drawn on every side: named once
                problems.append(f"item {item.item.get('id')}: true box {written!r} is not four finite numbers")
            continue
        draw.rectangle(box, outline=(255, 255, 255), width=1)
    for step in reasoning_steps(item.predictions[side].get("reasoning", "")):
        colour = COLOURS[step["index"] % len(COLOURS)]
        if step["unplaceable_boxes"] and problems is not None:
            problems.append(f"item {item.item.get('id')}: {item.models[side]}'s step {step['index'] + 1} writes "
                            f"{step['unplaceable_boxes']} box(es) past float range")
        for box in (drawable(written, scale, image.size) for written in step["boxes"]):
            draw.rectangle(box, outline=colour, width=max(2, scale))
            draw.text((box[0] + 3, box[1] + 2), str(step["index"] + 1), fill=colour)
    return image


def export_items(items: list[ViewItem], out: Path, limit: int | None = None,
                 problems: list[str] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for item in items[:limit]:
        panels = [render_side(item, side, problems) for side in range(len(item.models))]
        sheet = Image.new("RGB", (sum(p.width for p in panels) + 10 * (len(panels) - 1), max(p.height for p in panels)),
                          "white")
        x = 0
        for panel in panels:
            sheet.paste(panel, (x, 0))
            x += panel.width + 10
        path = out / f"{item.index:04d}_{'_vs_'.join(item.models)}.png".replace("/", "-")
        sheet.save(path)
        written.append(path)
    return written
