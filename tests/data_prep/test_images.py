import os
from pathlib import Path

from PIL import Image

from data_prep.images import ImageJob, PreparedImage, prepare_images, prepare_one
from rewards.frame import Frame


def xray(path: Path, size=(600, 700)) -> Path:
    Image.effect_noise(size, 40).save(path, format="JPEG", quality=95)
    return path


def job(source: Path, target: Path | None) -> ImageJob:
    return ImageJob(source, target, min_pixels=3136, max_pixels=262144, quality=95)


def test_image_written_once_at_its_frame_size(tmp_path):
    source = xray(tmp_path / "a.jpg")
    target = tmp_path / "out" / "a.jpg"
    result = prepare_one(job(source, target))
    assert isinstance(result, PreparedImage) and result.original_size == (600, 700)
    # 600x700 pre-scaled under 512*512 to 474x553, then multiples of 28 within 512*512 (476x560 would exceed it)
    assert result.frame == Frame(448, 532)
    with Image.open(target) as written:
        assert written.size == (448, 532) and written.mode == "L"
    stamp = os.stat(target).st_mtime_ns
    assert prepare_one(job(source, target)) == result  # resumed: kept, not rewritten
    assert os.stat(target).st_mtime_ns == stamp
    assert not list(target.parent.glob(".*.tmp"))


def test_bad_images_are_reasons_not_exceptions(tmp_path):
    truncated = xray(tmp_path / "t.jpg")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    garbage = tmp_path / "g.png"
    garbage.write_bytes(b"not an image at all")
    assert prepare_one(job(truncated, tmp_path / "o1.jpg"))[0] == "unreadable_image"
    assert prepare_one(job(garbage, tmp_path / "o2.jpg"))[0] == "unreadable_image"
    assert prepare_one(job(tmp_path / "missing.jpg", tmp_path / "o3.jpg"))[0] == "missing_image"
    assert prepare_one(job(truncated, None))[0] == "unreadable_image"  # verified even when not resized


def test_keep_originals_and_parallel_equals_serial(tmp_path):
    sources = [xray(tmp_path / f"{i}.jpg", (300 + 40 * i, 500)) for i in range(6)]
    kept = prepare_one(job(sources[0], None))
    assert kept.path == str(sources[0])
    serial = prepare_images([job(s, tmp_path / "s" / s.name) for s in sources], workers=0)
    parallel = prepare_images([job(s, tmp_path / "p" / s.name) for s in sources], workers=2)
    assert [r.frame for r in serial] == [r.frame for r in parallel]
    assert all((tmp_path / "s" / s.name).read_bytes() == (tmp_path / "p" / s.name).read_bytes() for s in sources)


def test_an_original_kept_as_is_gets_the_frame_the_trainers_compute(tmp_path):
    from rewards.frame import consumer_frame

    result = prepare_one(job(xray(tmp_path / "a.jpg"), None))
    assert result.frame == consumer_frame(600, 700, 3136, 262144) == Frame(476, 560)


# Draft decoding: JPEGs at least twice the frame are decoded at reduced scale in the DCT domain.


def radiograph_jpeg(path: Path, size=(1400, 1700), seed=0, **options) -> Path:
    """A grey, textured X-ray-like JPEG (the fixtures' radiograph) big enough for draft decoding."""
    import random

    import numpy as np

    from data_prep.fixtures.common import radiograph

    radiograph(random.Random(seed), np.random.default_rng(seed), *size, lateral=False).save(
        path, format="JPEG", quality=95, **options)
    return path


def full_decode(source: Path, frame: Frame):
    """The reference: every pixel decoded, then the same bicubic resize."""
    import numpy as np

    with Image.open(source) as image:
        image.load()
        return np.asarray(image.convert("L").resize((frame.width, frame.height), Image.Resampling.BICUBIC), dtype=np.int16)


