"""EasyR1's real code at the pinned commit, on CPU, over the demo's GRPO data and our rendered recipe.

What a GPU node would do before its first rollout, run here for real: EasyR1 parses the rendered
stage-3 config into its ``PPOConfig``, ``create_dataloader`` builds its ``RLHFDataset`` over the GRPO
parquet files (image loading, ``process_image``, the processor, overlong-prompt filtering), its
``AutoRewardManager`` loads our reward file by path and scores responses, and its FSDP workers'
batch set-up, batch splitting and sequence balancing run for 1, 8 and 16 GPUs (``torch.distributed``
and the device mesh faked: nothing else). vLLM is stubbed (tests/easyr1.py); nothing generates.
The data comes from the project's own fixture generator and data build (``make demo``'s settings).
"""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from data_prep.build import build, load_config
from data_prep.fixtures import generate_releases
from data_prep.fixtures.world import ALL_FINDINGS
from rewards.deepmedix import SCORE_KEYS
from rewards.ground_truth import parse_ground_truth
from rewards.normalize import written_answer
from tests.easyr1 import import_easyr1

EASYR1_MODULES = ("verl.trainer.config", "verl.trainer.data_loader", "verl.utils.dataset", "verl.utils.tokenizer",
                  "verl.protocol", "verl.trainer.metrics", "verl.workers.reward", "verl.workers.fsdp_workers",
                  "verl.trainer.ray_trainer", "verl.utils.seqlen_balancing")
from training import check, tiny_model
from training.render import ROOT, render

pytestmark = pytest.mark.slow  # ~10 s of EasyR1/peft imports and a data build


def compose(config_name: str, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "recipes" / "run"), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def ppo_config(rendered_path: Path, *dotlist: str):
    """The rendered recipe as EasyR1's ``verl.trainer.main`` reads it (``config=<file> key=value``)."""
    from verl.trainer.config import PPOConfig

    merged = OmegaConf.merge(OmegaConf.structured(PPOConfig()), OmegaConf.load(rendered_path),
                             OmegaConf.from_dotlist(list(dotlist)))
    config = OmegaConf.to_object(merged)
    config.deep_post_init()
    return config


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo run's GRPO data (generated releases -> data build), tiny model and rendered stage 3."""
    import_easyr1(*EASYR1_MODULES)
    root = tmp_path_factory.mktemp("easyr1-demo")
    demo_run = compose("demo", f"run_dir={root / 'run'}")
    generate_releases(root / "releases", seed=0, subjects=demo_run.generate_releases,
                      findings=demo_run.generate_findings or ALL_FINDINGS,
                      image_size=demo_run.generate_image_size)
    build(load_config([f"data_root={root / 'releases'}", f"out_dir={root / 'data'}", "images.workers=0",
                       f"frame.min_pixels={demo_run.frame.min_pixels}", f"frame.max_pixels={demo_run.frame.max_pixels}"],
                      config_name=demo_run.data.config_name))
    model = tiny_model.build(root / "tiny", min_pixels=demo_run.frame.min_pixels, max_pixels=demo_run.frame.max_pixels)
    cfg = compose("demo", f"run_dir={root / 'run'}", f"data_dir={root / 'data'}", f"handover.stage2_dir={model}")
    _, rendered = render(cfg, "stage3")
    return {"root": root, "cfg": cfg, "rendered": rendered, "data": root / "data", "model": model}


@pytest.fixture(scope="module")
def easyr1_demo(demo):
    from verl.utils.tokenizer import get_processor, get_tokenizer

    # EasyR1 filters overlong prompts in 16 forked processes by default (GPU nodes); here in-process, which
    # is only a process count (forking after the tokenizer has run threads can hang a 2-core machine)
    config = ppo_config(demo["rendered"], "data.filter_overlong_prompts_workers=1")
    model = config.worker.actor.model
    tokenizer = get_tokenizer(model.model_path, trust_remote_code=model.trust_remote_code, use_fast=True)
    processor = get_processor(model.model_path, trust_remote_code=model.trust_remote_code, use_fast=True)
    return config, tokenizer, processor


