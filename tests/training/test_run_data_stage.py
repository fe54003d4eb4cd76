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
