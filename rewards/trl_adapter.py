"""The DeepMedix-R1 reward as a TRL reward function, for TRL's ``GRPOTrainer``.

TRL calls each reward function as ``fn(prompts=..., completions=..., completion_ids=...,
**columns)`` with every other dataset column passed by name, and expects one float per
completion. Our GRPO datasets keep the ground-truth JSON in the ``answer`` column (EasyR1's default
answer key), so the same data and the same reward drive both trainers::

    reward = make_trl_reward(format_weight=0.1)
    GRPOTrainer(model=..., reward_funcs=[reward], train_dataset=dataset, ...)
"""

from __future__ import annotations

from typing import Any, Callable

from rewards.deepmedix import RewardConfig, score_batch


def completion_text(completion: Any) -> str:
    """Text of a TRL completion: a string, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        parts = []
        for message in completion:
            content = message.get("content", "") if isinstance(message, dict) else message
            if isinstance(content, list):  # multimodal content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(content if isinstance(content, str) else "")
        return "".join(parts)
    return ""


def make_trl_reward(ground_truth_column: str = "answer", **reward_kwargs: Any) -> Callable[..., list[float]]:
    """A TRL reward function returning ``overall`` per completion; kwargs as for EasyR1."""
    config = RewardConfig.from_kwargs(reward_kwargs)
    extras = config.components()

    def deepmedix_r1(prompts: list, completions: list, **columns: Any) -> list[float]:
        if ground_truth_column not in columns:
            raise KeyError(
                f"the GRPO dataset has no column {ground_truth_column!r} (columns seen: {sorted(columns)}); "
                "pass ground_truth_column= to make_trl_reward"
            )
        texts = [completion_text(completion) for completion in completions]
        return [scores["overall"] for scores in score_batch(texts, list(columns[ground_truth_column]), config, extras)]

    return deepmedix_r1


def easyr1_reward_as_trl(
    function: Callable[..., list[dict[str, float]]], ground_truth_column: str = "answer", **kwargs: Any
) -> Callable[..., list[float]]:
    """Any EasyR1 batch reward function (``fn(reward_inputs, **kwargs) -> [{"overall": ...}]``) as a
    TRL reward function, so a recipe's ``worker.reward.reward_function`` drives both trainers."""

    def easyr1_reward(prompts: list, completions: list, completion_ids: list | None = None, **columns: Any):
        texts = [completion_text(completion) for completion in completions]
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [0] * len(texts)
        inputs = [
            {"response": text, "response_length": length, "ground_truth": truth}
            for text, length, truth in zip(texts, lengths, columns[ground_truth_column], strict=True)
        ]
        return [float(scores["overall"]) for scores in function(inputs, **kwargs)]

    easyr1_reward.__name__ = getattr(function, "__name__", "easyr1_reward")
    return easyr1_reward
