"""Stage 3 on TRL's ``GRPOTrainer``: the same rendered EasyR1 recipe, data and reward, without vLLM or Ray.

EasyR1 needs GPUs and vLLM. On CPU (the demo) or a single GPU, this backend reads the rendered
EasyR1 config and maps it onto TRL:

| EasyR1 key                                        | TRL (GRPOConfig / trainer)                      |
| ------------------------------------------------- | ----------------------------------------------- |
| worker.actor.model.model_path                     | the policy (and, with a KL term, the reference) |
| worker.actor.model.freeze_vision_tower            | the vision tower's weights stay as loaded       |
| data.train_files, image_dir, prompt/answer/image keys | the dataset: conversational prompt + images  |
| data.format_prompt (Jinja, ``content`` = prompt)  | applied to every prompt, as EasyR1 does         |
| worker.rollout.n / temperature / top_p / top_k    | num_generations / temperature / top_p / top_k   |
| data.max_response_length                          | max_completion_length                           |
| algorithm.kl_coef (use_kl_loss, not disable_kl)   | beta (0 when the KL term is off)                |
| worker.actor.clip_ratio_low / clip_ratio_high     | epsilon / epsilon_high                          |
| worker.actor.loss_avg_mode (seq / token)          | loss_type (grpo / dapo)                         |
| worker.actor.loss_type (default / gspo)           | importance_sampling_level (token / sequence)    |
| worker.actor.ppo_epochs                           | num_iterations                                  |
| worker.actor.optim.lr / weight_decay / betas, max_grad_norm | learning_rate / weight_decay / adam_beta1, adam_beta2 / max_grad_norm |
| worker.actor.optim.lr_scheduler_type, lr_warmup_*, min_lr_ratio | lr_scheduler_type (constant_with_warmup / cosine_with_min_lr), warmup_steps |
| worker.actor.global_batch_size x rollout.n        | per_device_train_batch_size (responses a step)  |
| data.rollout_batch_size / global_batch_size       | steps_per_generation                            |
| trainer.total_epochs / max_steps / logger         | num_train_epochs / max_steps / report_to        |
| worker.reward.reward_function (+ kwargs)          | the same function, through rewards.trl_adapter  |

The objective (paper eq. 2) on TRL 0.24: ``loss_type="grpo"`` is eq. 2's per-response averaging
(1/G sum_i 1/|o_i| sum_t), exactly, per device batch; the clip is symmetric with epsilon; the KL
term is the k3 estimator of eq. 3 (unclamped, where EasyR1 clamps), to a reference that is the
policy's initial weights, as in EasyR1. TRL has no dual clip, so a dual-clip constant that can bind
(``clip_ratio_dual`` at most exp(20), EasyR1's ratio cap) is refused rather than silently dropped;
so are EasyR1 loss types TRL cannot express (``gspo_token``, ``cispo``, ``sapo``). TRL's group
advantages divide by (std + 1e-4) where EasyR1 uses 1e-6. Other settings that change what is learned
and have no TRL mapping (another advantage estimator or KL estimator, online filtering, LoRA) are
refused too (``refuse_what_trl_cannot_run``).

The optimiser and schedule follow EasyR1's defaults where the recipe is silent (AdamW, weight decay
1e-2, a constant learning rate after warm-up), not TRL's (no weight decay; a learning rate decaying
linearly to 0, half EasyR1's on average). The Hugging Face trainer exempts biases and norms from weight
decay, where EasyR1 decays every weight.

Every reward component and the share of groups with zero reward spread are logged per step to
``<output_dir>/experiment_log.jsonl`` in EasyR1's file-logger format (``training.grpo_log``).
Vision special tokens (``rewards.frame.VISION_TOKENS``) are suppressed during generation. Weights
are saved in Hugging Face format to the output folder.

    python -m training.grpo_trl <run_dir>/configs/stage3.yaml <run_dir>/stage3
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import jinja2
from omegaconf import OmegaConf

from data_prep.outputs import require_rows
from rewards.frame import VISION_TOKENS
from rewards.settings import config_bool

# EasyR1 caps the importance ratio at exp(20) before clipping (core_algos.compute_policy_loss): a
# dual-clip constant above it never binds, which is how the stage-3 recipe switches dual clip off.
EASYR1_RATIO_CAP = math.exp(20.0)
LOSS_AVERAGING = {"seq": "grpo", "token": "dapo"}  # EasyR1 loss_avg_mode -> TRL loss_type
IMPORTANCE_SAMPLING = {"default": "token", "gspo": "sequence"}  # EasyR1 loss_type -> TRL level



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
    table = pq.read_table(data["train_files"])
    require_rows(Path(data["train_files"]), table.num_rows)
    for row in table.to_pylist():
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


def kl_term_on(algorithm: dict[str, Any]) -> bool:
    """EasyR1's KL loss term is in the objective: ``use_kl_loss`` and not ``disable_kl``."""
    return (config_bool(algorithm.get("use_kl_loss", False), "algorithm.use_kl_loss")
            and not config_bool(algorithm.get("disable_kl", False), "algorithm.disable_kl"))


