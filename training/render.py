"""Render the stage recipes into the exact trainer configs of a run.

A recipe (``recipes/qwen2_5_vl_7b/*.yaml``) holds the trainer's hyperparameters; the run config
(``recipes/run/default.yaml``) says which model, data and output folders to use and how stages
hand over (stage 2 starts from stage 1's output, GRPO from stage 2's). Rendering fills those in,
applies the run's per-stage overrides, keeps the frame and the reward settings consistent across
stages, and writes ``<run_dir>/configs/<stage>.yaml``: what the trainer actually reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from data_prep.writers import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
SFT_STAGES = ("stage1", "stage2")
SFT_DATASETS = {"stage1": "deepmedix_stage1", "stage2": "deepmedix_cold_start"}


def absolute(path: str | Path) -> str:
    """Recipe paths are relative to the repository; trainers run elsewhere (Ray actors, torchrun)."""
    path = Path(path)
    return str(path if path.is_absolute() else (ROOT / path).resolve())


def model_reference(name: str) -> str:
    """A local checkpoint folder as an absolute path; anything else is a hub id, passed as is."""
    local = Path(absolute(name))
    return str(local) if local.exists() else name


def run_path(cfg: DictConfig, *parts: str) -> Path:
    return Path(absolute(cfg.run_dir)).joinpath(*parts)


def load_recipe(path: str) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(absolute(path)), resolve=True)


def render_sft(cfg: DictConfig, stage: str) -> dict[str, Any]:
    recipe = load_recipe(cfg.recipes[stage])
    base = absolute(cfg.base_model) if cfg.get("tiny_model") else model_reference(cfg.base_model)
    recipe.update({
        "model_name_or_path": base if stage == "stage1" else absolute(cfg.handover.stage1_dir),
        "dataset": SFT_DATASETS[stage],
        "dataset_dir": absolute(cfg.data_dir),
        "output_dir": str(run_path(cfg, stage)),
        "image_max_pixels": cfg.frame.max_pixels,
        "image_min_pixels": cfg.frame.min_pixels,
    })
    if recipe.get("deepspeed"):
        recipe["deepspeed"] = absolute(recipe["deepspeed"])
    recipe.update(OmegaConf.to_container(cfg.overrides[stage], resolve=True))
    return {key: value for key, value in recipe.items() if value is not None}


def render_grpo(cfg: DictConfig) -> dict[str, Any]:
    recipe = OmegaConf.create(load_recipe(cfg.recipes.stage3))
    data_dir = absolute(cfg.data_dir)
    filled = {
        "data": {
            "train_files": f"{data_dir}/grpo/train.parquet",
            "val_files": f"{data_dir}/grpo/val.parquet",
            "image_dir": data_dir,
            "format_prompt": absolute(recipe.data.format_prompt),
            "max_pixels": cfg.frame.max_pixels,
            "min_pixels": cfg.frame.min_pixels,
        },
        "worker": {
            "actor": {"model": {"model_path": absolute(cfg.handover.stage2_dir)}},
            "reward": {
                "reward_function": absolute(recipe.worker.reward.reward_function.split(":")[0])
                + ":" + recipe.worker.reward.reward_function.split(":")[1],
                "reward_function_kwargs": OmegaConf.to_container(cfg.reward, resolve=True),
            },
        },
        "trainer": {
            "experiment_name": cfg.run_name,
            "save_checkpoint_path": str(run_path(cfg, "stage3")),
            "nnodes": cfg.launch.nnodes,
            "n_gpus_per_node": cfg.launch.gpus_per_node,
        },
    }
    # Resolved first: an override may interpolate run keys (the demo's ${seed}) the recipe lacks.
    merged = OmegaConf.merge(recipe, filled, OmegaConf.to_container(cfg.overrides.stage3, resolve=True))
    return OmegaConf.to_container(merged, resolve=True)


def render(cfg: DictConfig, stage: str) -> tuple[dict[str, Any], Path]:
    """The rendered trainer config of ``stage`` and where it was written."""
    config = render_grpo(cfg) if stage == "stage3" else render_sft(cfg, stage)
    path = run_path(cfg, "configs", f"{stage}.yaml")
    atomic_write_bytes(path, OmegaConf.to_yaml(OmegaConf.create(config), sort_keys=False).encode("utf-8"))
    return config, path
