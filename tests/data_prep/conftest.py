"""Generated releases and one data build, shared by the data-preparation tests."""

from pathlib import Path

import pytest

from data_prep.build import build, load_config
from data_prep.fixtures import generate_releases

SMALL = [
    "images.workers=0", "xraybench.scale=0.01", "stage1.size=300", "grpo.size=40", "grpo.val_size=10",
    "cold_start.candidates=40",
]


def config(releases: Path, out: Path, *extra: str):
    return load_config([f"data_root={releases}", f"out_dir={out}", *SMALL, *extra])


@pytest.fixture(scope="session")
def releases(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("releases")
    truth = generate_releases(root, seed=0, subjects=14, inject_faults=True)
    return root, truth


@pytest.fixture(scope="session")
def built(releases, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("build")
    return out, build(config(releases[0], out))


@pytest.fixture(scope="session")
def make_config():
    """``make_config(releases, out, *overrides)``: the small build config the tests use."""
    return config
