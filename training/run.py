"""Run the pipeline's stages: ``python -m training.run stage=<name|all|check>`` (``make train-all``).

Stages, in order: ``model`` (demo only: build the tiny Qwen2.5-VL), ``data`` (data_prep.build),
``stage1`` (LLaMA-Factory SFT), ``cold_start`` (data_prep.cold_start), ``stage2`` (LLaMA-Factory
SFT from stage 1), ``stage3`` (GRPO from stage 2: EasyR1, or TRL with ``grpo_backend=trl``) and
``merge`` (EasyR1 checkpoint -> Hugging Face weights). A stage whose output is complete is skipped,
so an interrupted chain resumes; ``force=true`` reruns it. Each trainer's output goes to
``<run_dir>/logs/<stage>.log`` as well as the console; a failed stage stops the chain with a message
naming the stage and its log. ``stage=check`` renders and validates every trainer config and
launches nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from training import check
from training.render import ROOT, absolute, model_reference, render, run_path

STAGES = ("model", "data", "stage1", "cold_start", "stage2", "stage3", "merge", "eval")


class StageFailed(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[training.run] {message}", flush=True)


def marker(cfg: DictConfig, stage: str) -> Path:
    return run_path(cfg, "logs", f"{stage}.complete")


def mark_complete(cfg: DictConfig, stage: str, detail: dict) -> None:
    path = marker(cfg, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(detail, indent=2, sort_keys=True) + "\n")


def run_logged(stage: str, command: list[str], cfg: DictConfig, env: dict[str, str] | None = None) -> None:
    """Run a trainer, teeing its output to <run_dir>/logs/<stage>.log; raise StageFailed on failure."""
    log = run_path(cfg, "logs", f"{stage}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"{stage}: {' '.join(command)}  (log: {log})")
    with log.open("w", encoding="utf-8") as handle:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in process.stdout:
            sys.stdout.write(line)
            handle.write(line)
        code = process.wait()
    if code != 0:
        raise StageFailed(f"stage {stage} failed with exit code {code}; its log: {log}")


def check_all(cfg: DictConfig) -> dict[str, list[str]]:
    """Render and validate every trainer config of the run."""
    problems = {}
    produced = {str(run_path(cfg, "stage1"))}  # stage 2's start, unless handed over from elsewhere
    if cfg.get("tiny_model"):  # the model stage builds it
        produced.add(absolute(cfg.base_model))
    for stage in ("stage1", "stage2"):
        config, _ = render(cfg, stage)
        problems[stage] = check.sft_problems(config, cfg.frame, produced_by_earlier_stage=produced)
    config, _ = render(cfg, "stage3")
    problems["stage3"] = check.easyr1_problems(config, cfg.frame) + check.easyr1_native_problems(config)
    produced.add(str(run_path(cfg, "stage2")))
    start = config["worker"]["actor"]["model"]["model_path"]
    if not Path(start).exists() and start not in produced:
        problems["stage3"].append(f"worker.actor.model.model_path {start} does not exist and no stage of this run "
                                  "writes it (handover.stage2_dir)")
    return problems


# ------------------------------------------------------------------------------------------ stages


def stage_model(cfg: DictConfig) -> None:
    target = Path(absolute(cfg.base_model))
    if not cfg.get("tiny_model", False):
        say("model: using base_model as given (no build needed)")
        return
    from training import tiny_model

    tiny_model.build(target, seed=int(cfg.get("seed", 0)), max_pixels=cfg.frame.max_pixels)
    say(f"model: tiny random Qwen2.5-VL written to {target}")


def as_overrides(value) -> list[str]:
    """A list of overrides, or one string of them separated by spaces (what make variables give)."""
    return value.split() if isinstance(value, str) else [str(item) for item in value]


def stage_data(cfg: DictConfig) -> None:
    if cfg.data_root is None:
        raise StageFailed("stage data needs data_root=<folder holding the releases>")
    if cfg.get("generate_releases"):  # demo: synthetic releases in the real formats
        run_logged("releases", [sys.executable, "-m", "data_prep.fixtures", absolute(cfg.data_root),
                                "--seed", str(cfg.get("seed", 0)), "--subjects", str(cfg.generate_releases)], cfg)
    run_logged("data", [
        sys.executable, "-m", "data_prep.build", "--config-name", cfg.data.config_name,
        f"data_root={absolute(cfg.data_root)}", f"out_dir={absolute(cfg.data_dir)}",
        f"frame.min_pixels={cfg.frame.min_pixels}", f"frame.max_pixels={cfg.frame.max_pixels}",
        *as_overrides(cfg.data.overrides),
    ], cfg)


def stage_cold_start(cfg: DictConfig) -> dict:
    run_logged("cold_start", [
        sys.executable, "-m", "data_prep.cold_start", f"data_dir={absolute(cfg.data_dir)}",
        *as_overrides(cfg.cold_start.overrides),
    ], cfg)
    report = json.loads((Path(absolute(cfg.data_dir)) / "cold_start" / "report.json").read_text())
    if report["kept"] == 0:
        raise StageFailed(f"cold_start kept no trace; see {absolute(cfg.data_dir)}/cold_start/report.json")
    return report


def llamafactory_env(cfg: DictConfig) -> dict[str, str]:
    if cfg.launch.nnodes <= 1:
        return {}
    return {"FORCE_TORCHRUN": "1", "NNODES": str(cfg.launch.nnodes), "NODE_RANK": str(cfg.launch.node_rank),
            "MASTER_ADDR": str(cfg.launch.master_addr), "MASTER_PORT": str(cfg.launch.master_port)}


def stage_sft(cfg: DictConfig, stage: str) -> None:
    config, path = render(cfg, stage)
    problems = check.sft_problems(config, cfg.frame)
    if problems:
        raise StageFailed(f"{stage} config {path} is invalid:\n  " + "\n  ".join(problems))
    cli = str(Path(sys.executable).with_name("llamafactory-cli"))
    run_logged(stage, [cli if Path(cli).exists() else "llamafactory-cli", "train", str(path)], cfg,
               llamafactory_env(cfg))


def stage_grpo(cfg: DictConfig) -> None:
    config, path = render(cfg, "stage3")
    problems = check.easyr1_problems(config, cfg.frame)
    if cfg.grpo_backend == "easyr1":
        problems += check.easyr1_native_problems(config)
    if problems:
        raise StageFailed(f"stage3 config {path} is invalid:\n  " + "\n  ".join(problems))
    if cfg.grpo_backend == "easyr1":
        run_logged("stage3", [sys.executable, "-m", "verl.trainer.main", f"config={path}"], cfg)
    elif cfg.grpo_backend == "trl":
        run_logged("stage3", [sys.executable, "-m", "training.grpo_trl", str(path), str(run_path(cfg, "stage3"))], cfg)
    else:
        raise StageFailed(f"grpo_backend must be 'easyr1' or 'trl', got {cfg.grpo_backend!r}")


def latest_checkpoint(cfg: DictConfig) -> Path | None:
    """EasyR1's newest ``global_step_N`` folder of this run's GRPO stage."""
    steps = sorted(run_path(cfg, "stage3").glob("global_step_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    return steps[-1] if steps else None


def stage_merge(cfg: DictConfig) -> None:
    if cfg.grpo_backend == "trl":
        say("merge: the TRL backend saves Hugging Face weights directly; nothing to merge")
        return
    latest = latest_checkpoint(cfg)
    if latest is None:
        raise StageFailed(f"merge: no global_step_* checkpoint under {run_path(cfg, 'stage3')}")
    easyr1_dir = cfg.launch.easyr1_dir
    merger = Path(easyr1_dir) / "scripts" / "model_merger.py" if easyr1_dir else None
    if merger is None or not merger.exists():
        raise StageFailed("merge needs EasyR1's scripts/model_merger.py: set launch.easyr1_dir=<EasyR1 checkout>")
    run_logged("merge", [sys.executable, str(merger), "--local_dir", str(latest / "actor")], cfg)


def final_model(cfg: DictConfig) -> Path:
    """The GRPO stage's Hugging Face weights: TRL saves them directly, EasyR1's merger next to the actor."""
    if cfg.grpo_backend == "trl":
        return run_path(cfg, "stage3")
    latest = latest_checkpoint(cfg)
    if latest is None or not (latest / "actor" / "huggingface").exists():
        raise StageFailed("eval: no merged GRPO model (run the merge stage first)")
    return latest / "actor" / "huggingface"


def stage_model_path(cfg: DictConfig, stage: str) -> Path | str:
    """The Hugging Face weights each stage ends with (``base``: the model stage 1 starts from)."""
    if stage == "base":  # a local folder, or a hub id as the stage-1 recipe names it
        return Path(absolute(cfg.base_model)) if cfg.get("tiny_model") else model_reference(cfg.base_model)
    if stage in ("stage1", "stage2"):
        return run_path(cfg, stage)
    if stage == "stage3":
        return final_model(cfg)
    raise StageFailed(f"eval.stages: unknown stage {stage!r} (base, stage1, stage2, stage3)")


def eval_stages(cfg: DictConfig) -> dict:
    """Every stage's model on the same items (every test file of the build), one predictions file
    each (``<run_dir>/eval/<stage>/predictions.jsonl``), scored; then ``eval.report`` over all of
    them and ``eval.stages``' side-by-side comparison (``<run_dir>/eval/report``)."""
    folder, item_files = run_path(cfg, "eval"), sorted((Path(absolute(cfg.data_dir)) / "test").glob("*.jsonl"))
    if not item_files:
        raise StageFailed(f"eval: no test files in {absolute(cfg.data_dir)}/test")
    runs = []
    for stage in cfg.eval.stages:
        out = folder / stage / "predictions.jsonl"
        if cfg.force and out.exists():  # a forced rerun must not resume from an older model's outputs
            out.unlink()
        per_stage = as_overrides((cfg.eval.get("stage_infer_overrides") or {}).get(stage, []))
        for items in item_files:
            run_logged(f"eval_infer_{stage}_{items.stem}", [
                sys.executable, "-m", "eval.infer", f"model={stage_model_path(cfg, stage)}", f"items_file={items}",
                f"out={out}", f"vllm.max_pixels={cfg.frame.max_pixels}", *as_overrides(cfg.eval.infer_overrides),
                *per_stage,
            ], cfg)
        run_logged(f"eval_score_{stage}", [sys.executable, "-m", "eval.score", str(out), "--out", str(out.parent),
                                          *as_overrides(cfg.eval.score_args)], cfg)
        runs.append((stage, out.parent))
    report = folder / "report"
    run_logged("eval_report", [sys.executable, "-m", "eval.report", *[f"--run={s}={d}" for s, d in runs],
                               "--out", str(report)], cfg)
    log = run_path(cfg, "stage3", "experiment_log.jsonl")
    reward_kwargs = json.dumps(OmegaConf.to_container(cfg.reward, resolve=True))
    run_logged("eval_stages", [sys.executable, "-m", "eval.stages", *[f"--run={s}={d}" for s, d in runs],
                               *[f"--items={f}" for f in item_files], "--out", str(report),
                               f"--reward-kwargs={reward_kwargs}", f"--seed={cfg.get('seed', 0)}",
                               *([f"--experiment-log={log}"] if log.exists() else [])], cfg)
    say(f"eval: stage comparison in {report / 'stages.md'}")
    return {"report": str(report), "stages": list(cfg.eval.stages)}


