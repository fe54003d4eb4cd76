"""The stage-3 objective is the paper's eq. 2 where EasyR1 can express it, and TRL mirrors it.

EasyR1's config module needs Ray and vLLM, which CPU machines lack; where ``verl`` is installed
its real ``PPOConfig`` takes the rendered recipe. Elsewhere the vendored source's real ``ActorConfig``
dataclass (loaded by path) takes the recipe's actor section, and EasyR1's real policy loss
(``core_algos``, which imports on CPU) is run on random tensors against eq. 2 written out by hand.
"""

import importlib.util
import math
import sys
import types

import pytest

from training.check import easyr1_native_problems
from training.grpo_trl import (
    EASYR1_RATIO_CAP,
    objective_arguments,
    optimizer_arguments,
    refuse_what_trl_cannot_run,
    trl_arguments,
)
from training.render import ROOT, render

EASYR1 = ROOT.parent / "shared" / "vendor" / "easyr1-b44b311"


@pytest.fixture
def stage3(compose_run, tmp_path):
    return render(compose_run("default", f"run_dir={tmp_path}"), "stage3")[0]


def test_recipe_sets_eq2_symmetric_clip_per_response_averaging_no_dual_clip(stage3):
    actor, algorithm = stage3["worker"]["actor"], stage3["algorithm"]
    assert actor["clip_ratio_low"] == actor["clip_ratio_high"] == 0.2
    assert actor["clip_ratio_dual"] > EASYR1_RATIO_CAP  # never binds
    assert actor["loss_avg_mode"] == "seq" and actor["loss_type"] == "default" and actor["ppo_epochs"] == 1
    assert algorithm["use_kl_loss"] and not algorithm["disable_kl"] and algorithm["kl_penalty"] == "low_var_kl"
    recipe = (ROOT / "recipes" / "qwen2_5_vl_7b" / "stage3_grpo.yaml").read_text()
    assert "KL term to the stage-2 model (paper)" not in recipe  # the reference model is not the paper's word
    assert "usually the" in recipe and "frozen base model" in recipe


def vendored_actor_config():
    """EasyR1's real ``ActorConfig`` dataclass: its module imports only the standard library, so it
    loads by path on CPU without the ``verl`` package (whose config module needs Ray and vLLM)."""
    path = EASYR1 / "verl" / "workers" / "actor" / "config.py"
    spec = importlib.util.spec_from_file_location("easyr1_actor_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ActorConfig


@pytest.mark.skipif(not EASYR1.is_dir(), reason=f"vendored EasyR1 not at {EASYR1}")
def test_easyr1_actor_config_accepts_the_rendered_actor_section(stage3):
    from omegaconf import OmegaConf

    actor_config = vendored_actor_config()
    defaults = actor_config()
    # EasyR1's defaults are the ones the issue names; the recipe overrides each of them.
    assert (defaults.clip_ratio_low, defaults.clip_ratio_high, defaults.clip_ratio_dual) == (0.2, 0.3, 3.0)
    assert defaults.loss_avg_mode == "token"
    merged = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(defaults), stage3["worker"]["actor"]))
    assert isinstance(merged, actor_config)  # unknown keys or wrong types would have raised
    assert (merged.clip_ratio_low, merged.clip_ratio_high, merged.loss_avg_mode) == (0.2, 0.2, "seq")
    assert merged.clip_ratio_dual == 1e10 and merged.loss_type == "default"
    core = (EASYR1 / "verl" / "trainer" / "core_algos.py").read_text()
    assert 'mode == "seq"' in core and "torch.clamp(log_importance_ratio, -20.0, 20.0)" in core


def test_a_key_easyr1_does_not_know_is_rejected_by_its_dataclass():
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError

    if not EASYR1.is_dir():
        pytest.skip(f"vendored EasyR1 not at {EASYR1}")
    with pytest.raises(ConfigKeyError):
        OmegaConf.merge(OmegaConf.structured(vendored_actor_config()()), {"loss_agg_mode": "seq-mean-token-mean"})


@pytest.mark.skipif(importlib.util.find_spec("verl") is None, reason="EasyR1 (verl) is not installed (GPU nodes only)")
def test_easyr1_ppo_config_accepts_the_rendered_recipe(stage3):
    assert easyr1_native_problems(stage3) == []


@pytest.fixture
def easyr1_core_algos(monkeypatch):
    """EasyR1's real core_algos: the installed one, else the vendored source (``codetiming``, a timing
    helper its package ``__init__`` imports, stubbed when absent)."""
    yield from vendored_verl(monkeypatch, "verl.trainer.core_algos")


@pytest.fixture
def easyr1_torch_functional(monkeypatch):
    """EasyR1's real learning-rate schedules (``verl.utils.torch_functional``), found as above."""
    yield from vendored_verl(monkeypatch, "verl.utils.torch_functional")


