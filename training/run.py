"""Run the pipeline's stages: ``python -m training.run stage=<name|all|check|follow>`` (``make train-all``).

Stages, in order: ``model`` (demo only: build the tiny Qwen2.5-VL), ``data`` (data_prep.build),
``stage1`` (LLaMA-Factory SFT), ``cold_start`` (data_prep.cold_start), ``stage2`` (LLaMA-Factory
SFT from stage 1), ``stage3`` (GRPO from stage 2: EasyR1, or TRL with ``grpo_backend=trl``),
``merge`` (EasyR1's best checkpoint -> Hugging Face weights) and ``eval``.

A stage is complete when its outputs exist and its marker's fingerprint of its inputs (settings,
rendered trainer config, what earlier stages produced) matches (``training.markers``); then it is
skipped. A stage whose inputs changed runs again; a trainer stage whose output folder holds a run
from other inputs stops and says what changed (``force=true`` starts it fresh). A crashed trainer
stage resumes from its last checkpoint; ``force=true`` moves its old output aside (never reused) and
starts fresh. Each trainer's output goes to ``<run_dir>/logs/<stage>.log`` (appended per attempt)
as well as the console; a failed stage stops the chain naming the stage and its log.
``stage=check`` renders and validates every trainer config and launches nothing. Several nodes:
rank 0 runs the chain, other ranks run ``stage=follow`` (they join the torchrun stages; see
``training.launch``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from data_prep.endpoint import redact
from rewards.settings import ConfigValueError, check_booleans
from training import check, launch, markers
from training.llamafactory_parser import close_shared as close_parser
from training.markers import marker
from training.render import (
    ROOT,
    SFT_DATASETS,
    absolute,
    model_reference,
    render,
    run_path,
)

STAGES = ("model", "data", "stage1", "cold_start", "stage2", "stage3", "merge", "eval")
DATA_READERS = ("stage1", "cold_start", "stage2", "stage3", "eval")  # refuse data built in another frame


class StageFailed(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[training.run] {message}", flush=True)


def run_logged(stage: str, command: list[str], cfg: DictConfig, env: dict[str, str] | None = None,
               log_name: str | None = None) -> None:
    """Run a trainer, teeing its output to <run_dir>/logs/<stage>.log (appended: a resumed attempt keeps
    the earlier ones' lines); raise StageFailed on failure. Every stage gets ``launch.stage_env``."""
    log = run_path(cfg, "logs", f"{log_name or stage}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    shown = redact(" ".join(command), [])  # an override's URL keeps no user:password@ (console and log)
    say(f"{stage}: {shown}  (log: {log})")
    full_env = {**os.environ, **launch.stage_env(env, wandb_dir=run_path(cfg, "logs"))}
    with log.open("a", encoding="utf-8") as handle:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        handle.write(f"===== {stamp} attempt: {shown}\n")
        handle.flush()
        process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in process.stdout:
            sys.stdout.write(line)
            handle.write(line)
        code = process.wait()
    if code != 0:
        raise StageFailed(f"stage {stage} failed with exit code {code}; its log: {log}")


def check_all(cfg: DictConfig, notes: list[str] | None = None) -> dict[str, list[str]]:
    """Render and validate every trainer config of the run; ``notes`` collects inputs that an earlier
    stage of the run produces and that are not there yet."""
    problems = {}
    produced = {str(run_path(cfg, "stage1"))}  # stage 2's start, unless handed over from elsewhere
    if cfg.get("tiny_model"):  # the model stage builds it
        produced.add(absolute(cfg.base_model))
    data_problems = check.data_frame_problems(absolute(cfg.data_dir), cfg.frame) + check.data_override_problems(
        as_overrides(cfg.data.overrides), cfg.frame)
    datasets = {SFT_DATASETS["stage2"]: "cold_start"}  # the data stage writes stage 1's with dataset_info.json
    for stage in ("stage1", "stage2"):
        config, _ = render(cfg, stage)
        problems[stage] = data_problems + check.sft_problems(config, cfg.frame, produced_by_earlier_stage=produced,
                                                             produced_datasets=datasets, notes=notes)
    config, _ = render(cfg, "stage3")
    problems["stage3"] = data_problems + check.easyr1_problems(
        config, cfg.frame, produced=[absolute(cfg.data_dir)]) + check.easyr1_native_problems(config)
    if cfg.grpo_backend == "easyr1":  # TRL's backend runs in one process
        problems["stage3"] += check.best_checkpoint_problems(config, cfg.get("merge", {}).get("checkpoint", "best"))
        problems["stage3"] += check.easyr1_world_problems(config) + check.easyr1_dir_problems(
            absolute(cfg.launch.easyr1_dir) if cfg.launch.easyr1_dir else None)
    elif cfg.grpo_backend == "trl":  # what the TRL backend would refuse at stage 3, said before stage 1
        from training.grpo_trl import unsupported_settings

        problems["stage3"] += [f"grpo_backend=trl cannot run {setting}" for setting in unsupported_settings(config)]
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
    problems = check.data_override_problems(as_overrides(cfg.data.overrides), cfg.frame)
    if problems:
        raise StageFailed("data: " + "; ".join(problems))
    if cfg.get("generate_releases"):  # demo: synthetic releases in the real formats
        findings, size = cfg.get("generate_findings"), cfg.get("generate_image_size")
        run_logged("releases", [sys.executable, "-m", "data_prep.fixtures", absolute(cfg.data_root),
                                "--seed", str(cfg.get("seed", 0)), "--subjects", str(cfg.generate_releases),
                                *(["--findings", ",".join(findings)] if findings else []),
                                *(["--image-size", "x".join(str(side) for side in size)] if size else [])], cfg)
    run_logged("data", [
        sys.executable, "-m", "data_prep.build", "--config-name", cfg.data.config_name,
        f"data_root={absolute(cfg.data_root)}", f"out_dir={absolute(cfg.data_dir)}",
        f"frame.min_pixels={cfg.frame.min_pixels}", f"frame.max_pixels={cfg.frame.max_pixels}",
        *as_overrides(cfg.data.overrides),
    ], cfg)
    manifest = Path(absolute(cfg.data_dir)) / "manifest.json"
    empty = json.loads(manifest.read_text(encoding="utf-8")).get("empty_outputs") or {}
    if empty and cfg.stage == "all":  # the chain reads every output: stop now, not after hours of stage 1
        raise StageFailed("data: the build left " + "; ".join(f"{name} empty ({why})" for name, why in empty.items())
                          + f"; the full chain needs every output (see {manifest})")
    for name, why in empty.items():
        say(f"data: WARNING {name} is empty ({why}); stages that read it will refuse it")


def stage_cold_start(cfg: DictConfig) -> dict:
    serve = cfg.cold_start.get("serve") or {}
    if not serve.get("enabled"):
        return synthesize_traces(cfg)
    from data_prep.endpoint import EndpointUnavailable
    from data_prep.serve_teacher import served_teacher, teacher_config

    try:  # vLLM serves the teacher for this stage only, then frees the GPUs
        with served_teacher(teacher_config(as_overrides(cfg.cold_start.overrides)), str(serve.gpus),
                            as_overrides(serve.get("args", [])), float(serve.startup_timeout_s),
                            log=run_path(cfg, "logs", "teacher_vllm.log")):
            return synthesize_traces(cfg)
    except (EndpointUnavailable, ValueError) as error:
        raise StageFailed(f"cold_start: serving the teacher: {error}") from None


def synthesize_traces(cfg: DictConfig) -> dict:
    run_logged("cold_start", [
        sys.executable, "-m", "data_prep.cold_start", f"data_dir={absolute(cfg.data_dir)}",
        *as_overrides(cfg.cold_start.overrides),
    ], cfg)
    report = json.loads((Path(absolute(cfg.data_dir)) / "cold_start" / "report.json").read_text())
    if report["kept"] == 0:
        raise StageFailed(f"cold_start kept no trace; see {absolute(cfg.data_dir)}/cold_start/report.json")
    return report


def last_sft_checkpoint(folder: Path) -> Path | None:
    """The ``checkpoint-N`` LLaMA-Factory resumes from (transformers' get_last_checkpoint rule)."""
    steps = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(steps, key=lambda p: int(p.name.split("-")[-1])) if steps else None


def set_aside_cut_short_checkpoints(cfg: DictConfig, stage: str) -> None:
    """A ``checkpoint-N`` cut short while saving (a job killed mid-save, e.g. at its time limit) has no
    valid ``trainer_state.json``: transformers writes it last and reads it first when resuming, so every
    resume from it would crash. The newest such checkpoints are moved aside (never deleted), and the
    stage resumes from the last complete one (``save_total_limit`` keeps the one before)."""
    while (newest := last_sft_checkpoint(run_path(cfg, stage))) is not None:
        if markers.read(newest / "trainer_state.json") is not None:
            return
        if launch.move_aside(newest, run_path(cfg), f"{stage}: {newest.name} was cut short while saving (no valid "
                             "trainer_state.json); resuming from the checkpoint before it",
                             name=f"{stage}-{newest.name}") is None:
            newest.rmdir()  # an empty folder: nothing to keep


def start_fresh_if_forced(cfg: DictConfig, stage: str) -> None:
    """force=true: the stage's old output (checkpoints included) is moved aside, never resumed into."""
    if cfg.force:
        launch.move_aside(run_path(cfg, stage), run_path(cfg), f"{stage}: force=true starts it fresh")


def resume_or_refuse(cfg: DictConfig, stage: str, inputs: dict) -> None:
    """Without force, a trainer resumes into its output folder only if that run had the same inputs."""
    out = run_path(cfg, stage)
    if cfg.force or not out.is_dir() or not any(out.iterdir()):
        return
    began = markers.last_record(cfg, stage)
    if began is not None and began.get("fingerprint") == markers.fingerprint(inputs):
        return
    what = markers.changes(began.get("inputs", {}), inputs) if began else [
        "no record of what it was started from (an older version of training.run, or another tool)"]
    raise StageFailed(
        f"{stage}: {out} holds a run made from other inputs, which is never resumed or reused. Changed: "
        + "; ".join(what[:10]) + ("; ..." if len(what) > 10 else "")
        + f". Rerun with force=true (make ... FORCE=1) to move it aside and start {stage} fresh, or restore the "
        "previous settings to resume it")


def discard_stale_predictions(cfg: DictConfig, inputs: dict) -> None:
    """Inference resumes a killed run's predictions file, but never one made by another model or item set."""
    began = markers.last_record(cfg, "eval")
    stale = cfg.force or began is None or began.get("fingerprint") != markers.fingerprint(inputs)
    # the final model's predictions, and each stage's under eval.stages (same path, new weights: stale too)
    for predictions in sorted(run_path(cfg, "eval").glob("**/predictions.jsonl")) if stale else ():
        launch.move_aside(predictions, run_path(cfg), "eval: predictions of another model, item set or force=true",
                          name="-".join(predictions.relative_to(run_path(cfg)).parts))


def stage_sft(cfg: DictConfig, stage: str) -> None:
    config, path = render(cfg, stage)
    # ~0.6 ms a row on one core (training/sft_lengths.py): ~4 minutes for the 7B recipe's 351.5K stage-1 rows
    say(f"{stage}: checking {path.name} with LLaMA-Factory's parser, and every row against "
        f"cutoff_len={config.get('cutoff_len')}")
    problems = check.sft_problems(config, cfg.frame)
    close_parser()  # the parser's process must not stay alive (and in memory) while the trainer runs
    if problems:
        raise StageFailed(f"{stage} config {path} is invalid:\n  " + "\n  ".join(problems))
    if " " in str(path):  # LLaMA-Factory's launcher splits torchrun's argument string on spaces
        raise StageFailed(f"{stage}: the run folder must not contain spaces for torchrun ({path})")
    start_fresh_if_forced(cfg, stage)
    set_aside_cut_short_checkpoints(cfg, stage)
    previous = last_sft_checkpoint(run_path(cfg, stage))
    say(f"{stage}: resuming from {previous}" if previous else f"{stage}: starting from step 0")
    env = launch.llamafactory_env(cfg, deepspeed=bool(config.get("deepspeed")))
    ticket = None
    if int(cfg.launch.nnodes) > 1:  # the other nodes join through a ticket in the shared run folder
        ticket = launch.Ticket(cfg, stage, path)
        say(f"{stage}: waiting for node ranks 1..{int(cfg.launch.nnodes) - 1} to acknowledge {ticket.path}")
        ticket.wait_for_acks(float(cfg.launch.ack_timeout_s))
    try:
        run_logged(stage, [llamafactory_cli(), "train", str(path)], cfg, env)
    finally:
        if ticket is not None:
            ticket.close()


def llamafactory_cli() -> str:
    cli = Path(sys.executable).with_name("llamafactory-cli")
    return str(cli) if cli.exists() else "llamafactory-cli"


def announce_skip(cfg: DictConfig, stage: str) -> None:
    """Several nodes: the followers wait for every torchrun stage; tell them this one is not launched."""
    if int(cfg.launch.nnodes) > 1 and stage in launch.DISTRIBUTED_SFT:
        ticket = launch.Ticket(cfg, stage, None, action="skip")
        try:
            ticket.wait_for_acks(float(cfg.launch.ack_timeout_s))
        finally:
            ticket.close()


def join_sft(cfg: DictConfig, stages: tuple[str, ...]) -> None:
    """Node rank > 0: be a torchrun worker of each SFT stage rank 0 launches, with rank 0's config."""
    remaining = list(stages)
    while remaining:
        ticket = launch.wait_for_ticket(cfg, tuple(remaining), float(cfg.launch.follow_timeout_s))
        remaining = remaining[remaining.index(ticket["stage"]) + 1 :]
        if ticket["action"] == "stop":
            raise StageFailed(f"node rank {launch.node_rank(cfg)}: rank 0 stopped the chain: {ticket.get('reason')}")
        if ticket["action"] == "skip":
            say(f"{ticket['stage']}: rank 0 does not launch it (already complete)")
            continue
        config = launch.check_ticket(cfg, ticket)
        env = launch.llamafactory_env(cfg, deepspeed=True)
        env.update({"MASTER_ADDR": ticket["master_addr"], "MASTER_PORT": str(ticket["master_port"])})
        run_logged(ticket["stage"], [llamafactory_cli(), "train", str(config)], cfg, env,
                   log_name=f"{ticket['stage']}.node{launch.node_rank(cfg)}")
    say(f"node rank {launch.node_rank(cfg)}: done with the torchrun stages (GRPO's other nodes are Ray workers)")


# EasyR1 keeps these in the runtime_env of its Ray job, so every Ray worker gets them (never secrets).
RAY_FORWARDED = ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "HF_HUB_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME")
EASYR1_LOGS = ("experiment_log.jsonl", "generations.log", "experiment_config.json")


def stage_grpo(cfg: DictConfig) -> None:
    config, path = render(cfg, "stage3")
    problems = check.easyr1_problems(config, cfg.frame)
    if cfg.grpo_backend == "easyr1":
        problems += check.easyr1_world_problems(config) + check.easyr1_native_problems(config)
        problems += check.best_checkpoint_problems(config, cfg.get("merge", {}).get("checkpoint", "best"))
    if problems:
        raise StageFailed(f"stage3 config {path} is invalid:\n  " + "\n  ".join(problems))
    if cfg.grpo_backend == "easyr1":
        try:  # the merge stage needs it: fetched (or refused) now, not after days of GRPO on a node without internet
            easyr1_merger(cfg)
        except StageFailed as error:
            raise StageFailed(f"stage3 not started: the merge stage after it would fail. {error}") from None
    start_fresh_if_forced(cfg, "stage3")
    out = run_path(cfg, "stage3")
    if cfg.grpo_backend == "easyr1":
        if config["trainer"].get("find_last_checkpoint", True) is False or config["trainer"].get("load_checkpoint_path"):
            say("stage3: the recipe turns EasyR1's resume off (find_last_checkpoint / load_checkpoint_path)")
        tracker = markers.read(out / "checkpoint_tracker.json")
        say(f"stage3: resuming from global_step_{tracker['last_global_step']}" if tracker else "stage3: starting from step 0")
        kept = launch.preserve_logs(out, EASYR1_LOGS)  # EasyR1's FileLogger truncates them when it starts
        if kept:
            say(f"stage3: earlier attempts' logs kept as {', '.join(p.name for p in kept)}")
        env = {"DEEPMEDIX_RAY_ENV": ",".join(RAY_FORWARDED)}
        if int(cfg.launch.nnodes) > 1:
            env["DEEPMEDIX_SHARED_PROBE"] = str(launch.write_probe(cfg))
        run_logged("stage3", [sys.executable, "-m", "training.easyr1_launch", f"config={path}"], cfg, env)
    elif cfg.grpo_backend == "trl":
        run_logged("stage3", [sys.executable, "-m", "training.grpo_trl", str(path), str(out)], cfg)
    else:
        raise StageFailed(f"grpo_backend must be 'easyr1' or 'trl', got {cfg.grpo_backend!r}")


def latest_checkpoint(cfg: DictConfig) -> Path | None:
    """EasyR1's newest ``global_step_N`` folder of this run's GRPO stage."""
    steps = sorted(run_path(cfg, "stage3").glob("global_step_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    return steps[-1] if steps else None


def checkpoint_to_merge(cfg: DictConfig) -> tuple[Path, str]:
    """``merge.checkpoint``: best (EasyR1's best_global_step by validation reward, when recorded and
    kept), last, or a global step; with the reason, said in the log and kept in the marker."""
    out = run_path(cfg, "stage3")
    wanted = str(cfg.get("merge", {}).get("checkpoint", "best"))
    tracker = markers.read(out / "checkpoint_tracker.json") or {}
    latest = latest_checkpoint(cfg)
    if latest is None:
        raise StageFailed(f"merge: no global_step_* checkpoint under {out}")
    if wanted.isdigit():
        chosen = out / f"global_step_{wanted}"
        if not chosen.is_dir():
            raise StageFailed(f"merge: merge.checkpoint={wanted} but {chosen} does not exist")
        return chosen, f"global step {wanted}, as merge.checkpoint asks"
    if wanted not in ("best", "last"):
        raise StageFailed(f"merge.checkpoint must be best, last or a global step, got {wanted!r}")
    if wanted == "best":
        best = tracker.get("best_global_step")
        trainer = (markers.last_record(cfg, "stage3") or {}).get("inputs", {}).get("config", {}).get("trainer", {})
        if trainer and int(trainer.get("val_freq", -1)) <= 0:
            return latest, (f"last checkpoint {latest.name}: no validation ran during training (trainer.val_freq <= 0), "
                            "so EasyR1's best_global_step says nothing")
        if best is not None and (out / f"global_step_{best}").is_dir():
            score = tracker.get("best_val_reward_score")
            return out / f"global_step_{best}", (f"best by validation reward: global_step_{best} "
                                                 f"(val/reward_score {score}, EasyR1's best_global_step)")
        if best is not None:
            return latest, f"last checkpoint {latest.name}: the best one (global_step_{best}) is no longer on disk"
        return latest, f"last checkpoint {latest.name}: EasyR1 recorded no best_global_step"
    return latest, f"last checkpoint {latest.name}, as merge.checkpoint asks"


# EasyR1's model merger at the pinned commit (environment.yml). pip installs EasyR1's package, not its
# scripts/ folder, so the file is taken from a checkout if given, else fetched once and checked.
EASYR1_COMMIT = "b44b311b669bf1fd1aa2fc36f2251482ba33cb16"
EASYR1_MERGER_URL = f"https://raw.githubusercontent.com/hiyouga/EasyR1/{EASYR1_COMMIT}/scripts/model_merger.py"
EASYR1_MERGER_SHA256 = "9d195b502dd7767992bb43c76849e01b60d5d0afe58f86223e7190d7b0bdb5e5"


def easyr1_merger(cfg: DictConfig, download: bool = True) -> Path:
    """``scripts/model_merger.py``: from ``launch.easyr1_dir``, from the pinned sources beside the
    repository (``../shared/vendor``, as in CI), or downloaded at the pinned commit into ``.cache/``."""
    from data_prep.writers import atomic_write_bytes, sha256_of

    if cfg.launch.easyr1_dir:
        merger = Path(absolute(cfg.launch.easyr1_dir)) / "scripts" / "model_merger.py"
        if not merger.exists():
            raise StageFailed(f"merge: launch.easyr1_dir={cfg.launch.easyr1_dir} has no scripts/model_merger.py")
        return merger
    for candidate in (ROOT / ".cache" / f"easyr1-{EASYR1_COMMIT[:7]}" / "model_merger.py",
                      ROOT.parent / "shared" / "vendor" / f"easyr1-{EASYR1_COMMIT[:7]}" / "scripts" / "model_merger.py"):
        if candidate.exists() and sha256_of(candidate) == EASYR1_MERGER_SHA256:
            return candidate
    target = ROOT / ".cache" / f"easyr1-{EASYR1_COMMIT[:7]}" / "model_merger.py"
    if not download:
        raise StageFailed(f"merge: EasyR1's model merger is not at {target}")
    import hashlib
    import urllib.request

    say(f"merge: fetching EasyR1's model merger at {EASYR1_COMMIT[:7]} from {EASYR1_MERGER_URL}")
    try:
        with urllib.request.urlopen(EASYR1_MERGER_URL, timeout=60) as response:
            data = response.read()
    except OSError as error:
        raise StageFailed(f"merge: could not fetch {EASYR1_MERGER_URL} ({error}); run `make easyr1-merger` where "
                          "the internet is reachable, or set launch.easyr1_dir=<EasyR1 checkout>") from None
    if hashlib.sha256(data).hexdigest() != EASYR1_MERGER_SHA256:
        raise StageFailed(f"merge: {EASYR1_MERGER_URL} does not have the pinned sha256 {EASYR1_MERGER_SHA256}")
    atomic_write_bytes(target, data)
    return target


def stage_merge(cfg: DictConfig) -> dict | None:
    if cfg.grpo_backend == "trl":
        say("merge: the TRL backend saves Hugging Face weights directly; nothing to merge")
        return {"model": str(run_path(cfg, "stage3")), "why": "TRL saves Hugging Face weights"}
    chosen, why = checkpoint_to_merge(cfg)
    say(f"merge: merging {chosen} ({why})")
    run_logged("merge", [sys.executable, str(easyr1_merger(cfg)), "--local_dir", str(chosen / "actor")], cfg)
    model = chosen / "actor" / "huggingface"
    say(f"merge: Hugging Face weights in {model}")
    return {"model": str(model), "global_step": int(chosen.name.rsplit("_", 1)[1]), "why": why}


def final_model(cfg: DictConfig) -> Path:
    """The model the merge stage produced (EasyR1: the merged checkpoint it chose; TRL: stage 3)."""
    if cfg.grpo_backend == "trl":
        return run_path(cfg, "stage3")
    merged = markers.stage_result(cfg, "merge").get("model")
    if merged is None or not Path(merged).exists():
        raise StageFailed("eval: no merged GRPO model (run the merge stage first)")
    return Path(merged)


def stage_model_path(cfg: DictConfig, stage: str) -> Path | str:
    """The Hugging Face weights each stage ends with (``base``: the model stage 1 starts from)."""
    if stage == "base":  # a local folder, or a hub id as the stage-1 recipe names it
        return Path(absolute(cfg.base_model)) if cfg.get("tiny_model") else model_reference(cfg.base_model)
    if stage in ("stage1", "stage2"):
        return run_path(cfg, stage)
    if stage == "stage3":
        return final_model(cfg)
    raise StageFailed(f"eval.stages: unknown stage {stage!r} (base, stage1, stage2, stage3)")


def combined_test_items(cfg: DictConfig) -> Path:
    """Every test file of the build (XrayBench, grounding...) as one items file in the eval folder, so
    each stage's predictions file comes from one item set (``eval.infer`` records and checks it)."""
    item_files = sorted((Path(absolute(cfg.data_dir)) / "test").glob("*.jsonl"))
    if not item_files:
        raise StageFailed(f"eval: no test files in {absolute(cfg.data_dir)}/test")
    combined = run_path(cfg, "eval", "items.jsonl")
    combined.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(path.read_bytes().rstrip(b"\n") + b"\n" for path in item_files if path.stat().st_size)
    if not combined.exists() or combined.read_bytes() != data:
        temporary = combined.with_name(f".{combined.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, combined)
    return combined


def eval_stages(cfg: DictConfig) -> dict:
    """Every stage's model on the same items (every test file of the build), one predictions file
    each (``<run_dir>/eval/<stage>/predictions.jsonl``), scored; then ``eval.report`` over all of
    them and ``eval.stages``' side-by-side comparison (``<run_dir>/eval/report``)."""
    folder, items = run_path(cfg, "eval"), combined_test_items(cfg)
    runs = []
    for stage in cfg.eval.stages:
        out = folder / stage / "predictions.jsonl"
        per_stage = as_overrides((cfg.eval.get("stage_infer_overrides") or {}).get(stage, []))
        run_logged(f"eval_infer_{stage}", [
            sys.executable, "-m", "eval.infer", f"model={stage_model_path(cfg, stage)}", f"items_file={items}",
            f"image_root={absolute(cfg.data_dir)}", f"out={out}", f"vllm.max_pixels={cfg.frame.max_pixels}",
            *as_overrides(cfg.eval.infer_overrides), *per_stage,
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
                               f"--items={items}", "--out", str(report),
                               f"--reward-kwargs={reward_kwargs}", f"--seed={cfg.get('seed', 0)}",
                               *([f"--experiment-log={log}"] if log.exists() else [])], cfg)
    say(f"eval: stage comparison in {report / 'stages.md'}")
    return {"report": str(report), "stages": list(cfg.eval.stages)}


def stage_eval(cfg: DictConfig) -> dict:
    if cfg.eval.get("stages"):
        return eval_stages(cfg)
    folder = run_path(cfg, "eval")
    predictions = folder / "predictions.jsonl"
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


BOOLEANS = ("force", "tiny_model", "cold_start.serve.enabled")  # of recipes/run/*.yaml; the trainers' keys: training.check


def run(cfg: DictConfig) -> None:
    check_booleans(cfg, BOOLEANS)
    try:
        launch.refuse_on_other_ranks(cfg, cfg.stage)
    except launch.LaunchError as error:
        raise StageFailed(str(error)) from None
    if cfg.stage == "check":
        notes = []
        problems = check_all(cfg, notes)
        close_parser()
        for note in notes:
            say(f"check: {note}")
        for stage, found in problems.items():
            say(f"check {stage}: " + ("OK" if not found else f"{len(found)} problem(s)"))
            for problem in found:
                print(f"  - {problem}")
        if any(problems.values()):
            raise StageFailed("recipes have problems (see above); nothing was launched")
        return
    if cfg.stage == "follow" or launch.node_rank(cfg) > 0:
        stages = launch.DISTRIBUTED_SFT if cfg.stage == "follow" else (cfg.stage,)
        try:
            return join_sft(cfg, stages)
        except launch.LaunchError as error:
            raise StageFailed(str(error)) from None
    stages = STAGES if cfg.stage == "all" else [cfg.stage]
    try:
        run_stages(cfg, stages)
    except (StageFailed, launch.LaunchError) as error:
        # followers wait only for the torchrun stages this invocation was to launch (not for `stage=stage3` alone)
        waiting = [stage for stage in launch.DISTRIBUTED_SFT if stage in stages and not marker(cfg, stage).exists()]
        if int(cfg.launch.nnodes) > 1 and waiting:  # followers would wait for a torchrun stage that never comes
            launch.announce_stop(cfg, str(error), timeout_s=min(120.0, float(cfg.launch.ack_timeout_s)))
        raise


def run_stages(cfg: DictConfig, stages) -> None:
    for stage in stages:
        if stage not in RUNNERS:
            raise StageFailed(f"unknown stage {stage!r}: one of {list(STAGES)}, 'all', 'check' or 'follow'")
        inputs = markers.stage_inputs(cfg, stage)
        state, detail = markers.status(cfg, stage, inputs)
        if state == "complete" and not cfg.force:
            say(f"{stage}: already complete ({marker(cfg, stage)}); force=true reruns it")
            announce_skip(cfg, stage)
            continue
        if stage in DATA_READERS:
            problems = check.data_frame_problems(absolute(cfg.data_dir), cfg.frame)
            if problems:
                raise StageFailed(f"{stage}: " + "; ".join(problems))
        if state == "changed":
            say(f"{stage}: its inputs changed since it completed: " + "; ".join(detail[:10]))
        elif state == "outputs missing":
            say(f"{stage}: marked complete but its outputs are gone ({', '.join(detail)}); running it again")
        if stage in markers.TRAINER_STAGES:
            resume_or_refuse(cfg, stage, inputs)
        elif stage == "eval":
            discard_stale_predictions(cfg, inputs)
        say(f"{stage}: starting")
        marker(cfg, stage).unlink(missing_ok=True)  # later stages see this one's output change
        markers.mark_started(cfg, stage, inputs)
        try:
            result = RUNNERS[stage](cfg)
        except launch.LaunchError as error:
            raise StageFailed(str(error)) from None
        markers.mark_complete(cfg, stage, inputs, result if isinstance(result, dict) else None)
        say(f"{stage}: done")


@hydra.main(config_path=str(ROOT / "recipes" / "run"), config_name="default", version_base="1.3")
def main(cfg: DictConfig) -> None:
    OmegaConf.resolve(cfg)
    try:
        run(cfg)
    except (StageFailed, ConfigValueError, launch.LaunchError) as error:
        say(f"STOPPED: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