def test_easyr1_parses_the_rendered_recipe(demo, easyr1_demo):
    config, _, _ = easyr1_demo
    assert (config.data.min_pixels, config.data.max_pixels) == (demo["cfg"].frame.min_pixels, demo["cfg"].frame.max_pixels)
    assert config.worker.reward.reward_function == str(ROOT / "rewards" / "easyr1_entry.py")
    assert config.worker.reward.reward_function_name == "compute_score"
    assert config.data.format_prompt == str(ROOT / "recipes" / "prompts" / "xray_format.jinja")
    assert config.data.image_dir == str(demo["data"]) and config.worker.rollout.limit_images == 1
    assert check.easyr1_problems(OmegaConf.to_container(OmegaConf.load(demo["rendered"])), demo["cfg"].frame) == []


def test_every_row_loads_in_the_frame_of_its_ground_truth(demo, easyr1_demo):
    from verl.trainer import data_loader
    from verl.trainer.data_loader import create_dataloader
    from verl.utils.dataset import RLHFDataset, process_image

    config, tokenizer, processor = easyr1_demo
    in_process = functools.partial(RLHFDataset, filter_overlong_prompts_workers=1)  # its validation set's 16, too
    with mock.patch.object(data_loader, "RLHFDataset", in_process):
        train_loader, val_loader = create_dataloader(config.data, tokenizer, processor)
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = processor.image_processor.merge_size ** 2
    checked, mismatches, expected = 0, [], 0
    for split, loader in (("train", train_loader), ("val", val_loader)):
        rows = pd.read_parquet(demo["data"] / "grpo" / f"{split}.parquet")
        assert len(loader.dataset) == len(rows) > 0, f"EasyR1 filtered {split} rows"  # no row dropped as overlong
        expected += len(rows)
        for index in range(len(loader.dataset)):
            example = loader.dataset[index]
            frame = parse_ground_truth(example["ground_truth"]).frame
            (path,) = example["multi_modal_data"]["images"]
            image = process_image(path, config.data.min_pixels, config.data.max_pixels)  # as the rollout does
            grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
            tokens = int((example["input_ids"] == image_pad).sum())
            seen = (image.width, image.height, grid[2] * 14, grid[1] * 14, tokens * merge)
            if seen != (frame.width, frame.height, frame.width, frame.height, grid[1] * grid[2]):
                mismatches.append((split, index, path, seen, frame))
            checked += 1
    assert checked == expected and mismatches == []


def test_reward_manager_scores_with_our_reward_and_logs_every_key(demo, easyr1_demo):
    from verl.protocol import DataProto
    from verl.trainer.metrics import reduce_metrics
    from verl.workers.reward import AutoRewardManager

    config, tokenizer, _ = easyr1_demo
    truths = pd.read_parquet(demo["data"] / "grpo" / "val.parquet")["answer"].tolist()
    responses = []
    for raw in truths:
        truth = parse_ground_truth(raw)
        box = f"[{truth.frame.width // 4},{truth.frame.height // 4},{truth.frame.width // 2},{truth.frame.height // 2}]"
        responses.append(f"<think>The region {box} shows it.</think> \\boxed{{{written_answer(truth.answer)}}}")
        responses.append("no idea")
    encoded = [tokenizer.encode(text, add_special_tokens=False) for text in responses]
    width = max(map(len, encoded))
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, tokens in enumerate(encoded):
        ids[row, : len(tokens)], mask[row, : len(tokens)] = torch.tensor(tokens), 1
    batch = DataProto.from_single_dict({"responses": ids, "response_mask": mask,
                                        "ground_truth": np.array([t for t in truths for _ in (0, 1)], dtype=object)})

    manager = AutoRewardManager(config.worker.reward, tokenizer)
    reward_tensor, metrics = manager.compute_reward(batch)

    assert set(metrics) == set(SCORE_KEYS)
    assert all(len(values) == len(responses) and all(math.isfinite(v) for v in values) for values in metrics.values())
    lengths = mask.sum(-1)
    assert torch.allclose(reward_tensor[torch.arange(len(responses)), lengths - 1], torch.tensor(metrics["overall"]))
    logged = {f"reward/{key}": value for key, value in reduce_metrics(metrics).items()}  # as RayPPOTrainer logs them
    assert set(logged) == {f"reward/{key}" for key in SCORE_KEYS}
    good, bad = np.array(metrics["overall"][0::2]), np.array(metrics["overall"][1::2])
    assert (good > bad).all() and max(metrics["invalid_ground_truth"]) == 0.0 and max(metrics["out_of_frame"]) == 0.0


