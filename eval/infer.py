"""Run a model over XrayBench (or any evaluation set in data_prep's test schema) into a predictions file.

Backends: Hugging Face transformers (CPU or one GPU; the demo and tests use it with the tiny model)
and vLLM's offline engine (GPUs, tensor parallel). Each item's prompt is its task prompt with, by
default, the paper's reasoning-format prompt appended (``reasoning_format``), exactly as in GRPO.
Predictions are appended as they are generated (``eval.predictions``); a rerun skips finished
items, and a run killed at any point resumes with no duplicate and no lost item.

    python -m eval.infer model=... items_file=.../test/xraybench.jsonl out=.../predictions.jsonl [backend=vllm]
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hydra
import jinja2
from omegaconf import DictConfig
from tqdm import tqdm

from eval.predictions import PredictionWriter, extract_answer, read_finished
from rewards.frame import VISION_TOKENS

ROOT = Path(__file__).resolve().parents[1]


def load_items(path: Path, limit: int | None) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return items[:limit] if limit else items


def user_text(item: dict[str, Any], template: jinja2.Template | None) -> str:
    prompt = item["prompt"].replace("<image>", "").strip()
    return template.render(content=prompt).strip() if template is not None else prompt


def prediction_row(item: dict[str, Any], raw_output: str, model: str) -> dict[str, Any]:
    return {
        "id": item["id"],
        "dataset": item.get("source", item.get("dataset")),
        "task": item["task"],
        "question_type": item.get("subtype"),
        "answer_kind": item.get("answer_kind"),
        "reference": item["answer"],
        **extract_answer(raw_output),
        "raw_output": raw_output,
        "model": model,
    }


class HFGenerator:
    """transformers generation, one batch at a time (left padding)."""

    def __init__(self, model: str, sampling: DictConfig):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.torch = torch
        use_gpu = torch.cuda.is_available()
        self.processor = AutoProcessor.from_pretrained(model)
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(
            model, dtype=torch.bfloat16 if use_gpu else torch.float32).to("cuda" if use_gpu else "cpu").eval()
        self.sampling = sampling
        ids = self.processor.tokenizer.convert_tokens_to_ids(list(VISION_TOKENS))
        self.suppress = [i for i in ids if i is not None]

    def inputs(self, texts: list[str], images: list):
        """What the model is fed: the chat template with one image before the text, as the SFT stages
        train it (tests/eval/test_infer_matches_training.py checks it against LLaMA-Factory)."""
        conversations = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
                         for text in texts]
        prompts = [self.processor.apply_chat_template(c, add_generation_prompt=True) for c in conversations]
        return self.processor(text=prompts, images=images, return_tensors="pt", padding=True)

    def generate(self, texts: list[str], images: list) -> list[str]:
        inputs = self.inputs(texts, images).to(self.model.device)
        sample = self.sampling.temperature > 0
        self.torch.manual_seed(self.sampling.seed)
        with self.torch.no_grad():
            output = self.model.generate(
                **inputs, max_new_tokens=self.sampling.max_new_tokens, do_sample=sample,
                temperature=self.sampling.temperature if sample else None,
                top_p=self.sampling.top_p if sample else None, suppress_tokens=self.suppress,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)


class VLLMGenerator:
    """vLLM's offline engine (GPUs); images go in as multi-modal data at their frame size."""

    def __init__(self, model: str, sampling: DictConfig, settings: DictConfig):
        from transformers import AutoProcessor
        from vllm import LLM, SamplingParams

        self.processor = AutoProcessor.from_pretrained(model)
        self.engine = LLM(model=model, tensor_parallel_size=settings.tensor_parallel_size,
                          gpu_memory_utilization=settings.gpu_memory_utilization,
                          max_model_len=settings.max_model_len, limit_mm_per_prompt={"image": 1},
                          mm_processor_kwargs={"max_pixels": settings.max_pixels}, seed=sampling.seed)
        self.parameters = SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p,
                                         max_tokens=sampling.max_new_tokens, seed=sampling.seed)

    def generate(self, texts: list[str], images: list) -> list[str]:
        requests = []
        for text, image in zip(texts, images):
            conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
            prompt = self.processor.apply_chat_template(conversation, add_generation_prompt=True)
            requests.append({"prompt": prompt, "multi_modal_data": {"image": image}})
        return [output.outputs[0].text for output in self.engine.generate(requests, self.parameters)]