def unsupported_settings(config: dict[str, Any]) -> list[str]:
    """Settings of the EasyR1 recipe that change what is learned and that this backend has no
    mapping for, one line each (``training.run``'s pre-flight reads them before stage 1)."""
    algorithm, worker = config.get("algorithm", {}), config["worker"]
    problems = []
    if algorithm.get("adv_estimator", "grpo") != "grpo":
        problems.append(f"algorithm.adv_estimator={algorithm['adv_estimator']!r} (TRL's GRPOTrainer runs grpo only)")
    if kl_term_on(algorithm) and algorithm.get("kl_penalty", "kl") != "low_var_kl":
        problems.append(f"algorithm.kl_penalty={algorithm.get('kl_penalty', 'kl')!r} (TRL's KL term is k3, low_var_kl)")
    if config_bool(algorithm.get("online_filtering", False), "algorithm.online_filtering"):
        problems.append("algorithm.online_filtering=true (TRL 0.24 has no online filtering)")
    if int((worker["actor"].get("model", {}).get("lora") or {}).get("rank", 0) or 0) > 0:
        problems.append("worker.actor.model.lora.rank > 0 (this backend trains every weight)")
    return problems


def refuse_what_trl_cannot_run(config: dict[str, Any]) -> None:
    """An error naming each ``unsupported_settings``, never a run that silently differs from the recipe."""
    problems = unsupported_settings(config)
    if problems:
        raise ValueError("the TRL GRPO backend cannot run: " + "; ".join(problems) + ". Use grpo_backend=easyr1.")


def objective_arguments(actor: dict[str, Any]) -> dict[str, Any]:
    """EasyR1's policy-loss settings as TRL's; a setting TRL cannot express is an error, never dropped.

    EasyR1's defaults (asymmetric clip 0.2/0.3, dual clip 3.0, token averaging) apply where the
    recipe leaves a key out, as they would in EasyR1.
    """
    averaging, loss = actor.get("loss_avg_mode", "token"), actor.get("loss_type", "default")
    if averaging not in LOSS_AVERAGING:
        raise ValueError(f"worker.actor.loss_avg_mode={averaging!r}: EasyR1 knows {sorted(LOSS_AVERAGING)}")
    if loss not in IMPORTANCE_SAMPLING:
        raise ValueError(f"worker.actor.loss_type={loss!r} has no TRL 0.24 equivalent (TRL: {sorted(IMPORTANCE_SAMPLING)}); "
                         "use grpo_backend=easyr1")
    dual = float(actor.get("clip_ratio_dual", 3.0))
    if dual <= EASYR1_RATIO_CAP:
        raise ValueError(f"worker.actor.clip_ratio_dual={dual} is a dual clip that can bind; TRL 0.24 has none. Set it "
                         f"above {EASYR1_RATIO_CAP:.3g} (off, as paper eq. 2) or use grpo_backend=easyr1")
    return {
        "epsilon": float(actor.get("clip_ratio_low", 0.2)),
        "epsilon_high": float(actor.get("clip_ratio_high", 0.3)),
        "loss_type": LOSS_AVERAGING[averaging],
        "importance_sampling_level": IMPORTANCE_SAMPLING[loss],
        "num_iterations": int(actor.get("ppo_epochs", 1)),
    }


