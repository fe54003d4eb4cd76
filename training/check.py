"""``make check-recipes``: every rendered trainer config is validated before anything is launched.

LLaMA-Factory configs go through LLaMA-Factory's own argument parser (unknown keys, bad values), in
a child process that sees no GPU (``training.llamafactory_parser``),
plus what that parser does not check: the stage and template exist, the datasets are registered
in ``dataset_info.json``, files exist, the pixel limits equal the run's frame. The parser sees a
copy with bf16 and DeepSpeed switched off (a process without a GPU refuses both); the DeepSpeed
file is checked separately.

EasyR1 cannot be installed on CPU machines, so its configs are checked against a schema of the
fields our recipes use (unknown keys are errors, as in EasyR1) and against EasyR1's own consistency
rules (batch divisibility, group size, token budgets, files). Where ``verl`` is importable, the
config also goes through EasyR1's real ``PPOConfig``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rewards.registry import RewardResolutionError, load_module_from_file

LLAMAFACTORY_STAGES = {"pt", "sft", "rm", "ppo", "dpo", "kto"}
# Tokens the prompt text takes beside the image (task prompt + format prompt), for the budget check.
PROMPT_TEXT_TOKENS = 256

_NUM, _INT, _BOOL, _STR, _ANY = (int, float), int, bool, str, object
EASYR1_SCHEMA: dict[str, Any] = {
    "data": {
        "train_files": _STR, "val_files": _STR, "prompt_key": _STR, "answer_key": _STR, "image_key": _STR,
        "video_key": _STR, "image_dir": _STR, "video_fps": _NUM, "max_prompt_length": _INT,
        "max_response_length": _INT, "rollout_batch_size": _INT, "mini_rollout_batch_size": _INT,
        "val_batch_size": _INT, "format_prompt": _STR, "override_chat_template": _STR, "shuffle": _BOOL,
        "seed": _INT, "min_pixels": _INT, "max_pixels": _INT, "filter_overlong_prompts": _BOOL,
        "filter_overlong_prompts_workers": _INT,
    },
    "algorithm": {
        "gamma": _NUM, "lam": _NUM, "adv_estimator": _STR, "disable_kl": _BOOL, "use_kl_loss": _BOOL,
        "kl_penalty": _STR, "kl_coef": _NUM, "kl_type": _STR, "kl_horizon": _NUM, "kl_target": _NUM,
        "online_filtering": _BOOL, "filter_key": _STR, "filter_low": _NUM, "filter_high": _NUM,
    },
    "worker": {
        "hybrid_engine": _BOOL,
        "actor": {
            "strategy": _STR, "global_batch_size": _INT, "micro_batch_size_per_device_for_update": _INT,
            "micro_batch_size_per_device_for_experience": _INT, "max_grad_norm": _NUM, "clip_ratio_low": _NUM,
            "clip_ratio_high": _NUM, "clip_ratio_dual": _NUM, "loss_avg_mode": _STR, "ppo_epochs": _INT,
            "padding_free": _BOOL, "dynamic_batching": _BOOL, "ulysses_size": _INT,
            "ulysses_sequence_parallel_size": _INT, "use_torch_compile": _BOOL,
            "model": {"model_path": _STR, "tokenizer_path": _STR, "override_config": _ANY,
                      "enable_gradient_checkpointing": _BOOL, "trust_remote_code": _BOOL,
                      "freeze_vision_tower": _BOOL, "lora": _ANY},
            "optim": {"lr": _NUM, "betas": _ANY, "weight_decay": _NUM, "strategy": _STR, "lr_warmup_ratio": _NUM,
                      "lr_warmup_steps": _INT, "min_lr_ratio": _NUM, "lr_scheduler_type": _STR},
            "fsdp": {"enable_full_shard": _BOOL, "enable_cpu_offload": _BOOL, "enable_rank0_init": _BOOL,
                     "use_orig_params": _BOOL, "torch_dtype": _STR, "fsdp_size": _INT, "mp_param_dtype": _STR,
                     "mp_reduce_dtype": _STR, "mp_buffer_dtype": _STR},
            "offload": {"offload_params": _BOOL, "offload_optimizer": _BOOL},
        },
        "rollout": {
            "name": _STR, "n": _INT, "temperature": _NUM, "top_p": _NUM, "top_k": _INT, "seed": _INT,
            "limit_images": _INT, "dtype": _STR, "gpu_memory_utilization": _NUM, "ignore_eos": _BOOL,
            "enforce_eager": _BOOL, "enable_chunked_prefill": _BOOL, "tensor_parallel_size": _INT,
            "max_model_len": _INT, "max_num_batched_tokens": _INT, "disable_log_stats": _BOOL,
            "disable_tqdm": _BOOL, "val_override_config": _ANY,
        },
        "ref": {"fsdp": _ANY, "offload": _ANY},
        "critic": _ANY,
        "reward": {"reward_type": None, "reward_function": _STR, "reward_function_kwargs": _ANY,
                   "skip_special_tokens": _BOOL, "num_cpus": _INT},
    },
    "trainer": {
        "total_epochs": _INT, "max_steps": _INT, "project_name": _STR, "experiment_name": _STR, "logger": _ANY,
        "nnodes": _INT, "n_gpus_per_node": _INT, "max_try_make_batch": _INT, "critic_warmup": _INT,
        "val_freq": _INT, "val_before_train": _BOOL, "val_only": _BOOL, "val_generations_to_log": _INT,
        "save_freq": _INT, "save_limit": _INT, "save_model_only": _BOOL, "save_checkpoint_path": _STR,
        "load_checkpoint_path": _STR, "find_last_checkpoint": _BOOL,
    },
}


def schema_problems(config: Any, schema: Any, where: str = "") -> list[str]:
    if schema is _ANY:
        return []
    if schema is None:
        return [f"{where}: no longer exists in EasyR1 (old config key); remove it"]
    if isinstance(schema, dict):
        if not isinstance(config, dict):
            return [f"{where or 'config'}: expected a section, got {config!r}"]
        problems = []
        for key, value in config.items():
            path = f"{where}.{key}" if where else key
            if key not in schema:
                problems.append(f"{path}: unknown key (EasyR1 rejects unknown keys)")
            else:
                problems += schema_problems(value, schema[key], path)
        return problems
    if config is None:
        return []
    expected = schema if isinstance(schema, tuple) else (schema,)
    if isinstance(config, bool) and bool not in expected:
        return [f"{where}: expected {schema}, got a boolean"]
    return [] if isinstance(config, expected) else [f"{where}: expected {schema}, got {config!r}"]


def easyr1_problems(config: dict[str, Any], frame: DictConfig | None = None) -> list[str]:
    problems = schema_problems(config, EASYR1_SCHEMA)
    if problems:
        return problems
    data, algorithm = config.get("data", {}), config.get("algorithm", {})
    actor = config.get("worker", {}).get("actor", {})
    rollout, reward = config.get("worker", {}).get("rollout", {}), config.get("worker", {}).get("reward", {})
    trainer = config.get("trainer", {})
    rollout_batch, global_batch = data.get("rollout_batch_size", 512), actor.get("global_batch_size", 256)
    n, experience = rollout.get("n", 1), actor.get("micro_batch_size_per_device_for_experience", 16)
    if rollout_batch % global_batch:
        problems.append(f"data.rollout_batch_size ({rollout_batch}) must be divisible by "
                        f"worker.actor.global_batch_size ({global_batch})")
    if (rollout_batch * n) % experience:
        problems.append(f"rollout_batch_size * rollout.n ({rollout_batch * n}) must be divisible by "
                        f"micro_batch_size_per_device_for_experience ({experience})")
    if algorithm.get("adv_estimator") == "grpo" and n <= 1:
        problems.append("GRPO compares a group of responses: worker.rollout.n must be > 1")
    prompt, response = data.get("max_prompt_length", 512), data.get("max_response_length", 512)
    if rollout.get("max_num_batched_tokens", 8192) < prompt + response:
        problems.append(f"rollout.max_num_batched_tokens must be >= max_prompt_length + max_response_length "
                        f"({prompt + response})")
    image_tokens = data.get("max_pixels", 4194304) // (28 * 28)
    if image_tokens + PROMPT_TEXT_TOKENS > prompt:
        problems.append(
            f"an image of max_pixels={data.get('max_pixels')} takes up to {image_tokens} tokens: with the prompt "
            f"text (~{PROMPT_TEXT_TOKENS}) that exceeds max_prompt_length={prompt}, and EasyR1 silently drops "
            "overlong prompts; raise max_prompt_length or lower max_pixels")
    world = trainer.get("nnodes", 1) * trainer.get("n_gpus_per_node", 8)
    if world % rollout.get("tensor_parallel_size", 2):
        problems.append(f"nnodes * n_gpus_per_node ({world}) must be divisible by rollout.tensor_parallel_size")
    if frame is not None and (data.get("max_pixels"), data.get("min_pixels")) != (frame.max_pixels, frame.min_pixels):
        problems.append("data.max_pixels / min_pixels differ from the run's frame: boxes would not match the images")
    fmt = data.get("format_prompt")
    if not fmt or not Path(fmt).is_file():
        problems.append(f"data.format_prompt {fmt!r} does not exist (EasyR1 would silently train without it)")
    problems += reward_problems(reward)
    return problems


def reward_problems(reward: dict[str, Any]) -> list[str]:
    """Load the reward file as EasyR1 will (by path) and validate its keyword arguments."""
    spec = reward.get("reward_function", "")
    path, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "main")
    try:
        module = load_module_from_file(Path(path))
    except RewardResolutionError as error:
        return [f"worker.reward.reward_function: {error}"]
    if not callable(getattr(module, name or "main", None)):
        return [f"worker.reward.reward_function: {path} has no function {name or 'main'!r}"]
    if getattr(module, "REWARD_TYPE", "batch") not in ("batch", "sequential"):
        return [f"{path}: REWARD_TYPE must be 'batch' or 'sequential'"]
    validate = getattr(module, "validate_reward_kwargs", None)
    if validate is not None:
        try:
            validate(dict(reward.get("reward_function_kwargs") or {}))
        except ValueError as error:
            return [f"worker.reward.reward_function_kwargs: {error}"]
    return []


def easyr1_native_problems(config: dict[str, Any]) -> list[str]:
    """Through EasyR1's own PPOConfig, where EasyR1 is installed (GPU nodes)."""
    if importlib.util.find_spec("verl") is None:
        return []
    from omegaconf import OmegaConf
    from verl.trainer.config import PPOConfig

    try:
        merged = OmegaConf.merge(OmegaConf.structured(PPOConfig()), OmegaConf.create(config))
        OmegaConf.to_object(merged).deep_post_init()
    except Exception as error:  # EasyR1 raises several kinds; any of them is a broken recipe
        return [f"EasyR1 PPOConfig: {type(error).__name__}: {error}"]
    return []


