"""Run configs composed the way `python -m training.run` composes them."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def compose_run():
    from hydra import compose, initialize_config_dir

    def compose_run(config_name: str = "default", *overrides: str):
        with initialize_config_dir(config_dir=str(ROOT / "recipes" / "run"), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))

    return compose_run
