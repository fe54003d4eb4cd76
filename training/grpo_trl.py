"""Stage 3 on TRL's ``GRPOTrainer``: the same rendered EasyR1 recipe, data and reward, without vLLM or Ray.

EasyR1 needs GPUs and vLLM. On CPU (the demo) or a single GPU, this backend reads the rendered
EasyR1 config and maps it onto TRL:

| EasyR1 key                                        | TRL (GRPOConfig / trainer)                      |
| ------------------------------------------------- | ----------------------------------------------- |
| worker.actor.model.model_path                     | the policy (and, with a KL term, the reference) |
| data.train_files, image_dir, prompt/answer/image keys | the dataset: conversational prompt + images  |
| data.format_prompt (Jinja, ``content`` = prompt)  | applied to every prompt, as EasyR1 does         |
| worker.rollout.n / temperature / top_p            | num_generations / temperature / top_p           |
| data.max_response_length                          | max_completion_length                           |
| algorithm.kl_coef (use_kl_loss, not disable_kl)   | beta (0 when the KL term is off)                |
| worker.actor.optim.lr / weight_decay, max_grad_norm | learning_rate / weight_decay / max_grad_norm  |
| worker.actor.global_batch_size x rollout.n        | per_device_train_batch_size (responses a step)  |
| data.rollout_batch_size / global_batch_size       | steps_per_generation                            |
| trainer.total_epochs / max_steps / logger         | num_train_epochs / max_steps / report_to        |
| worker.reward.reward_function (+ kwargs)          | the same function, through rewards.trl_adapter  |

Every reward component and the share of groups with zero reward spread are logged per step to
``<output_dir>/experiment_log.jsonl`` in EasyR1's file-logger format (``training.grpo_log``).
Vision special tokens (``rewards.frame.VISION_TOKENS``) are suppressed during generation. Weights
are saved in Hugging Face format to the output folder.

    python -m training.grpo_trl <run_dir>/configs/stage3.yaml <run_dir>/stage3
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jinja2
from omegaconf import OmegaConf

from rewards.frame import VISION_TOKENS



def load_dataset(config: dict[str, Any]):
    """EasyR1's parquet as a TRL dataset: conversational prompt (format prompt applied) and PIL images."""
    import pyarrow.parquet as pq
    from datasets import Dataset, Image as ImageFeature, Sequence

    data = config["data"]
    template = None
    if data.get("format_prompt"):
        template = jinja2.Template(Path(data["format_prompt"]).read_text(encoding="utf-8").strip())
    image_dir = Path(data.get("image_dir") or ".")
    rows = []
    for row in pq.read_table(data["train_files"]).to_pylist():
        prompt = row[data.get("prompt_key", "prompt")]
        if template is not None:
            prompt = template.render(content=prompt)
        rows.append({
            "prompt": [{"role": "user", "content": prompt.replace("<image>", "").strip()}],
            "images": [str(image_dir / path) for path in row[data.get("image_key", "images")]],
            "answer": row[data.get("answer_key", "answer")],
        })
    dataset = Dataset.from_list(rows)
    return dataset.cast_column("images", Sequence(ImageFeature()))


def trl_arguments(config: dict[str, Any], output_dir: str, use_bf16: bool, use_gpu: bool) -> dict[str, Any]:
    data, algorithm, trainer = config["data"], config.get("algorithm", {}), config.get("trainer", {})
    actor, rollout = config["worker"]["actor"], config["worker"]["rollout"]
    n, prompts_per_step = rollout.get("n", 5), actor.get("global_batch_size", 1)
    kl_on = algorithm.get("use_kl_loss", False) and not algorithm.get("disable_kl", False)
    loggers = [name for name in trainer.get("logger", []) if name in ("wandb", "tensorboard", "mlflow")]
    return {
        "output_dir": output_dir,
        "num_generations": n,
        "temperature": rollout.get("temperature", 1.0),
        "top_p": rollout.get("top_p", 1.0),
        "max_completion_length": data.get("max_response_length", 512),
        "max_prompt_length": None,  # truncating a VLM prompt would cut image tokens
        "beta": algorithm.get("kl_coef", 0.0) if kl_on else 0.0,
        "learning_rate": actor.get("optim", {}).get("lr", 1e-6),
        "weight_decay": actor.get("optim", {}).get("weight_decay", 0.0),
        "max_grad_norm": actor.get("max_grad_norm", 1.0),
        "per_device_train_batch_size": prompts_per_step * n,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": max(1, data.get("rollout_batch_size", prompts_per_step) // prompts_per_step),
        "num_train_epochs": trainer.get("total_epochs", 1),
        "max_steps": trainer.get("max_steps") or -1,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": loggers,
        "bf16": use_bf16,
        "use_cpu": not use_gpu,
        "seed": data.get("seed", 1),
        "remove_unused_columns": False,
    }


def train(config_path: Path, output_dir: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from rewards.registry import load_callable
    from rewards.trl_adapter import easyr1_reward_as_trl
    from training.grpo_log import ExperimentLog, RewardRecorder

    config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
    model_path = config["worker"]["actor"]["model"]["model_path"]
    reward = config["worker"]["reward"]
    recorder = RewardRecorder(load_callable(reward["reward_function"], default_function="main"),
                              group_size=config["worker"]["rollout"].get("n", 5))
    reward_function = easyr1_reward_as_trl(
        recorder, ground_truth_column="answer", **(reward.get("reward_function_kwargs") or {}),
    )
    use_gpu = torch.cuda.is_available()
    use_bf16 = use_gpu and torch.cuda.is_bf16_supported()  # fp32 on GPUs without bf16 (fp16 is unstable for RL)
    processor = AutoProcessor.from_pretrained(model_path)
    model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch.bfloat16 if use_bf16 else torch.float32)
    suppressed = [i for i in processor.tokenizer.convert_tokens_to_ids(list(VISION_TOKENS)) if i is not None]
    arguments = GRPOConfig(**trl_arguments(config, str(output_dir), use_bf16, use_gpu),
                           generation_kwargs={"suppress_tokens": suppressed})
    trainer = GRPOTrainer(model=model, reward_funcs=[reward_function], args=arguments,
                          train_dataset=load_dataset(config), processing_class=processor,
                          callbacks=[ExperimentLog(output_dir, recorder)])  # EasyR1's file-logger format
    trainer.train()
    trainer.save_model(str(output_dir))
    processor.save_pretrained(str(output_dir))
    rewards = [entry for entry in trainer.state.log_history if any(k.startswith("rewards/") for k in entry)]
    return {"steps": trainer.state.global_step, "reward_logs": rewards}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="a rendered EasyR1 config (stage3.yaml)")
    parser.add_argument("output_dir", type=Path)
    args = parser.parse_args(argv)
    summary = train(args.config, args.output_dir)
    print(f"GRPO (TRL) finished: {summary['steps']} steps; weights in {args.output_dir}")
    for entry in summary["reward_logs"]:
        print({k: v for k, v in entry.items() if k.startswith("rewards/") or k in ("step", "loss", "reward")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
