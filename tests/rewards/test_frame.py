import pytest

from rewards.frame import Frame, consumer_frame, model_frame, prescale, scale_box_to_frame


def test_mimic_sized_image_lands_on_multiples_of_28_within_max_pixels():
    # 2544 x 3056 (Columns x Rows) under max_pixels 512*512: pre-scaled by sqrt(262144 / 7774464)
    # and truncated to 467 x 561. Rounding to 17*28 x 20*28 = 476 x 560 would exceed 262144 (the
    # trainers would shrink it again); within max_pixels it is 16*28 x 20*28.
    assert prescale(2544, 3056, 3136, 262144) == (467, 561)
    assert model_frame(2544, 3056, min_pixels=3136, max_pixels=262144) == Frame(448, 560)
    assert consumer_frame(2544, 3056, min_pixels=3136, max_pixels=262144) == Frame(476, 560)  # kept as is


def test_image_already_in_frame_is_unchanged():
    assert model_frame(448, 532, min_pixels=3136, max_pixels=262144) == Frame(448, 532)


def test_small_image_is_scaled_up():
    frame = model_frame(20, 20, min_pixels=3136, max_pixels=262144)
    assert frame.width % 28 == 0 and frame.height % 28 == 0 and frame.area >= 3136


def test_box_scaling_to_frame():
    frame = Frame(476, 560)
    x1, y1, x2, y2 = scale_box_to_frame((1712, 301, 1712 + 380, 301 + 412), original=(2544, 3056), frame=frame)
    assert x1 == pytest.approx(1712 * 476 / 2544) and y2 == pytest.approx(713 * 560 / 3056)


@pytest.mark.parametrize("width, height", [(0, 10), (10, -1), (1.5, 10), (True, 10)])
def test_frame_rejects_non_positive_or_non_integer_sizes(width, height):
    with pytest.raises(ValueError):
        Frame(width, height)


def test_smart_resize_equals_transformers():
    import random

    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as reference

    from rewards.frame import smart_resize

    rng = random.Random(0)
    sizes = [(rng.randint(20, 4000), rng.randint(20, 4000)) for _ in range(3000)] + [(28, 28), (56, 56), (1, 150)]
    for height, width in sizes:
        for min_pixels, max_pixels in ((3136, 262144), (3136, 1003520), (256 * 28 * 28, 1280 * 28 * 28)):
            expected = reference(height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)
            assert smart_resize(height, width, 28, min_pixels, max_pixels) == expected, (height, width)


def test_extreme_aspect_ratio_is_refused():
    from rewards.frame import smart_resize

    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 3000, 28, 3136, 262144)


def test_thin_image_under_a_small_max_pixels_stays_inside_it():
    # 60 x 4300 under the demo's 112*112: smart_resize rounds up to 28 x 476 (> 12544); the frame cuts
    # the long side back instead.
    frame = model_frame(60, 4300, min_pixels=3136, max_pixels=12544)
    assert frame == Frame(28, 448) and frame.area <= 12544


def test_limits_that_cross_have_no_frame():
    with pytest.raises(ValueError, match="no frame fits"):
        model_frame(500, 500, min_pixels=300000, max_pixels=262144)
