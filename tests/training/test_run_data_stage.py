"""The chain's data stage stops a full run when the build left an output empty."""

import json

import pytest
from omegaconf import OmegaConf

from training import run


def test_a_full_chain_stops_after_a_build_with_an_empty_output(tmp_path, monkeypatch, capsys):
    data_dir = tmp_path / "data"

    def fake_build(stage, command, cfg, env=None):  # what data_prep.build leaves behind
        data_dir.mkdir(exist_ok=True)
        (data_dir / "manifest.json").write_text(json.dumps(
            {"empty_outputs": {"grpo/train.parquet": "grpo.size=6600 drew nothing: ..."}}))

    monkeypatch.setattr(run, "run_logged", fake_build)
    cfg = OmegaConf.create({
        "stage": "all", "data_root": str(tmp_path / "releases"), "data_dir": str(data_dir), "generate_releases": 0,
        "data": {"config_name": "build", "overrides": []}, "frame": {"min_pixels": 3136, "max_pixels": 262144},
    })
    with pytest.raises(run.StageFailed, match=r"left grpo/train.parquet empty \(grpo.size=6600 drew nothing"):
        run.stage_data(cfg)
    cfg.stage = "data"  # building data alone (a partial build can be what one wants): a warning
    run.stage_data(cfg)
    assert "WARNING grpo/train.parquet is empty" in capsys.readouterr().out


def test_the_demo_world_is_generated_as_its_run_config_says(tmp_path, monkeypatch):
    from data_prep.fixtures import main as fixtures_main

    calls = []

    def record(stage, command, cfg, env=None):
        calls.append((stage, command))
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / "manifest.json").write_text("{}")

    monkeypatch.setattr(run, "run_logged", record)
    cfg = OmegaConf.create({
        "stage": "data", "data_root": str(tmp_path / "releases"), "data_dir": str(tmp_path / "data"), "seed": 4,
        "generate_releases": 20, "generate_findings": ["Cardiomegaly", "Pneumothorax"], "generate_image_size": [336, 320],
        "data": {"config_name": "demo", "overrides": []}, "frame": {"min_pixels": 3136, "max_pixels": 12544},
    })
    run.stage_data(cfg)
    stage, command = calls[0]
    assert stage == "releases" and command[1:3] == ["-m", "data_prep.fixtures"]
    arguments = command[3:]
    assert arguments[arguments.index("--findings") + 1] == "Cardiomegaly,Pneumothorax"
    assert arguments[arguments.index("--image-size") + 1] == "336x320"
    assert fixtures_main(arguments[:1] + ["--subjects", "6"] + arguments[5:]) == 0  # the fixtures' own parser takes them