def optimizer_arguments(optim: dict[str, Any], max_steps: int) -> dict[str, Any]:
    """EasyR1's optimiser and learning-rate schedule (``worker.actor.optim``, its defaults where a key
    is absent) as TRL's; a setting TRL cannot express is an error, never dropped."""
    strategy, schedule = optim.get("strategy", "adamw"), optim.get("lr_scheduler_type", "constant")
    if strategy != "adamw":
        raise ValueError(f"worker.actor.optim.strategy={strategy!r}: the TRL backend runs AdamW only; use grpo_backend=easyr1")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"worker.actor.optim.lr_scheduler_type={schedule!r}: EasyR1 knows constant and cosine")
    beta1, beta2 = optim.get("betas", (0.9, 0.999))
    mapped: dict[str, Any] = {
        "learning_rate": optim.get("lr", 1e-6),
        "weight_decay": optim.get("weight_decay", 1e-2),
        "adam_beta1": float(beta1), "adam_beta2": float(beta2),
        "lr_scheduler_type": "constant_with_warmup" if schedule == "constant" else "cosine_with_min_lr",
    }
    if schedule == "cosine":  # the same curve: min + (1 - min) * (1 + cos(pi * progress)) / 2
        mapped["lr_scheduler_kwargs"] = {"min_lr_rate": float(optim.get("min_lr_ratio") or 0.0)}
    warmup_steps, warmup_ratio = optim.get("lr_warmup_steps"), float(optim.get("lr_warmup_ratio", 0.0))
    if warmup_steps is not None:
        mapped["warmup_steps"] = int(warmup_steps)
    elif warmup_ratio and max_steps > 0:
        mapped["warmup_steps"] = int(warmup_ratio * max_steps)  # EasyR1 rounds down, the HF trainer up
    else:
        mapped["warmup_ratio"] = warmup_ratio  # (epoch-counted runs: the HF trainer's rounding)
    return mapped


def freeze_vision_tower(model) -> int:
    """Stop the vision tower's weights from training, as EasyR1's ``freeze_vision_tower`` does; the
    number of weights frozen. A model without one is an error: the recipe asked for something
    this model cannot do."""
    tower = getattr(getattr(model, "model", None), "visual", None)  # transformers >= 4.52
    if tower is None:
        tower = getattr(model, "visual", None)
    if tower is None:
        raise ValueError("worker.actor.model.freeze_vision_tower=true, but the model has no vision tower (model.visual)")
    tower.requires_grad_(False)
    return sum(p.numel() for p in tower.parameters())


def trl_arguments(config: dict[str, Any], output_dir: str, use_bf16: bool, use_gpu: bool) -> dict[str, Any]:
    data, algorithm, trainer = config["data"], config.get("algorithm", {}), config.get("trainer", {})
    actor, rollout = config["worker"]["actor"], config["worker"]["rollout"]
    n, prompts_per_step = rollout.get("n", 5), actor.get("global_batch_size", 1)
    loggers = [name for name in trainer.get("logger", []) if name in ("wandb", "tensorboard", "mlflow")]
    max_steps = trainer.get("max_steps") or -1  # -1: the epochs decide
    return {
        "output_dir": output_dir,
        "num_generations": n,
        "temperature": rollout.get("temperature", 1.0),
        "top_p": rollout.get("top_p", 1.0),
        "top_k": None if int(rollout.get("top_k", -1)) <= 0 else int(rollout["top_k"]),  # EasyR1: -1 is off
        "max_completion_length": data.get("max_response_length", 512),
        "max_prompt_length": None,  # truncating a VLM prompt would cut image tokens
        "beta": algorithm.get("kl_coef", 0.0) if kl_term_on(algorithm) else 0.0,
        "max_grad_norm": actor.get("max_grad_norm", 1.0),
        "per_device_train_batch_size": prompts_per_step * n,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": max(1, data.get("rollout_batch_size", prompts_per_step) // prompts_per_step),
        "num_train_epochs": trainer.get("total_epochs", 1),
        "max_steps": max_steps,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": loggers,
        "bf16": use_bf16,
        "use_cpu": not use_gpu,
        "seed": data.get("seed", 1),
        "remove_unused_columns": False,
        **objective_arguments(actor),
        **optimizer_arguments(actor.get("optim", {}), max_steps),
    }


def train(config_path: Path, output_dir: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from rewards.registry import load_callable
    from rewards.trl_adapter import easyr1_reward_as_trl
    from training.grpo_log import ExperimentLog, RewardRecorder

    config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
    refuse_what_trl_cannot_run(config)
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
    if config_bool(config["worker"]["actor"]["model"].get("freeze_vision_tower", False),
                   "worker.actor.model.freeze_vision_tower"):
        print(f"vision tower frozen: {freeze_vision_tower(model):,} weights")
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
