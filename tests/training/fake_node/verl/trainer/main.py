"""Fake EasyR1 entry point: what verl.trainer.main does that matters to the launcher. It calls
ray.init with EasyR1's own runtime_env, resumes from checkpoint_tracker.json as find_last_checkpoint
does, truncates its log files as EasyR1's FileLogger does, saves global_step_N checkpoints and the
tracker with best_global_step (FAKE_BEST_STEP), and records argv, environment, config and resume."""
import json
import os
import sys
from pathlib import Path

import ray
import yaml


def main():
    config_path = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("config=")][0]
    config = yaml.safe_load(Path(config_path).read_text())
    ray.init(runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "true", "NCCL_DEBUG": "WARN"}})
    out = Path(config["trainer"]["save_checkpoint_path"])
    out.mkdir(parents=True, exist_ok=True)
    tracker = out / "checkpoint_tracker.json"
    resume = None
    if config["trainer"].get("find_last_checkpoint", True) and tracker.exists():
        resume = json.loads(tracker.read_text())["last_global_step"]
    for name in ("experiment_log.jsonl", "generations.log"):  # EasyR1's FileLogger: mode "w"
        (out / name).write_text("")
    with open(os.environ["FAKE_NODE_LOG"], "a") as log:
        log.write(json.dumps({"event": "easyr1", "argv": sys.argv, "config": config, "resume_from": resume,
                              "env": {k: os.environ.get(k) for k in ("WANDB_MODE", "DEEPMEDIX_RAY_ENV")}}) + "\n")
    start = resume or 0
    for step in (start + 5, start + 10):
        (out / f"global_step_{step}" / "actor" / "huggingface").mkdir(parents=True, exist_ok=True)
        with open(out / "experiment_log.jsonl", "a") as f:
            f.write(json.dumps({"step": step}) + "\n")
        if os.environ.get("FAKE_CRASH_AT_STEP") == str(step):
            sys.exit(1)
        best = int(os.environ.get("FAKE_BEST_STEP", step))
        tracker.write_text(json.dumps({"best_global_step": best, "best_val_reward_score": 0.8,
                                       "last_global_step": step}))


if __name__ == "__main__":
    main()