def shard_path(out: Path, shard: int, shards: int) -> Path:
    return out if shards == 1 else out.with_name(f"{out.name}.shard{shard}-of-{shards}")


def infer(cfg: DictConfig) -> dict[str, Any]:
    from PIL import Image

    items_path = Path(cfg.items_file)
    out = shard_path(Path(cfg.out), cfg.shard, cfg.shards)
    image_root = Path(cfg.image_root) if cfg.image_root else items_path.parent.parent
    items = load_items(items_path, cfg.limit)
    ids = [item["id"] for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{items_path}: item ids are not unique")
    items = items[cfg.shard :: cfg.shards]
    finished = {row["id"] for row in read_finished(out, repair=True)}
    todo = [item for item in items if item["id"] not in finished]
    template = None
    if cfg.reasoning_format:
        template = jinja2.Template((ROOT / cfg.format_prompt).read_text(encoding="utf-8").strip())
    generator = (VLLMGenerator(cfg.model, cfg.sampling, cfg.vllm) if cfg.backend == "vllm"
                 else HFGenerator(cfg.model, cfg.sampling))
    writer = PredictionWriter(out)
    start = time.perf_counter()
    progress = tqdm(total=len(todo), desc="inference", unit="item")
    try:
        for begin in range(0, len(todo), cfg.batch_size):
            batch = todo[begin : begin + cfg.batch_size]
            images = [Image.open(image_root / item["images"][0]).convert("RGB") for item in batch]
            outputs = generator.generate([user_text(item, template) for item in batch], images)
            writer.write(prediction_row(item, output, str(cfg.model)) for item, output in zip(batch, outputs))
            progress.update(len(batch))
    finally:
        writer.close()
        progress.close()
    seconds = time.perf_counter() - start
    return {"items": len(items), "already_done": len(finished), "generated": len(todo), "seconds": round(seconds, 2),
            "items_per_second": round(len(todo) / seconds, 3) if todo and seconds else None, "out": str(out)}


def infer_data_parallel(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """``data_parallel`` engines, each on its own ``vllm.tensor_parallel_size`` GPUs and its own share
    of the items (every n-th); shards resume on their own, then merge into ``out`` in item order."""
    import os
    import subprocess
    import sys

    from data_prep.writers import write_jsonl

    n, per_engine = cfg.data_parallel, cfg.vllm.tensor_parallel_size
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(_gpu_count())]
    processes = []
    for shard in range(n):
        env = dict(os.environ)
        if gpus:
            group = gpus[shard * per_engine : (shard + 1) * per_engine]
            if len(group) < per_engine:
                raise ValueError(f"data_parallel={n} x tensor_parallel_size={per_engine} needs more GPUs than {gpus}")
            env["CUDA_VISIBLE_DEVICES"] = ",".join(group)
        command = [sys.executable, "-m", "eval.infer", *overrides, "data_parallel=1", f"shard={shard}", f"shards={n}"]
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env))
    failed = [shard for shard, process in enumerate(processes) if process.wait() != 0]
    if failed:
        raise RuntimeError(f"inference shards {failed} failed; rerun to resume them")
    by_id = {row["id"]: row for shard in range(n) for row in read_finished(shard_path(Path(cfg.out), shard, n))}
    order = [item["id"] for item in load_items(Path(cfg.items_file), cfg.limit)]
    write_jsonl(Path(cfg.out), [by_id[item_id] for item_id in order if item_id in by_id])
    return {"items": len(order), "written": len(by_id), "engines": n, "out": str(cfg.out)}


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


@hydra.main(config_path=str(ROOT / "recipes" / "eval"), config_name="xraybench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.data_parallel > 1:
        from hydra.core.hydra_config import HydraConfig

        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(("data_parallel=", "shard"))]
        print(json.dumps(infer_data_parallel(cfg, overrides), indent=2))
    else:
        print(json.dumps(infer(cfg), indent=2))


if __name__ == "__main__":
    main()
