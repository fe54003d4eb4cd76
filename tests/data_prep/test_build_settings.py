"""The data build's numbers and its local XrayBench file checked before any work: a typo is one
message naming the key, never an empty training set built with exit 0, nor a traceback (or a refusal)
after the images of every release were processed."""

import pytest

from data_prep.build import build
from data_prep.records import SourceMissingError
from rewards.settings import ConfigValueError


@pytest.mark.parametrize("override, message", [
    ("stage1.size=-5", "stage1.size must be an integer >= 1, got -5"),
    ("grpo.size=0", "grpo.size must be an integer >= 1, got 0"),
    ("grpo.val_size=2.5", "grpo.val_size must be an integer >= 1"),
    ("xraybench.scale=abc", "xraybench.scale must be a number in \\(0, ...\\), got 'abc'"),
    ("xraybench.scale=0", "xraybench.scale must be a number in \\(0"),
    ("max_skip_fraction=1.5", "max_skip_fraction must be a number in \\[0, 1\\]"),
    ("images.workers=true", "images.workers must be an integer >= 0, got True"),
])
def test_a_number_out_of_its_range_is_refused_before_anything_is_written(releases, tmp_path, make_config, override,
                                                                          message):
    out = tmp_path / "out"
    with pytest.raises(ConfigValueError, match=message):
        build(make_config(releases[0], out, override))
    assert not (out / "manifest.json").exists() and not (out / "images").exists()


def test_a_missing_local_xraybench_is_refused_before_the_images(releases, tmp_path, make_config, monkeypatch):
    import data_prep.build as build_module

    def never(*args, **kwargs):
        raise AssertionError("images were prepared before the local file was checked")

    monkeypatch.setattr(build_module, "prepare_sample_images", never)
    with pytest.raises(SourceMissingError, match="xraybench.mode=local but .*test.jsonl does not exist"):
        build(make_config(releases[0], tmp_path / "out", "xraybench.mode=local"))
