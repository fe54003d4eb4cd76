"""A tiny, randomly initialised Qwen2.5-VL that the real trainers accept, built offline in seconds.

The demo and the tests run LLaMA-Factory and TRL for real on CPU, and model weights cannot be
downloaded here, so we build the smallest model with Qwen2.5-VL's exact architecture and
interfaces: the same config classes (text + vision tower + merger, M-RoPE), a byte-level BPE
tokenizer with Qwen's special tokens trained on report-like text, a Qwen2-VL chat template, and
``Qwen2_5_VLProcessor`` with the real image and video processors. It is saved with
``save_pretrained`` and loads with ``from_pretrained`` like any checkpoint. Its image processor
caps images at ``max_pixels`` (112 x 112 by default), so the demo's data build must use the same
``frame.max_pixels`` for boxes to land in the frame the model sees.

    python -m training.tiny_model outputs/demo/tiny-qwen2.5-vl
"""

from __future__ import annotations

import argparse
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
]

# Qwen2-VL's conversation layout, written for content given as a string or as typed parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "The heart size is normal. The lungs are clear. There is no pleural effusion or pneumothorax.",
    "Small left pleural effusion with adjacent atelectasis. Mild cardiomegaly. No acute osseous abnormality.",
    "Please act as an experienced radiologist and generate the FINDINGS section of an X-ray report.",
    "Is there evidence of pneumonia in the right lower lobe? Answer with a single word or phrase. yes no",
    "<think> The region [10, 20, 100, 120] shows an opacity. </think> The answer is: \\boxed{yes}",
    "Locate the finding in this chest X-ray. Answer with its bounding box [x_min, y_min, x_max, y_max].",
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer.",
    "left lung, right lung, cardiac silhouette, mediastinum, costophrenic angle, none, postero-anterior",
    "0 1 2 3 4 5 6 7 8 9 10 28 56 84 112 [ ] , . : ; ( ) { } < > / \\",
]


def demo_corpus() -> list[str]:
    """The language of the bundled generated releases (every finding sentence the world writes,
    its normal sentences, the task and format prompts), so that a small vocabulary still holds
    the demo's words whole and a report is tens of tokens, not hundreds of bytes."""
    import random

    import yaml

    from data_prep.fixtures import world

    root = Path(__file__).resolve().parents[1]
    lines = [sentence for sentence, _, _ in world.NEGATIVE_SENTENCES]
    lines += [sentence for sentence, _ in world.NORMAL_IMPRESSIONS]
    rnd = random.Random(0)
    for label in world.SECONDARY_LABELS:
        for side in ("left", "right", "bilateral", None):
            for level in world.LEVELS:
                for uncertain in (False, True):
                    lines += world.finding_text(rnd, world.Finding(label, side, level, uncertain))
    prompts = yaml.safe_load((root / "recipes" / "data" / "prompts.yaml").read_text(encoding="utf-8"))
    lines += [str(text) for text in prompts.values()]
    lines.append((root / "recipes" / "prompts" / "xray_format.jinja").read_text(encoding="utf-8"))
    # Short answers as the assistant turn starts them (no leading space): "yes" is one token, as in
    # Qwen's vocabulary, so the answer is one decision, not a first letter whose completion is free.
    lines += ["yes", "no", "Yes", "No"] * 64
    # Box coordinates in a small frame: every integer one token, so a box is 9 tokens, not ~20.
    lines += [", ".join(str(n) for n in range(start, start + 16)) for start in range(0, 256, 16)] * 8
    return [line for line in lines if line]


def build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator((CORPUS + demo_corpus()) * 4, trainer)
    return Qwen2TokenizerFast(
        tokenizer_object=bpe,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        chat_template=CHAT_TEMPLATE,
        model_input_names=["input_ids", "attention_mask"],
    )


# The weights' initial standard deviation. Qwen's 0.02 suits a hidden size in the thousands; at 64
# it leaves attention near uniform and image features tiny, and the model sat at the class prior
# for 1,000-1,400 steps on presence questions before it began to look (probe: 4 findings, lr 1e-3,
# batch 16). At 0.1 (~1/sqrt(hidden)) it answered 96% of held-out images by step 300.
INITIALIZER_RANGE = 0.1


def build(out_dir: Path, seed: int = 0, vocab_size: int = 1024, min_pixels: int = 3136, max_pixels: int = 12544,
          initializer_range: float = INITIALIZER_RANGE) -> Path:
    """Write the tiny model, tokenizer and processor to ``out_dir``; returns it."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tokenizer = build_tokenizer(vocab_size)
    token_id = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},  # sums to head_dim / 2
            "tie_word_embeddings": True, "initializer_range": initializer_range,
        },
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
            "fullatt_block_indexes": [1], "initializer_range": initializer_range,
        },
        initializer_range=initializer_range,
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        eos_token_id=token_id("<|im_end|>"),
        pad_token_id=token_id("<|endoftext|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = token_id("<|im_end|>")
    model.generation_config.pad_token_id = token_id("<|endoftext|>")
    image_processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels, patch_size=14,
                                            merge_size=2, temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(min_pixels=min_pixels, max_pixels=max_pixels, patch_size=14,
                                            merge_size=2, temporal_patch_size=2)
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                    video_processor=video_processor, chat_template=CHAT_TEMPLATE)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-pixels", type=int, default=12544)
    args = parser.parse_args(argv)
    build(args.out_dir, seed=args.seed, max_pixels=args.max_pixels)
    print(f"tiny Qwen2.5-VL written to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