def world_config(root: Path, gpus: int, *overrides: str):
    nodes, per_node = (2, 8) if gpus == 16 else (1, gpus)
    cfg = compose("default", f"run_dir={root / f'world{gpus}'}", f"launch.nnodes={nodes}", f"launch.gpus_per_node={per_node}",
                  *overrides)
    rendered, path = render(cfg, "stage3")
    return rendered, ppo_config(path)


def easyr1_batch_rules(config, world: int) -> None:
    """EasyR1's own checks for ``world`` GPUs: the trainer's, each FSDP worker's, and the even splits."""
    from verl.protocol import DataProto
    from verl.trainer.ray_trainer import RayPPOTrainer
    from verl.utils.seqlen_balancing import get_seqlen_balanced_partitions
    from verl.workers import fsdp_workers

    RayPPOTrainer(config=copy.deepcopy(config), tokenizer=None, processor=None, train_dataloader=[None],
                  val_dataloader=[None], role_worker_mapping={}, resource_pool_manager=None)
    with mock.patch.dict("os.environ", {"WORLD_SIZE": str(world), "RANK": "0", "DISABLE_WORKER_INIT": "1"}), \
            mock.patch.object(fsdp_workers.dist, "is_initialized", return_value=True), \
            mock.patch.object(fsdp_workers.dist, "get_world_size", return_value=world), \
            mock.patch.object(fsdp_workers, "init_device_mesh"), \
            mock.patch("torch.cuda.get_device_name", return_value="NVIDIA H200"):
        worker = fsdp_workers.FSDPWorker(copy.deepcopy(config.worker), role="actor_rollout_ref")
    n = config.worker.rollout.n
    assert worker.config.actor.global_batch_size_per_device == config.worker.actor.global_batch_size * n // world
    prompts = config.data.rollout_batch_size
    DataProto.from_single_dict({"input_ids": torch.zeros(prompts, 4)}).chunk(world)  # generation, split over GPUs
    lengths = [100 + (7 * i) % 50 for i in range(prompts * n)]
    get_seqlen_balanced_partitions(lengths, k_partitions=world, equal_size=True)  # RayPPOTrainer._balance_batch
    DataProto.from_single_dict({"input_ids": torch.zeros(prompts * n, 4)}).chunk(world)  # log-probs, updates


@pytest.mark.parametrize("gpus", [1, 8, 16])
def test_batch_rules_hold_for_the_shipped_recipe(tmp_path, gpus):
    import_easyr1(*EASYR1_MODULES)
    rendered, config = world_config(tmp_path, gpus)
    assert config.trainer.nnodes * config.trainer.n_gpus_per_node == gpus
    easyr1_batch_rules(config, gpus)
    assert check.easyr1_world_problems(rendered) == []


@pytest.mark.parametrize(
    "gpus, override, raised",
    [
        (16, "+overrides.stage3.data.rollout_batch_size=72", AssertionError),  # 72 prompts over 16 GPUs
        (8, "+overrides.stage3.worker.actor.micro_batch_size_per_device_for_update=3", ValueError),
        (8, "+overrides.stage3.worker.actor.fsdp.enable_cpu_offload=true", ValueError),
    ],
)
def test_our_check_refuses_what_easyr1_refuses_on_the_node(tmp_path, gpus, override, raised):
    import_easyr1(*EASYR1_MODULES)
    rendered, config = world_config(tmp_path, gpus, override)
    if "rollout_batch_size" in override:  # keep the trainer's own divisibility rule satisfied
        config.worker.actor.global_batch_size = rendered["worker"]["actor"]["global_batch_size"] = 8
    with pytest.raises(raised):
        easyr1_batch_rules(config, gpus)
    assert check.easyr1_world_problems(rendered) != []


def test_key_schema_is_the_pinned_commits_dataclasses():
    import_easyr1(*EASYR1_MODULES)
    from verl.trainer.config import PPOConfig

    assert check.schema_from_dataclass(PPOConfig) == check.EASYR1_SCHEMA


def test_data_built_in_another_frame_is_named(demo):
    manifest = json.loads((demo["data"] / "manifest.json").read_text())
    assert manifest["config"]["frame"]["max_pixels"] == 12544
    run_frame = compose("default").frame
    assert check.data_frame_problems(demo["data"], run_frame) == [(
        f"the data in {demo['data']} was built with frame.max_pixels=12544, but this run's frame.max_pixels=262144: "
        "rebuild the data with the run's frame (make data) or run with frame.max_pixels=12544")]
