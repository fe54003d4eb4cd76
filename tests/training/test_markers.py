"""Completion markers: complete only if the outputs exist and the fingerprint of the inputs matches."""

import json

import pytest

from training import markers
from training.run import STAGES, StageFailed, run


def complete_all(cfg):
    for stage in STAGES:
        markers.mark_complete(cfg, stage, markers.stage_inputs(cfg, stage))


def test_a_rerun_stage_changes_the_inputs_of_the_next_one(compose_run, tmp_path, monkeypatch):
    import training.run as run_module

    cfg = compose_run("default", f"run_dir={tmp_path}")
    complete_all(cfg)
    monkeypatch.setitem(run_module.RUNNERS, "stage2", lambda cfg: None)
    run(compose_run("default", f"run_dir={tmp_path}", "stage=stage2", "force=true"))
    changed = {stage for stage in STAGES if markers.status(cfg, stage, markers.stage_inputs(cfg, stage))[0] == "changed"}
    assert changed == {"stage3"}  # merge and eval follow once stage 3 has rerun
    state, detail = markers.status(cfg, "stage3", markers.stage_inputs(cfg, "stage3"))
    assert any(line.startswith("stage2:") for line in detail)


def test_data_into_another_folder_runs_again(compose_run, tmp_path, monkeypatch):
    import training.run as run_module

    built = []

    def fake_build(cfg):
        out = tmp_path / cfg.data_dir
        for name in ("manifest.json", "dataset_info.json", "grpo/train.parquet", "test/xraybench.jsonl"):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text("{}")
        built.append(cfg.data_dir)

    monkeypatch.setitem(run_module.RUNNERS, "data", fake_build)
    for folder in ("A", "B", "B"):
        run(compose_run("default", f"run_dir={tmp_path}", "stage=data", f"data_dir={tmp_path}/{folder}"))
    assert built == [f"{tmp_path}/A", f"{tmp_path}/B"]
    (tmp_path / "B" / "manifest.json").unlink()  # deleted outputs: the marker no longer counts
    run(compose_run("default", f"run_dir={tmp_path}", "stage=data", f"data_dir={tmp_path}/B"))
    assert built[-1] == f"{tmp_path}/B" and len(built) == 3


def test_changed_data_changes_the_trainer_stages_and_they_refuse_to_resume(compose_run, tmp_path):
    cfg = compose_run("default", f"run_dir={tmp_path}")
    (tmp_path / "data").mkdir()
    frame = {"config": {"frame": {"min_pixels": cfg.frame.min_pixels, "max_pixels": cfg.frame.max_pixels}}}
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({"seed": 0, **frame}))
    inputs = markers.stage_inputs(cfg, "stage1")
    markers.mark_started(cfg, "stage1", inputs)
    (tmp_path / "stage1" / "checkpoint-500").mkdir(parents=True)
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({"seed": 1, **frame}))  # rebuilt with another seed
    with pytest.raises(StageFailed, match=r"other inputs.*data: .*force=true"):
        run(compose_run("default", f"run_dir={tmp_path}", "stage=stage1"))


def test_a_marker_of_an_older_version_is_not_trusted(compose_run, tmp_path):
    cfg = compose_run("default", f"run_dir={tmp_path}")
    markers.marker(cfg, "data").parent.mkdir(parents=True)
    markers.marker(cfg, "data").write_text(json.dumps({"stage": "data", "result": None}))
    state, detail = markers.status(cfg, "data", markers.stage_inputs(cfg, "data"))
    assert state == "changed" and "older version" in detail[0]


def test_a_stage_retrained_alone_makes_its_evaluation_stale(compose_run, tmp_path, monkeypatch):
    """`stage=stage3` then `stage=eval` (no merge in between): the evaluation of every stage's
    model must run again, not keep stage 3's old predictions (found on the demo)."""
    import training.run as run_module

    cfg = compose_run("demo", f"run_dir={tmp_path}")
    complete_all(cfg)
    assert markers.status(cfg, "eval", markers.stage_inputs(cfg, "eval"))[0] != "changed"
    monkeypatch.setitem(run_module.RUNNERS, "stage3", lambda cfg: None)
    run(compose_run("demo", f"run_dir={tmp_path}", "stage=stage3", "force=true"))
    state, detail = markers.status(cfg, "eval", markers.stage_inputs(cfg, "eval"))
    assert state == "changed" and any(line.startswith("stages.stage3:") for line in detail), detail