def stage_eval(cfg: DictConfig) -> dict:
    if cfg.eval.get("stages"):
        return eval_stages(cfg)
    folder = run_path(cfg, "eval")
    predictions = folder / "predictions.jsonl"
    if cfg.force and predictions.exists():  # a forced rerun must not resume from an older model's outputs
        predictions.unlink()
    run_logged("eval_infer", [
        sys.executable, "-m", "eval.infer", f"model={final_model(cfg)}",
        f"items_file={absolute(cfg.data_dir)}/test/xraybench.jsonl", f"out={predictions}",
        f"vllm.max_pixels={cfg.frame.max_pixels}", *as_overrides(cfg.eval.infer_overrides),
    ], cfg)
    run_logged("eval_score", [sys.executable, "-m", "eval.score", str(predictions), "--out", str(folder),
                              *as_overrides(cfg.eval.score_args)], cfg)
    run_logged("eval_report", [sys.executable, "-m", "eval.report", "--run", f"{cfg.run_name}={folder}",
                               "--out", str(folder / "report")], cfg)
    say(f"eval: report in {folder / 'report'} (metrics: {folder / 'metrics.json'})")
    return {"report": str(folder / "report")}


RUNNERS = {
    "model": stage_model,
    "data": stage_data,
    "stage1": lambda cfg: stage_sft(cfg, "stage1"),
    "cold_start": stage_cold_start,
    "stage2": lambda cfg: stage_sft(cfg, "stage2"),
    "stage3": stage_grpo,
    "merge": stage_merge,
    "eval": stage_eval,
}


