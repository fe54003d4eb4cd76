"""Static export: one PNG per item with every box of the reasoning drawn on the X-ray, numbered by
step, the models side by side, for papers and slides. The item's true boxes (from its ground
truth), where it has any, are drawn thin and white underneath."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from eval.viewer.items import ViewItem, reasoning_steps

COLOURS = ((230, 57, 70), (29, 53, 87), (42, 157, 143), (233, 196, 106), (244, 162, 97), (69, 123, 157))


def true_boxes(item: dict) -> list[list[float]]:
    """The item's ground-truth boxes (the reward's JSON), in its frame; [] without any."""
    import json

    try:
        return json.loads(item.get("ground_truth") or "{}").get("boxes", [])
    except (json.JSONDecodeError, AttributeError):
        return []


def render_side(item: ViewItem, side: int) -> Image.Image:
    """The image at its frame size (boxes are in that frame) with the side's boxes drawn."""
    frame = item.item.get("frame") or {}
    with Image.open(item.image) as original:
        image = original.convert("RGB")
    if frame and (image.width, image.height) != (frame["width"], frame["height"]):
        image = image.resize((frame["width"], frame["height"]))
    scale = max(1, round(512 / max(image.size)))  # upscale small frames so the drawing stays legible
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    for x1, y1, x2, y2 in true_boxes(item.item):  # the ground truth's boxes, thin white, under the model's
        draw.rectangle([x1 * scale, y1 * scale, x2 * scale, y2 * scale], outline=(255, 255, 255), width=1)
    for step in reasoning_steps(item.predictions[side].get("reasoning", "")):
        colour = COLOURS[step["index"] % len(COLOURS)]
        for x1, y1, x2, y2 in step["boxes"]:
            draw.rectangle([x1 * scale, y1 * scale, x2 * scale, y2 * scale], outline=colour, width=max(2, scale))
            draw.text((x1 * scale + 3, y1 * scale + 2), str(step["index"] + 1), fill=colour)
    return image


def export_items(items: list[ViewItem], out: Path, limit: int | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for item in items[:limit]:
        panels = [render_side(item, side) for side in range(len(item.models))]
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