def vendored_verl(monkeypatch, module_name):
    pytest.importorskip("torch")
    if importlib.util.find_spec("verl") is None:
        if not EASYR1.is_dir():
            pytest.skip(f"neither verl nor the vendored EasyR1 at {EASYR1}")
        if importlib.util.find_spec("codetiming") is None:
            stub = types.ModuleType("codetiming")
            stub.Timer = type("Timer", (), {})
            monkeypatch.setitem(sys.modules, "codetiming", stub)
        monkeypatch.syspath_prepend(str(EASYR1))
    before = set(sys.modules)
    yield importlib.import_module(module_name)
    for name in set(sys.modules) - before:  # leave no vendored verl behind for other tests
        if name == "verl" or name.startswith("verl."):
            del sys.modules[name]


def eq2_loss(log_probs, old_log_probs, advantages, mask, epsilon):
    """-(paper eq. 2 without the KL term): 1/G sum_i 1/|o_i| sum_t min(r A, clip(r, 1-eps, 1+eps) A)."""
    import torch

    ratio = torch.exp(log_probs - old_log_probs)
    surrogate = torch.minimum(ratio * advantages, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * advantages)
    return -((surrogate * mask).sum(-1) / mask.sum(-1)).mean()


def test_easyr1_policy_loss_with_recipe_settings_is_eq2(easyr1_core_algos, stage3):
    import torch

    generator = torch.Generator().manual_seed(0)
    responses, length = 6, 12
    old = -torch.rand(responses, length, generator=generator) * 3
    new = old + torch.randn(responses, length, generator=generator) * 1.5  # ratios far outside the clip
    new[0, 0] = old[0, 0] + math.log(5.0)  # ratio 5 > 3 with a negative advantage: where dual clip binds
    advantages = torch.randn(responses, 1, generator=generator).expand(responses, length).clone()
    advantages[0] = -1.0
    mask = torch.ones(responses, length)
    for row, kept in enumerate((12, 3, 7, 12, 1, 9)):  # responses of different lengths
        mask[row, kept:] = 0
    actor = stage3["worker"]["actor"]

    def easyr1(**settings):
        loss, _ = easyr1_core_algos.compute_policy_loss(
            old_log_probs=old, log_probs=new, advantages=advantages, response_mask=mask,
            tau_positive=1.0, tau_negative=1.05, **settings)
        return float(loss)

    ours = {key: actor[key] for key in ("clip_ratio_low", "clip_ratio_high", "clip_ratio_dual", "loss_type",
                                        "loss_avg_mode")}
    expected = float(eq2_loss(new, old, advantages, mask, actor["clip_ratio_low"]))
    assert easyr1(**ours) == pytest.approx(expected, rel=1e-6)
    # EasyR1's defaults are a different objective on the same batch (so this test can fail).
    defaults = {"clip_ratio_low": 0.2, "clip_ratio_high": 0.3, "clip_ratio_dual": 3.0, "loss_type": "default",
                "loss_avg_mode": "token"}
    assert easyr1(**defaults) != pytest.approx(expected, rel=1e-3)
    assert easyr1(**{**ours, "clip_ratio_dual": 3.0}) != pytest.approx(expected, rel=1e-6)
    assert easyr1(**{**ours, "loss_avg_mode": "token"}) != pytest.approx(expected, rel=1e-3)


def test_trl_backend_mirrors_the_objective(stage3, tmp_path):
    from trl import GRPOConfig

    arguments = trl_arguments(stage3, str(tmp_path / "out"), use_bf16=False, use_gpu=False)
    assert arguments["loss_type"] == "grpo"  # TRL's per-response normalisation: eq. 2's 1/|o_i|
    assert arguments["epsilon"] == arguments["epsilon_high"] == 0.2
    assert arguments["importance_sampling_level"] == "token" and arguments["num_iterations"] == 1
    assert arguments["beta"] == stage3["algorithm"]["kl_coef"]
    config = GRPOConfig(**arguments)  # TRL accepts them
    assert (config.loss_type, config.epsilon, config.epsilon_high) == ("grpo", 0.2, 0.2)


@pytest.mark.parametrize("setting, message", [
    ({"clip_ratio_dual": 3.0}, "dual clip"),
    ({"loss_type": "cispo"}, "no TRL 0.24 equivalent"),
    ({"loss_avg_mode": "sum"}, "loss_avg_mode"),
])
def test_trl_backend_refuses_what_it_cannot_express(setting, message):
    with pytest.raises(ValueError, match=message):
        objective_arguments({"clip_ratio_dual": 1e10, **setting})


