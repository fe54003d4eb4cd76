"""A world drawn at one image size (the demo's): every radiograph, MIMIC and Open-I, frontal and
lateral, has that size, MS-CXR records it, and nothing else the world draws changes."""

import json

import pytest
from PIL import Image

from data_prep.fixtures import generate_releases, main, parse_image_size
from data_prep.fixtures.common import check_image_size


def all_images(root):
    return sorted(p for p in root.rglob("*") if p.suffix in (".jpg", ".png"))


def test_every_radiograph_has_the_fixed_size_and_the_rest_of_the_world_is_unchanged(tmp_path):
    drawn = generate_releases(tmp_path / "drawn", seed=5, subjects=10)
    fixed = generate_releases(tmp_path / "fixed", seed=5, subjects=10, image_size=(336, 320))
    sizes = {Image.open(path).size for path in all_images(tmp_path / "fixed")}
    assert sizes == {(336, 320)}
    assert len({Image.open(path).size for path in all_images(tmp_path / "drawn")}) > 1
    assert fixed.pop("image_size") == [336, 320] and "image_size" not in drawn
    for study in fixed["mimic"].values():
        assert set(map(tuple, study["image_sizes"].values())) == {(336, 320)}
        study.pop("image_sizes")
    for study in drawn["mimic"].values():
        study.pop("image_sizes")
    assert fixed == drawn  # same patients, reports, labels and splits: only the sizes differ
    ms_cxr = json.loads(next((tmp_path / "fixed" / "ms-cxr").rglob("*.json")).read_text())
    assert {(image["width"], image["height"]) for image in ms_cxr["images"]} == {(336, 320)}


def test_bad_sizes_are_refused_with_the_reason():
    assert check_image_size(None) is None and check_image_size([336, 336]) == (336, 336)
    for bad in ([336], [0, 336], [336.5, 336], [336, 10_000]):
        with pytest.raises(ValueError, match="image size"):
            check_image_size(bad)
    assert parse_image_size("336x300") == (336, 300)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_image_size("336")


def test_the_command_line_takes_the_size(tmp_path):
    assert main([str(tmp_path / "a"), "--subjects", "6", "--image-size", "300x300"]) == 0
    assert json.loads((tmp_path / "a" / "fixture_truth.json").read_text())["image_size"] == [300, 300]
    for bad in ("300", "30x300"):
        with pytest.raises(SystemExit):
            main([str(tmp_path / "b"), "--subjects", "6", "--image-size", bad])
