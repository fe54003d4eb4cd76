"""``make check-recipes``: every rendered trainer config is validated before anything is launched.

LLaMA-Factory configs go through LLaMA-Factory's own argument parser (unknown keys, bad values), in
a child process that sees no GPU (``training.llamafactory_parser``),
plus what that parser does not check: the stage and template exist, the datasets are registered
in ``dataset_info.json`` (or an earlier stage of the run produces them), files exist, booleans are
real booleans (the parser passes ``flase`` through as a truthy string), ``cutoff_len`` holds an
image's tokens and the prompt, the pixel limits equal the run's frame. The parser sees a copy with bf16 and DeepSpeed
switched off (a process without a GPU refuses both); the DeepSpeed
file is checked separately.

EasyR1 is not installed on CPU machines, so its configs are checked against the key schema of its
config dataclasses at the pinned commit (unknown keys are errors, as in EasyR1; a test derives the
schema from the real dataclasses) and against the rules EasyR1 itself enforces, several of them only
once its GPU workers start: batch divisibility, group size, token budgets, the per-GPU batch rules
for the run's world size, files and folders, online-filtering bounds against the reward's range.
Where ``verl`` is importable, the config also goes through EasyR1's real ``PPOConfig``. The data a
run reads must have been built in the run's frame (its ``manifest.json``).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import types
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from data_prep.outputs import EmptyOutputError, require_rows
from rewards.registry import RewardResolutionError, load_module_from_file

LLAMAFACTORY_STAGES = {"pt", "sft", "rm", "ppo", "dpo", "kto"}
# Tokens the prompt text takes beside the image (task prompt + format prompt), for the budget check.
PROMPT_TEXT_TOKENS = 256

_NUM, _INT, _BOOL, _STR, _ANY = (int, float), int, bool, str, object
# EasyR1's config keys and types at the pinned commit (b44b311): every field a user may set in its
# config dataclasses (verl/trainer/config.py, verl/workers/*/config.py; init=False "auto keys" are
# not settable). tests/training/test_easyr1_config.py derives this from the real dataclasses with
# ``schema_from_dataclass`` and fails on any drift; where EasyR1 is installed the schema is derived
# from it at run time instead (``easyr1_schema``).
_EASYR1_FSDP = {
    "enable_full_shard": _BOOL, "enable_cpu_offload": _BOOL, "enable_rank0_init": _BOOL, "use_orig_params": _BOOL,
    "torch_dtype": _STR, "fsdp_size": _INT, "mp_param_dtype": _STR, "mp_reduce_dtype": _STR, "mp_buffer_dtype": _STR,
}
_EASYR1_OFFLOAD = {"offload_params": _BOOL, "offload_optimizer": _BOOL}
_EASYR1_MODEL = {
    "model_path": _STR, "tokenizer_path": _STR, "override_config": _ANY, "enable_gradient_checkpointing": _BOOL,
    "trust_remote_code": _BOOL, "freeze_vision_tower": _BOOL,
    "lora": {"rank": _INT, "alpha": _INT, "target_modules": _STR, "exclude_modules": _STR},
}
_EASYR1_OPTIM = {
    "lr": _NUM, "betas": _ANY, "weight_decay": _NUM, "strategy": _STR, "lr_warmup_ratio": _NUM,
    "lr_warmup_steps": _INT, "min_lr_ratio": _NUM, "lr_scheduler_type": _STR,
}
_EASYR1_BATCHES = {
    "strategy": _STR, "global_batch_size": _INT, "micro_batch_size_per_device_for_update": _INT,
    "micro_batch_size_per_device_for_experience": _INT, "max_grad_norm": _NUM,
}
EASYR1_SCHEMA: dict[str, Any] = {
    "data": {
        "train_files": _STR, "val_files": _STR, "prompt_key": _STR, "answer_key": _STR, "image_key": _STR,
        "video_key": _STR, "image_dir": _STR, "video_fps": _NUM, "max_prompt_length": _INT,
        "max_response_length": _INT, "rollout_batch_size": _INT, "mini_rollout_batch_size": _INT,
        "val_batch_size": _INT, "format_prompt": _STR, "override_chat_template": _STR, "shuffle": _BOOL,
        "seed": _INT, "min_pixels": _INT, "max_pixels": _INT, "filter_overlong_prompts": _BOOL,
        "filter_overlong_prompts_workers": _INT,
    },
    "worker": {
        "hybrid_engine": _BOOL,
        "actor": {
            **_EASYR1_BATCHES, "clip_ratio_low": _NUM, "clip_ratio_high": _NUM, "clip_ratio_dual": _NUM,
            "loss_avg_mode": _STR, "loss_type": _STR, "ppo_epochs": _INT, "padding_free": _BOOL,
            "dynamic_batching": _BOOL, "ulysses_size": _INT, "use_torch_compile": _BOOL, "tau_positive": _NUM,
            "tau_negative": _NUM, "model": _EASYR1_MODEL, "optim": _EASYR1_OPTIM, "fsdp": _EASYR1_FSDP,
            "offload": _EASYR1_OFFLOAD,
        },
        "critic": {
            **_EASYR1_BATCHES, "cliprange_value": _NUM, "loss_avg_mode": _STR, "ppo_epochs": _INT,
            "padding_free": _BOOL, "dynamic_batching": _BOOL, "ulysses_size": _INT, "model": _EASYR1_MODEL,
            "optim": _EASYR1_OPTIM, "fsdp": _EASYR1_FSDP, "offload": _EASYR1_OFFLOAD,
        },
        "ref": {"strategy": _STR, "fsdp": _EASYR1_FSDP, "offload": _EASYR1_OFFLOAD},
        "reward": {"reward_function": _STR, "reward_function_kwargs": _ANY, "skip_special_tokens": _BOOL,
                   "num_cpus": _INT},
        "rollout": {
            "name": _STR, "n": _INT, "temperature": _NUM, "top_p": _NUM, "top_k": _INT, "seed": _INT,
            "limit_images": _INT, "dtype": _STR, "gpu_memory_utilization": _NUM, "ignore_eos": _BOOL,
            "enforce_eager": _BOOL, "enable_chunked_prefill": _BOOL, "tensor_parallel_size": _INT,
            "max_model_len": _INT, "max_num_batched_tokens": _INT, "disable_log_stats": _BOOL,
            "disable_tqdm": _BOOL, "val_override_config": _ANY,
        },
    },
    "algorithm": {
        "gamma": _NUM, "lam": _NUM, "adv_estimator": _STR, "disable_kl": _BOOL, "use_kl_loss": _BOOL,
        "kl_penalty": _STR, "kl_coef": _NUM, "kl_type": _STR, "kl_horizon": _NUM, "kl_target": _NUM,
        "online_filtering": _BOOL, "filter_key": _STR, "filter_low": _NUM, "filter_high": _NUM,
    },
    "trainer": {
        "total_epochs": _INT, "max_steps": _INT, "project_name": _STR, "experiment_name": _STR, "logger": _ANY,
        "nnodes": _INT, "n_gpus_per_node": _INT, "max_try_make_batch": _INT, "critic_warmup": _INT,
        "val_freq": _INT, "val_before_train": _BOOL, "val_only": _BOOL, "val_generations_to_log": _INT,
        "save_freq": _INT, "save_limit": _INT, "save_model_only": _BOOL, "save_checkpoint_path": _STR,
        "load_checkpoint_path": _STR, "ray_timeline": _STR, "find_last_checkpoint": _BOOL,
    },
}
# Keys older EasyR1 versions had and configs written for them still carry: a clearer error than "unknown".
EASYR1_REMOVED_KEYS = {("worker", "reward", "reward_type"), ("worker", "reward", "score_function")}


def schema_from_dataclass(config_class: type) -> dict[str, Any]:
    """The settable keys of a config dataclass (``init=False`` fields are computed, not settable), typed
    as ``schema_problems`` checks them; nested dataclasses become sections."""
    hints = typing.get_type_hints(config_class)
    return {field.name: _schema_type(hints[field.name]) for field in dataclasses.fields(config_class) if field.init}


def _schema_type(hint: Any) -> Any:
    if dataclasses.is_dataclass(hint):
        return schema_from_dataclass(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(hint) if member is not type(None)]
        return _schema_type(members[0]) if len(members) == 1 else _ANY
    return {bool: _BOOL, int: _INT, float: _NUM, str: _STR}.get(hint, _ANY)


def easyr1_installed() -> bool:
    """EasyR1 installed as a package (``pip install git+...EasyR1``; its distribution is named ``verl``),
    not merely a source folder on ``sys.path`` as in the tests."""
    try:
        importlib.metadata.distribution("verl")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def easyr1_schema() -> dict[str, Any]:
    """EasyR1's key schema: from its own dataclasses where it is installed, else the pinned commit's."""
    if easyr1_installed():
        try:
            from verl.trainer.config import PPOConfig

            return schema_from_dataclass(PPOConfig)
        except ImportError:  # installed but not importable here (e.g. no vLLM): the pinned schema
            pass
    return EASYR1_SCHEMA


def schema_problems(config: Any, schema: Any, where: str = "") -> list[str]:
    if schema is _ANY:
        return []
    if isinstance(schema, dict):
        if not isinstance(config, dict):
            return [f"{where or 'config'}: expected a section, got {config!r}"]
        problems = []
        for key, value in config.items():
            path = f"{where}.{key}" if where else key
            if tuple(path.split(".")) in EASYR1_REMOVED_KEYS:
                problems.append(f"{path}: no longer exists in EasyR1 (old config key); remove it")
            elif key not in schema:
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


def easyr1_problems(config: dict[str, Any], frame: DictConfig | None = None, produced: Collection[str] = ()) -> list[str]:
    """``produced``: paths an earlier stage of the run writes (the data folder before the data stage)."""
    problems = schema_problems(config, easyr1_schema())
    if problems:
        return problems
    data, algorithm = config.get("data", {}), config.get("algorithm", {})
    actor = config.get("worker", {}).get("actor", {})
    rollout, reward = config.get("worker", {}).get("rollout", {}), config.get("worker", {}).get("reward", {})
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
    if frame is not None:
        problems += frame_problems("data.min_pixels", data.get("min_pixels"), "data.max_pixels", data.get("max_pixels"),
                                   frame)
    for key in ("train_files", "val_files", "image_dir"):
        path = data.get(key)
        if path and path.startswith("/") and not Path(path).exists() and not _produced(path, produced):
            problems.append(f"data.{key} {path} does not exist")
    problems += online_filtering_problems(algorithm, reward)
    fmt = data.get("format_prompt")
    if not fmt or not Path(fmt).is_file():
        problems.append(f"data.format_prompt {fmt!r} does not exist (EasyR1 would silently train without it)")
    problems += empty_data_problems([data.get("train_files"), data.get("val_files")])
    problems += reward_problems(reward)
    return problems


def _produced(path: str, produced: Collection[str]) -> bool:
    return any(Path(path) == Path(p) or Path(p) in Path(path).parents for p in produced)


def frame_problems(min_key: str, min_value: Any, max_key: str, max_value: Any, frame: DictConfig) -> list[str]:
    """A trainer's pixel limits must be the run's frame, or boxes and images disagree."""
    return [f"{key}={value} differs from the run's frame.{name}={expected}: boxes would not match the images"
            for key, value, name, expected in ((min_key, min_value, "min_pixels", frame.min_pixels),
                                               (max_key, max_value, "max_pixels", frame.max_pixels))
            if value != expected]


def data_frame_problems(data_dir: str | Path, frame: DictConfig) -> list[str]:
    """The frame a data build wrote its images and boxes in (its manifest) against the run's frame."""
    manifest = Path(data_dir) / "manifest.json"
    if not manifest.is_file():
        return []
    try:
        built = json.loads(manifest.read_text())["config"]["frame"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        return [f"{manifest}: cannot read the frame the data was built with ({type(error).__name__}: {error})"]
    return [f"the data in {data_dir} was built with frame.{name}={built.get(name)}, but this run's frame.{name}="
            f"{frame[name]}: rebuild the data with the run's frame (make data) or run with frame.{name}="
            f"{built.get(name)}" for name in ("min_pixels", "max_pixels") if built.get(name) != frame[name]]


def data_override_problems(overrides: list[str], frame: DictConfig) -> list[str]:
    """The data build takes its frame from the run (one setting for data, SFT and GRPO): an override of
    it in ``data.overrides`` (``DATA_ARGS``) that differs would silently build another frame."""
    problems = []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.strip() in ("frame.min_pixels", "frame.max_pixels"):
            name = key.strip().split(".")[1]
            if value.strip() != str(frame[name]):
                problems.append(f"data override {override!r} differs from the run's frame.{name}={frame[name]}: set "
                                f"the run's frame.{name} instead (RUN_ARGS), so data, SFT and GRPO share it")
        elif key.strip() == "frame":
            problems.append(f"data override {override!r}: set the run's frame instead (RUN_ARGS)")
    return problems


def easyr1_world_problems(config: dict[str, Any]) -> list[str]:
    """The per-GPU batch rules EasyR1 checks only once its workers start, for the world size
    ``trainer.nnodes * trainer.n_gpus_per_node`` (verl/workers/fsdp_workers.py ``_init_dist_mesh``, the
    even split of every batch over the workers in verl/protocol.py ``chunk`` and the trainer's
    sequence balancing; the rollout's tensor-parallel groups)."""
    if schema_problems(config, easyr1_schema()):
        return []  # wrong keys or types: easyr1_problems reports them
    data, trainer = config.get("data", {}), config.get("trainer", {})
    worker = config.get("worker", {})
    rollout = worker.get("rollout", {})
    world = trainer.get("nnodes", 1) * trainer.get("n_gpus_per_node", 8)
    n = rollout.get("n", 1)
    rollout_batch = data.get("rollout_batch_size", 512)
    problems = []
    if world % rollout.get("tensor_parallel_size", 2):
        problems.append(f"nnodes * n_gpus_per_node ({world}) must be divisible by rollout.tensor_parallel_size "
                        f"({rollout.get('tensor_parallel_size', 2)})")
    generation_batch = data.get("mini_rollout_batch_size") or rollout_batch
    if generation_batch % world:
        problems.append(f"data.{'mini_' if data.get('mini_rollout_batch_size') else ''}rollout_batch_size "
                        f"({generation_batch}) must be divisible by the {world} GPUs (each generates an equal share)")
    if (rollout_batch * n) % world:
        problems.append(f"rollout_batch_size * rollout.n ({rollout_batch * n}) must be divisible by the {world} GPUs")
    roles = [("actor", worker.get("actor", {}))]
    if config.get("algorithm", {}).get("adv_estimator", "grpo") == "gae":
        roles.append(("critic", worker.get("critic", {})))
    for role, settings in roles:
        ulysses = settings.get("ulysses_size", 1)
        if world % ulysses:
            problems.append(f"worker.{role}.ulysses_size ({ulysses}) must divide the {world} GPUs")
            continue
        global_batch = settings.get("global_batch_size", 256) * max(1, n)
        per_device = global_batch // (world // ulysses)
        micro = settings.get("micro_batch_size_per_device_for_update", 4)
        where = f"worker.{role}.global_batch_size * rollout.n ({global_batch}) over {world // ulysses} data-parallel GPUs"
        if per_device == 0:
            problems.append(f"{where} leaves no sample per GPU")
        elif per_device % micro:
            problems.append(f"{where} = {per_device} per GPU, not divisible by "
                            f"micro_batch_size_per_device_for_update ({micro})")
        elif settings.get("fsdp", {}).get("enable_cpu_offload") and per_device != micro:
            problems.append(f"worker.{role}.fsdp.enable_cpu_offload needs no gradient accumulation: {where} = "
                            f"{per_device} per GPU must equal micro_batch_size_per_device_for_update ({micro})")
    return problems


def online_filtering_problems(algorithm: dict[str, Any], reward: dict[str, Any]) -> list[str]:
    """EasyR1's online filtering keeps a group only if its mean ``filter_key`` lies strictly between
    ``filter_low`` and ``filter_high``; its defaults (0.01, 0.99) assume rewards in [0, 1]."""
    if not algorithm.get("online_filtering"):
        return []
    from rewards.deepmedix import SCORE_KEYS, RewardConfig, RewardConfigError

    if not str(reward.get("reward_function", "")).endswith("rewards/easyr1_entry.py:compute_score"):
        return []  # another reward: its keys and range are its own
    key = algorithm.get("filter_key", "overall")
    low, high = algorithm.get("filter_low", 0.01), algorithm.get("filter_high", 0.99)
    try:
        config = RewardConfig.from_kwargs(dict(reward.get("reward_function_kwargs") or {}))
        keys = SCORE_KEYS + tuple(name for name, _, _ in config.components())
    except (RewardConfigError, RewardResolutionError):
        return []  # reported by reward_problems
    problems = []
    if key not in keys:
        problems.append(f"algorithm.filter_key {key!r} is not a key the reward returns {list(keys)}")
    if not low < high:
        problems.append(f"algorithm.filter_low ({low}) must be below filter_high ({high})")
    if key == "overall":
        least, most = config.overall_range()
        if not least <= low < high <= most:
            problems.append(f"algorithm.filter_low/filter_high ({low}, {high}) must lie inside the reward's range "
                            f"[{least:g}, {most:g}] (EasyR1's defaults assume [0, 1])")
        elif (low, high) == (0.01, 0.99):
            problems.append(f"algorithm.filter_low/filter_high are EasyR1's defaults (0.01, 0.99), meant for rewards "
                            f"in [0, 1]; this reward spans [{least:g}, {most:g}]: set them for it (see the recipe)")
    return problems


def best_checkpoint_problems(config: dict[str, Any], merge_checkpoint: Any) -> list[str]:
    """``merge.checkpoint=best`` trusts EasyR1's ``best_global_step``. EasyR1 scores a checkpoint with the
    latest validation reward (ray_trainer ``_save_checkpoint``): one saved at a step without validation
    inherits an earlier step's score, and could be named best for it."""
    trainer = config.get("trainer", {})
    val_freq, save_freq = trainer.get("val_freq", -1), trainer.get("save_freq", -1)
    if str(merge_checkpoint) != "best" or not all(isinstance(v, int) and v > 0 for v in (val_freq, save_freq)):
        return []
    if save_freq % val_freq:
        return [(f"trainer.save_freq ({save_freq}) is not a multiple of trainer.val_freq ({val_freq}): checkpoints "
                 "saved without a validation at their step get an earlier step's validation reward, and "
                 "merge.checkpoint=best could merge one for a score it did not earn; align them or set "
                 "merge.checkpoint=last")]
    return []


def easyr1_dir_problems(easyr1_dir: str | None) -> list[str]:
    """``launch.easyr1_dir``, when set, must be an EasyR1 checkout holding the model merger."""
    if not easyr1_dir:
        return []
    merger = Path(easyr1_dir) / "scripts" / "model_merger.py"
    if not merger.is_file():
        return [f"launch.easyr1_dir={easyr1_dir}: {merger} does not exist (an EasyR1 checkout is expected)"]
    return []


def _bool_fields(classes) -> set[str]:
    names = set()
    for config_class in classes:
        try:
            hints = typing.get_type_hints(config_class)
        except (NameError, TypeError):  # a forward reference this Python cannot resolve: the written type
            hints = {}
        for field in dataclasses.fields(config_class):
            hint = hints.get(field.name, field.type)
            members = set(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, types.UnionType) else {hint}
            if members - {type(None)} == {bool} or hint in ("bool", "Optional[bool]", "bool | None"):
                names.add(field.name)
    return names


def sft_type_problems(config: dict[str, Any]) -> list[str]:
    """LLaMA-Factory's parser (transformers' ``HfArgumentParser.parse_dict``) does not convert values:
    ``bf16: flase`` arrives as a truthy string. Every boolean argument must be a real boolean."""
    from llamafactory.hparams import (
        DataArguments,
        FinetuningArguments,
        GeneratingArguments,
        ModelArguments,
        TrainingArguments,
    )

    flags = _bool_fields((ModelArguments, DataArguments, TrainingArguments, FinetuningArguments, GeneratingArguments))
    return [f"{key}: expected true or false, got {value!r}" for key, value in config.items()
            if key in flags and value is not None and not isinstance(value, bool)]


def sft_token_problems(config: dict[str, Any], frame: DictConfig | None) -> list[str]:
    """``cutoff_len`` must hold the image's tokens and the prompt: LLaMA-Factory truncates the sequence,
    cutting image tokens, and the model then fails ("Image features and image tokens do not match")."""
    max_pixels = frame.max_pixels if frame is not None else config.get("image_max_pixels")
    cutoff = config.get("cutoff_len", 2048)
    if not isinstance(max_pixels, int) or isinstance(cutoff, bool) or not isinstance(cutoff, int):
        return []
    image_tokens = max_pixels // (28 * 28)
    if cutoff < image_tokens + PROMPT_TEXT_TOKENS:
        return [(f"cutoff_len={cutoff} is below an image's up to {image_tokens} tokens (max_pixels={max_pixels}) plus "
                 f"the prompt (~{PROMPT_TEXT_TOKENS}): LLaMA-Factory would cut image tokens and fail at run time; "
                 "raise cutoff_len or lower frame.max_pixels")]
    return []


def sft_dataset_problems(config: dict[str, Any], produced_datasets: dict[str, str] | None = None,
                         notes: list[str] | None = None) -> list[str]:
    """Datasets registered in ``dataset_info.json`` with their files; one an earlier stage of the run
    writes (``produced_datasets``: name -> stage) is noted, not an error, until it exists."""
    produced_datasets = produced_datasets or {}
    problems = []
    info_path = Path(config.get("dataset_dir", "data")) / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else None
    for name in (part.strip() for part in str(config.get("dataset", "")).split(",")):
        if info is not None and name in info and (info_path.parent / info[name]["file_name"]).exists():
            problems += empty_data_problems([str(info_path.parent / info[name]["file_name"])])
            continue
        if name in produced_datasets:
            if notes is not None:
                notes.append(f"dataset {name!r} is produced by {produced_datasets[name]} (not there yet)")
        elif info is None:
            continue  # no data yet: the data stage writes dataset_info.json
        elif name not in info:
            problems.append(f"dataset {name!r} is not in {info_path} (has {sorted(info)})")
        else:
            problems.append(f"dataset {name!r}: {info[name]['file_name']} does not exist")
    return problems


def empty_data_problems(paths: list[str | None]) -> list[str]:
    """Data files that exist but hold no rows (a data build left them empty): refused before launch,
    with the build's reason (data_prep.outputs), instead of failing inside the trainer."""
    problems = []
    for path in paths:
        if path and Path(path).is_file():
            try:
                require_rows(Path(path))
            except EmptyOutputError as error:
                problems.append(str(error))
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
    if not easyr1_installed():
        return []
    from omegaconf import OmegaConf

    try:
        from verl.trainer.config import PPOConfig
    except ImportError as error:
        return [f"EasyR1 (package verl) is installed but does not import: {type(error).__name__}: {error}"]

    try:
        merged = OmegaConf.merge(OmegaConf.structured(PPOConfig()), OmegaConf.create(config))
        OmegaConf.to_object(merged).deep_post_init()
    except Exception as error:  # EasyR1 raises several kinds; any of them is a broken recipe
        return [f"EasyR1 PPOConfig: {type(error).__name__}: {error}"]
    return []


def sft_problems(config: dict[str, Any], frame: DictConfig | None = None, produced_by_earlier_stage=(),
                 produced_datasets: dict[str, str] | None = None, notes: list[str] | None = None) -> list[str]:
    problems = []
    if config.get("stage") not in LLAMAFACTORY_STAGES:
        problems.append(f"stage {config.get('stage')!r} is not a LLaMA-Factory stage {sorted(LLAMAFACTORY_STAGES)}")
    deepspeed = config.get("deepspeed")
    if deepspeed:
        try:
            json.loads(Path(deepspeed).read_text())
        except (OSError, json.JSONDecodeError) as error:
            problems.append(f"deepspeed config {deepspeed}: {error}")
    problems += sft_dataset_problems(config, produced_datasets, notes)
    problems += sft_token_problems(config, frame)
    model = str(config.get("model_name_or_path", ""))
    if model.startswith("/") and not Path(model).exists() and model not in produced_by_earlier_stage:
        problems.append(f"model_name_or_path {model} does not exist")
    if frame is not None:
        problems += frame_problems("image_min_pixels", config.get("image_min_pixels"), "image_max_pixels",
                                   config.get("image_max_pixels"), frame)
    # In a child that sees no GPU (training/llamafactory_parser.py): with several GPUs visible the parser
    # refuses to run outside torchrun, and this process must never hold a CUDA context (nor import
    # LLaMA-Factory: the child also checks the booleans against its argument dataclasses).
    from training.llamafactory_parser import shared

    problems += shared().problems({k: v for k, v in config.items() if v is not None})
    return problems