def test_large_jpegs_are_draft_decoded_close_to_a_full_decode(tmp_path, monkeypatch):
    import numpy as np
    from PIL import JpegImagePlugin

    from data_prep.images import decode_into_frame

    drafts = []
    original_draft = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: drafts.append(original_draft(self, mode, size)) or drafts[-1])
    cases = {(1400, 1700): (0, 0, 700.0, 850.0), (1201, 1733): (0, 0, 600.5, 866.5),  # scale 1/2, odd sides
             (2544, 3056): (0, 0, 636.0, 764.0)}  # MIMIC-sized: scale 1/4
    for n, (size, box) in enumerate(cases.items()):
        source = radiograph_jpeg(tmp_path / f"{n}.jpg", size, seed=n)
        drafts.clear()
        result = prepare_one(job(source, tmp_path / "out" / source.name))
        assert drafts == [("L", box)] and result.original_size == size
        with Image.open(tmp_path / "out" / source.name) as written:
            assert written.size == (result.frame.width, result.frame.height)
        with Image.open(source) as image:
            drafted = np.asarray(decode_into_frame(image, result.frame), dtype=np.int16)
        difference = np.abs(drafted - full_decode(source, result.frame))
        assert difference.mean() <= 1.0, (size, difference.mean())
        # Same geometry: the image's content did not shift (column and row profiles agree).
        assert np.abs(drafted.mean(axis=0) - full_decode(source, result.frame).mean(axis=0)).max() < 2.0


def test_small_jpegs_and_other_formats_are_decoded_in_full(tmp_path):
    import numpy as np

    small = radiograph_jpeg(tmp_path / "small.jpg", (800, 900))  # under twice the 476x560 frame
    png = tmp_path / "big.png"
    with Image.open(radiograph_jpeg(tmp_path / "big.jpg")) as image:
        image.save(png)
    for source in (small, png):
        result = prepare_one(job(source, tmp_path / "out" / f"{source.stem}.png.jpg"))
        expected = tmp_path / "expected.jpg"
        Image.fromarray(full_decode(source, result.frame).astype(np.uint8)).save(expected, format="JPEG", quality=95)
        assert (tmp_path / "out" / f"{source.stem}.png.jpg").read_bytes() == expected.read_bytes(), source


def test_draft_decoding_rejects_a_truncated_jpeg_exactly_when_a_full_decode_does(tmp_path):
    """The entropy-coded data is read to its end at any scale: a cut fails as in a full decode."""
    for options in ({}, {"progressive": True}):
        source = radiograph_jpeg(tmp_path / "whole.jpg", **options)
        data = source.read_bytes()
        cuts = sorted({*range(200, len(data), len(data) // 25), *range(len(data) - 4, len(data))})
        rejected = 0
        for cut in cuts:
            cut_file = tmp_path / f"cut{cut}.jpg"
            cut_file.write_bytes(data[:cut])
            try:
                with Image.open(cut_file) as image:
                    image.load()
                full_fails = False
            except OSError:
                full_fails = True
            result = prepare_one(job(cut_file, tmp_path / "out" / cut_file.name))
            assert isinstance(result, tuple) == full_fails, (options, cut, result)
            if full_fails:
                assert result[0] == "unreadable_image" and not (tmp_path / "out" / cut_file.name).exists()
                rejected += 1
        assert rejected >= len(cuts) - 2, options  # only a cut inside the end marker may still decode


def test_draft_decoded_output_is_byte_identical_across_runs_and_workers(tmp_path):
    sources = [radiograph_jpeg(tmp_path / f"{i}.jpg", (1100 + 97 * i, 1500 + 61 * i), seed=i) for i in range(4)]
    runs = {
        "serial": prepare_images([job(s, tmp_path / "serial" / s.name) for s in sources], workers=0),
        "again": prepare_images([job(s, tmp_path / "again" / s.name) for s in sources], workers=0),
        "parallel": prepare_images([job(s, tmp_path / "parallel" / s.name) for s in sources], workers=2),
    }
    assert runs["serial"][0].frame.width * 2 <= 1100  # the draft path, not the full decode
    for name in ("again", "parallel"):
        assert [r.frame for r in runs[name]] == [r.frame for r in runs["serial"]]
        for source in sources:
            assert (tmp_path / name / source.name).read_bytes() == (tmp_path / "serial" / source.name).read_bytes()