def run(cfg: DictConfig) -> None:
    if cfg.stage == "check":
        problems = check_all(cfg)
        for stage, found in problems.items():
            say(f"check {stage}: " + ("OK" if not found else f"{len(found)} problem(s)"))
            for problem in found:
                print(f"  - {problem}")
        if any(problems.values()):
            raise StageFailed("recipes have problems (see above); nothing was launched")
        return
    stages = STAGES if cfg.stage == "all" else [cfg.stage]
    for stage in stages:
        if stage not in RUNNERS:
            raise StageFailed(f"unknown stage {stage!r}: one of {list(STAGES)}, 'all' or 'check'")
        if marker(cfg, stage).exists() and not cfg.force:
            say(f"{stage}: already complete ({marker(cfg, stage)}); force=true reruns it")
            continue
        say(f"{stage}: starting")
        for later in STAGES[STAGES.index(stage) + 1 :]:  # their outputs came from the old version of this stage
            marker(cfg, later).unlink(missing_ok=True)
        result = RUNNERS[stage](cfg)
        mark_complete(cfg, stage, {"stage": stage, "result": result if isinstance(result, dict) else None})
        say(f"{stage}: done")


@hydra.main(config_path=str(ROOT / "recipes" / "run"), config_name="default", version_base="1.3")
def main(cfg: DictConfig) -> None:
    OmegaConf.resolve(cfg)
    try:
        run(cfg)
    except StageFailed as error:
        say(f"STOPPED: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