def sft_problems(config: dict[str, Any], frame: DictConfig | None = None, produced_by_earlier_stage=()) -> list[str]:
    problems = []
    if config.get("stage") not in LLAMAFACTORY_STAGES:
        problems.append(f"stage {config.get('stage')!r} is not a LLaMA-Factory stage {sorted(LLAMAFACTORY_STAGES)}")
    deepspeed = config.get("deepspeed")
    if deepspeed:
        try:
            json.loads(Path(deepspeed).read_text())
        except (OSError, json.JSONDecodeError) as error:
            problems.append(f"deepspeed config {deepspeed}: {error}")
    info_path = Path(config.get("dataset_dir", "data")) / "dataset_info.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        for name in str(config.get("dataset", "")).split(","):
            if name.strip() not in info:
                problems.append(f"dataset {name.strip()!r} is not in {info_path} (has {sorted(info)})")
            elif not (info_path.parent / info[name.strip()]["file_name"]).exists():
                problems.append(f"dataset {name.strip()!r}: {info[name.strip()]['file_name']} does not exist")
    model = str(config.get("model_name_or_path", ""))
    if model.startswith("/") and not Path(model).exists() and model not in produced_by_earlier_stage:
        problems.append(f"model_name_or_path {model} does not exist")
    if frame is not None and (config.get("image_max_pixels"), config.get("image_min_pixels")) != (
        frame.max_pixels, frame.min_pixels):
        problems.append("image_max_pixels / image_min_pixels differ from the run's frame")
    parsable = {**config, "bf16": False, "fp16": False, "deepspeed": None}
    parsable["output_dir"] = str(Path(config.get("output_dir", "out")) / ".check")
    # In a child that sees no GPU (training/llamafactory_parser.py): with several GPUs visible the parser
    # refuses to run outside torchrun, and this process must never hold a CUDA context.
    from training.llamafactory_parser import shared

    problems += shared().problems({k: v for k, v in parsable.items() if v is not None})
    return problems
