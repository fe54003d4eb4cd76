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
