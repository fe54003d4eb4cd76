"""Booleans in configs: real booleans only, and every boolean of every project recipe is checked."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import data_prep.build
import data_prep.cold_start
import eval.infer
import training.run
from rewards.settings import ConfigValueError, check_booleans, config_bool

ROOT = Path(__file__).resolve().parents[2]

# recipe -> the entry point that reads it (the trainers' own recipes are training.check's)
READERS = {
    "data/build.yaml": data_prep.build.BOOLEANS,
    "data/demo.yaml": data_prep.build.BOOLEANS,
    "data/cold_start.yaml": data_prep.cold_start.BOOLEANS,
    "eval/xraybench.yaml": eval.infer.BOOLEANS,
    "run/default.yaml": training.run.BOOLEANS,
    "run/demo.yaml": training.run.BOOLEANS,
}


def boolean_keys(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if prefix == "" and key in ("hydra", "defaults", "overrides"):  # Hydra's, and trainer keys
                continue
            yield from boolean_keys(value, f"{prefix}{key}.")
    elif isinstance(node, bool):
        yield prefix[:-1]


def test_real_booleans_pass_and_everything_else_is_named():
    assert config_bool(True, "x") is True and config_bool(False, "x") is False
    for value in ("no", "false", "False", "0", 0, 1, None, [], "true"):
        with pytest.raises(ConfigValueError, match=r"teacher.allow_remote_endpoint must be true or false"):
            config_bool(value, "teacher.allow_remote_endpoint")
    check_booleans({"a": {"b": True}}, ["a.b", "a.missing", "x.y"])  # absent keys are not this check's business
    with pytest.raises(ConfigValueError, match=r"recipe.yaml: a.b must be true or false, got 'no' \(str\)"):
        check_booleans(OmegaConf.create({"a": {"b": "no"}}), ["a.b"], "recipe.yaml")


@pytest.mark.parametrize("recipe", sorted(READERS))
def test_every_boolean_of_every_recipe_is_checked_by_its_reader(recipe):
    """A boolean added to a recipe without routing it through rewards.settings fails here."""
    tree = OmegaConf.to_container(OmegaConf.load(ROOT / "recipes" / recipe))
    found = set(boolean_keys(tree))
    assert found <= set(READERS[recipe]), f"{recipe}: booleans not checked: {sorted(found - set(READERS[recipe]))}"


@pytest.mark.parametrize("reader, booleans", [
    ("data_prep.build.build", data_prep.build.BOOLEANS),
    ("training.run.run", training.run.BOOLEANS),
])
def test_each_entry_point_refuses_a_string_boolean_before_any_work(tmp_path, reader, booleans):
    module, function = reader.rsplit(".", 1)
    entry = getattr(__import__(module, fromlist=[function]), function)
    for key in booleans:
        cfg = {"out_dir": str(tmp_path / "never"), "data_root": str(tmp_path / "never"), "stage": "all"}
        node = cfg
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = "no"
        with pytest.raises(ConfigValueError, match=key.replace(".", r"\.")):
            entry(OmegaConf.create(cfg))
    assert not (tmp_path / "never").exists()


def test_counts_are_integers_in_range():
    from rewards.settings import check_counts

    check_counts({"a": {"b": 3}, "limit": None}, {"a.b": 1, "limit": 1, "absent": 1}, optional=("limit",))
    for value in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ConfigValueError, match="a.b must be an integer >= 1"):
            check_counts({"a": {"b": value}}, {"a.b": 1})
