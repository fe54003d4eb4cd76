"""The TRL adapter drives TRL's real GRPOTrainer: two optimisation steps on a tiny random model."""

import pytest

from rewards.frame import Frame
from rewards.ground_truth import encode_ground_truth
from rewards.trl_adapter import make_trl_reward

pytestmark = pytest.mark.slow

CORPUS = [
    "<think> The heart [10, 20, 100, 120] is normal. </think> The answer is: \\boxed{yes}",
    "No pleural effusion or pneumothorax. The lungs are clear. Mild cardiomegaly.",
    "Is there a pleural effusion? Which lung is affected? left lung, right lung",
] * 20


def tiny_causal_lm():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                        model_input_names=["input_ids", "attention_mask"])
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return Qwen2ForCausalLM(config), tokenizer


def test_two_grpo_steps_with_our_reward(tmp_path):
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    model, tokenizer = tiny_causal_lm()
    frame = Frame(448, 448)
    dataset = Dataset.from_list([
        {"prompt": "Is there a pleural effusion?", "answer": encode_ground_truth("closed", "no", frame)},
        {"prompt": "Which lungs are clear?", "answer": encode_ground_truth("multi_object", ["left lung"], frame)},
        {"prompt": "Describe the findings.", "answer": encode_ground_truth("open_ended", CORPUS[1], frame)},
        {"prompt": "Is the heart enlarged?", "answer": "yes"},  # upstream-style plain answer
    ])
    calls = []
    reward = make_trl_reward(format_weight=0.1)

    def deepmedix_r1(prompts, completions, **columns):
        scores = reward(prompts=prompts, completions=completions, **columns)
        calls.append(scores)
        return scores

    args = GRPOConfig(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, num_generations=2,
        max_prompt_length=32, max_completion_length=12, learning_rate=1e-2, logging_steps=1,
        report_to=[], save_strategy="no", use_cpu=True, bf16=False, seed=0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[deepmedix_r1], args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer.train()

    assert trainer.state.global_step == 2
    assert len(calls) == 2 and all(len(scores) == 2 for scores in calls)  # one prompt x 2 generations a step
    logged = [e["rewards/deepmedix_r1/mean"] for e in trainer.state.log_history if "rewards/deepmedix_r1/mean" in e]
    assert logged == pytest.approx([sum(scores) / 2 for scores in calls])  # TRL logged our scores
