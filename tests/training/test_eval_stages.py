"""The eval stage with ``eval.stages``: every stage's model over every test file (joined into one items
file, so each predictions file comes from one item set), then the comparison."""

import pytest

import training.run as run_module


def test_every_stage_runs_over_every_test_file_then_one_comparison(compose_run, tmp_path, monkeypatch):
    cfg = compose_run("demo", f"run_dir={tmp_path}")
    for name in ("xraybench", "grounding"):
        (tmp_path / "data" / "test").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / "test" / f"{name}.jsonl").write_text(f'{{"id": "{name}-1"}}\n')
    (tmp_path / "stage3").mkdir()
    (tmp_path / "stage3" / "experiment_log.jsonl").write_text("")
    calls = []
    monkeypatch.setattr(run_module, "run_logged", lambda stage, command, cfg, env=None: calls.append((stage, command)))
    result = run_module.eval_stages(cfg)
    infer = [(stage, command) for stage, command in calls if stage.startswith("eval_infer_")]
    assert [stage for stage, _ in infer] == [f"eval_infer_{s}" for s in ("base", "stage1", "stage2", "stage3")]
    items = tmp_path / "eval" / "items.jsonl"  # both test files, in name order
    assert items.read_text() == '{"id": "grounding-1"}\n{"id": "xraybench-1"}\n'
    assert all(f"items_file={items}" in command and f"image_root={tmp_path}/data" in command for _, command in infer)
    models = {stage.split("_")[2]: next(a for a in command if a.startswith("model=")) for stage, command in infer}
    assert models == {"base": f"model={tmp_path}/tiny-qwen2.5-vl", "stage1": f"model={tmp_path}/stage1",
                      "stage2": f"model={tmp_path}/stage2", "stage3": f"model={tmp_path}/stage3"}
    for stage, command in infer:  # the instruction models without the reasoning prompt, as trained
        assert ("reasoning_format=false" in command) == (stage.split("_")[2] in ("base", "stage1"))
        assert f"out={tmp_path}/eval/{stage.split('_')[2]}/predictions.jsonl" in command
    comparison = dict(calls)["eval_stages"]
    assert f"--items={items}" in comparison
    assert f"--experiment-log={tmp_path}/stage3/experiment_log.jsonl" in comparison
    assert [f"--run={s}={tmp_path}/eval/{s}" for s in ("base", "stage1", "stage2", "stage3")] == [
        a for a in comparison if a.startswith("--run=")]
    assert result["stages"] == ["base", "stage1", "stage2", "stage3"]


def test_base_of_a_real_run_is_the_hub_model(compose_run, tmp_path):
    cfg = compose_run("default", f"run_dir={tmp_path}")
    assert run_module.stage_model_path(cfg, "base") == "Qwen/Qwen2.5-VL-7B-Instruct"
    with pytest.raises(run_module.StageFailed, match="unknown stage"):
        run_module.stage_model_path(cfg, "stage4")


def test_no_test_file_is_a_clear_error(compose_run, tmp_path):
    with pytest.raises(run_module.StageFailed, match="no test files"):
        run_module.eval_stages(compose_run("demo", f"run_dir={tmp_path}"))