def test_trl_backend_maps_easyr1_token_averaging_and_asymmetric_clip():
    mapped = objective_arguments({"clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "clip_ratio_dual": 1e10,
                                  "loss_avg_mode": "token", "loss_type": "gspo", "ppo_epochs": 2})
    assert mapped == {"epsilon": 0.2, "epsilon_high": 0.28, "loss_type": "dapo",
                      "importance_sampling_level": "sequence", "num_iterations": 2}


@pytest.mark.parametrize("optim", [
    {"lr": 1e-3},  # EasyR1's defaults: constant, no warm-up, weight decay 1e-2
    {"lr": 1e-3, "lr_warmup_ratio": 0.15, "weight_decay": 0.0, "betas": [0.9, 0.95]},
    {"lr": 1e-3, "lr_scheduler_type": "cosine", "lr_warmup_steps": 3, "min_lr_ratio": 0.1},
    {"lr": 1e-3, "lr_scheduler_type": "cosine", "lr_warmup_ratio": 0.1},
], ids=["defaults", "constant-warmup", "cosine-min", "cosine"])
def test_trl_backend_runs_easyr1s_learning_rate_schedule(easyr1_torch_functional, optim, tmp_path):
    """Every step's learning rate under TRL's trainer equals EasyR1's (its real scheduler functions),
    and the optimiser's settings are EasyR1's: TRL's own default (linear decay to 0) halves the mean."""
    import torch
    from transformers import get_scheduler
    from trl import GRPOConfig

    steps = 20
    config = GRPOConfig(output_dir=str(tmp_path), max_steps=steps, use_cpu=True, report_to=[],
                        **optimizer_arguments(optim, steps))
    assert (config.weight_decay, config.adam_beta1, config.adam_beta2) == (
        optim.get("weight_decay", 1e-2), *optim.get("betas", (0.9, 0.999)))

    def rates(make):
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=optim["lr"])
        schedule, seen = make(optimizer), []
        for _ in range(steps):
            seen.append(schedule.get_last_lr()[0])
            optimizer.step()
            schedule.step()
        return seen

    trl = rates(lambda optimizer: get_scheduler(  # as transformers' Trainer.create_scheduler builds it
        config.lr_scheduler_type, optimizer, num_warmup_steps=config.get_warmup_steps(steps),
        num_training_steps=steps, scheduler_specific_kwargs=config.lr_scheduler_kwargs))
    warmup = optim.get("lr_warmup_steps", int(optim.get("lr_warmup_ratio", 0.0) * steps))  # fsdp_workers.py
    if optim.get("lr_scheduler_type", "constant") == "constant":
        easyr1 = rates(lambda optimizer: easyr1_torch_functional.get_constant_schedule_with_warmup(
            optimizer, num_warmup_steps=warmup))
    else:
        easyr1 = rates(lambda optimizer: easyr1_torch_functional.get_cosine_schedule_with_warmup(
            optimizer, num_warmup_steps=warmup, num_training_steps=steps, min_lr_ratio=optim.get("min_lr_ratio")))
    assert trl == pytest.approx(easyr1, rel=1e-9, abs=1e-12)
    assert max(easyr1) == pytest.approx(optim["lr"])


@pytest.mark.parametrize("setting, message", [
    ({"strategy": "adamw_bf16"}, "AdamW only"), ({"lr_scheduler_type": "linear"}, "constant and cosine")])
def test_trl_backend_refuses_an_optimiser_it_cannot_run(setting, message):
    with pytest.raises(ValueError, match=message):
        optimizer_arguments(setting, 10)


@pytest.mark.parametrize("path, value, message", [
    ("algorithm.adv_estimator", "rloo", "adv_estimator='rloo'"),
    ("algorithm.kl_penalty", "kl", "kl_penalty='kl'"),
    ("algorithm.online_filtering", True, "online_filtering"),
    ("worker.actor.model.lora.rank", 8, "lora.rank"),
])
def test_trl_backend_refuses_recipe_settings_it_has_no_mapping_for(stage3, path, value, message):
    """The rendered stage-3 recipe runs; each setting that would change what is learned, and that
    TRL cannot run, stops the backend before any model loads (it was silently ignored before)."""
    import copy

    refuse_what_trl_cannot_run(stage3)
    changed = copy.deepcopy(stage3)
    *parents, key = path.split(".")
    section = changed
    for name in parents:
        section = section.setdefault(name, {})
    section[key] = value
    with pytest.raises(ValueError, match=message):
        refuse_what_trl_cannot_run(changed)


def test_trl_backend_maps_easyr1s_top_k(stage3, tmp_path):
    assert trl_arguments(stage3, str(tmp_path), use_bf16=False, use_gpu=False)["top_k"] is None  # EasyR1: -1, off
    stage3["worker"]["rollout"]["top_k"] = 20
    assert trl_arguments(stage3, str(tmp_path), use_bf16=False, use_gpu=False)["top_k"] == 20
