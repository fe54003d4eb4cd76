"""Run a model over XrayBench (or any evaluation set in data_prep's test schema) into a predictions file.

Backends: Hugging Face transformers (CPU or one GPU; the demo and tests use it with the tiny model),
vLLM's offline engine (GPUs, tensor parallel), and any model served behind an OpenAI-compatible
endpoint (``backend=endpoint``: vLLM, SGLang, TGI; ``eval.endpoint_backend``), which the paper's
baselines use through their cards (``recipes/eval/models``, ``eval.model_cards``: prompt style,
sampling, answer ``parsing``). Each item's prompt is its task prompt with, by default, the paper's
reasoning-format prompt appended (``reasoning_format``), exactly as in GRPO.
Predictions are appended as they are generated (``eval.predictions``); a rerun skips finished
items, and a run killed at any point resumes with no duplicate and no lost item. Every row records
its ``provenance`` (model, backend, the items file's sha256, sampling, the format prompt): a rerun
into a file another setup produced is refused, and so is a file damaged anywhere but its last line.

    python -m eval.infer model=... items_file=.../test/xraybench.jsonl out=.../predictions.jsonl [backend=vllm|endpoint]
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import hydra
import jinja2
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from data_prep.endpoint import EndpointUnavailable, RemoteEndpointRefused, public_url
from data_prep.outputs import EmptyOutputError, require_rows
from eval.jsonl import JsonlError, read_items
from eval.model_cards import CardError, output_parser
from eval.predictions import (PredictionsFileError, PredictionWriter, extract_answer, read_finished,
                              refuse_if_being_written)
from rewards.frame import VISION_TOKENS
from rewards.settings import ConfigValueError, check_booleans, check_counts, config_bool

# every boolean of recipes/eval/xraybench.yaml
BOOLEANS = ("reasoning_format", "endpoint.allow_remote_endpoint", "parsing.strip_report_header")

ROOT = Path(__file__).resolve().parents[1]


def check_numbers(cfg: DictConfig) -> None:
    """``ConfigValueError`` for a count that is not a positive integer (``limit=-1`` would silently drop
    the last item, ``batch_size=0`` fail deep inside), or a shard outside ``0..shards-1``."""
    check_counts(cfg, {key: 1 for key in ("limit", "batch_size", "shards", "data_parallel", "sampling.max_new_tokens")},
                 optional=("limit",))
    if type(cfg.shard) is not int or not 0 <= cfg.shard < cfg.shards:
        raise ConfigValueError(f"shard must be an integer in 0..{cfg.shards - 1}, got {cfg.shard!r}")


def load_items(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """The evaluation items (``eval.jsonl.read_items``); a bad line, an invalid item or a repeated id
    is an error naming its line: inference never runs on a silently shortened item set."""
    content = read_items(path)
    content.refuse_bad("evaluation items")
    if not content.rows:
        require_rows(path, 0)  # an empty test split: the error names the data build and why
    return content.rows[:limit] if limit else content.rows


def run_provenance(cfg: DictConfig) -> dict[str, Any]:
    """What produces a predictions file; a resume must match it exactly. ``limit``, ``batch_size``
    and the sharding are left out: they choose which items run when, not what an answer is."""
    reasoning_format = config_bool(cfg.reasoning_format, "reasoning_format")
    provenance = {
        "model": str(cfg.model),
        "backend": str(cfg.backend),
        "items_sha256": hashlib.sha256(Path(cfg.items_file).read_bytes()).hexdigest(),
        "sampling": OmegaConf.to_container(cfg.sampling, resolve=True),
        "reasoning_format": reasoning_format,
        "format_prompt_sha256": hashlib.sha256((ROOT / cfg.format_prompt).read_bytes()).hexdigest()
        if reasoning_format else None,
    }
    if cfg.backend == "vllm":  # the image size the engine sees changes the answers
        provenance["vllm"] = {"max_pixels": cfg.vllm.max_pixels, "max_model_len": cfg.vllm.max_model_len}
    if cfg.backend == "endpoint":  # the served model, its system turn and extra sampling change the answers
        endpoint = cfg.endpoint
        provenance["endpoint"] = {
            "model": str(endpoint.model), "base_url": public_url(str(endpoint.base_url)),
            "extra_body": OmegaConf.to_container(endpoint.extra_body, resolve=True) if endpoint.extra_body else None,
        }
        provenance["system_prompt"] = cfg.get("system_prompt") or None
    if cfg.get("parsing"):  # a card's answer parsing changes the scored answer
        provenance["parsing"] = OmegaConf.to_container(cfg.parsing, resolve=True)
    return json.loads(json.dumps(provenance))  # as it reads back from the file


def check_resume(out: Path, provenance: dict[str, Any]) -> None:
    """Refuse to append to ``out`` while another run writes to it, or if a row in it was produced by
    another setup (or records none)."""
    refuse_if_being_written(out)
    for row in read_finished(out):
        recorded = row.get("provenance")
        if recorded == provenance:
            continue
        if not isinstance(recorded, dict):
            why = "it records no provenance (written by another tool or an older eval.infer)"
        else:
            why = "; ".join(f"{key}: {recorded.get(key)!r} in the file, {provenance.get(key)!r} now"
                            for key in sorted(set(recorded) | set(provenance)) if recorded.get(key) != provenance.get(key))
        raise PredictionsFileError(
            f"{out}: will not resume: row {row['id']!r} was produced by a different setup ({why}). Resuming "
            "would keep its answers as this run's. Write to another out=, or delete the file to start over.")


def user_text(item: dict[str, Any], template: jinja2.Template | None) -> str:
    prompt = item["prompt"].replace("<image>", "").strip()
    return template.render(content=prompt).strip() if template is not None else prompt


def prediction_row(item: dict[str, Any], raw_output: str, model: str, parse=None,
                   provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": item["id"],
        "dataset": item.get("source", item.get("dataset")),
        "task": item["task"],
        "question_type": item.get("subtype"),
        "answer_kind": item.get("answer_kind"),
        "reference": item["answer"],
        **(parse(raw_output, item["task"]) if parse else extract_answer(raw_output)),
        "raw_output": raw_output,
        "model": model,
        **({"provenance": provenance} if provenance is not None else {}),
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

    check_booleans(cfg, BOOLEANS)
    check_numbers(cfg)
    parse = output_parser(cfg.get("parsing"))  # a wrong setting fails here, before a model loads
    items_path = Path(cfg.items_file)
    out = shard_path(Path(cfg.out), cfg.shard, cfg.shards)
    image_root = Path(cfg.image_root) if cfg.image_root else items_path.parent.parent
    items = load_items(items_path, cfg.limit)  # ids unique: read_items refuses a repeated one
    items = items[cfg.shard :: cfg.shards]
    provenance = run_provenance(cfg)
    check_resume(out, provenance)  # before anything is cut or loaded
    finished = {row["id"] for row in read_finished(out, repair=True)}
    todo = [item for item in items if item["id"] not in finished]
    missing = [item["images"][0] for item in todo if not (image_root / item["images"][0]).is_file()]
    if missing:  # found now, not hours into the run when the batch holding one is reached
        raise JsonlError(f"{items_path}: {len(missing)} item(s) point at images that are not files under "
                         f"{image_root} (e.g. {missing[:3]}); set image_root= to the folder the items' paths "
                         "are relative to")
    template = None
    if cfg.reasoning_format:
        template = jinja2.Template((ROOT / cfg.format_prompt).read_text(encoding="utf-8").strip())
    if cfg.backend == "endpoint":
        from eval.endpoint_backend import EndpointGenerator

        generator = EndpointGenerator(cfg, out)
    elif cfg.get("system_prompt"):
        raise ConfigValueError("system_prompt is sent by backend=endpoint only")
    else:
        generator = (VLLMGenerator(cfg.model, cfg.sampling, cfg.vllm) if cfg.backend == "vllm"
                     else HFGenerator(cfg.model, cfg.sampling))
    load_image = getattr(generator, "image_input", lambda path: Image.open(path).convert("RGB"))
    failed = 0
    writer = PredictionWriter(out)
    start = time.perf_counter()
    progress = tqdm(total=len(todo), desc="inference", unit="item")
    try:
        for begin in range(0, len(todo), cfg.batch_size):
            batch = todo[begin : begin + cfg.batch_size]
            images = [load_image(image_root / item["images"][0]) for item in batch]
            outputs = generator.generate([user_text(item, template) for item in batch], images)
            failed += sum(output is None for output in outputs)  # an endpoint call that failed: retried next run
            writer.write(prediction_row(item, output, str(cfg.model), parse, provenance)
                         for item, output in zip(batch, outputs) if output is not None)
            progress.update(len(batch))
    finally:
        writer.close()
        progress.close()
    seconds = time.perf_counter() - start
    summary = {"items": len(items), "already_done": len(finished), "generated": len(todo) - failed,
               "seconds": round(seconds, 2),
               "items_per_second": round(len(todo) / seconds, 3) if todo and seconds else None, "out": str(out)}
    if cfg.backend == "endpoint":
        summary.update(failed=failed, requests_sent=generator.requests_sent,
                       errors=sorted(set(generator.errors))[:5])
    return summary


def infer_data_parallel(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """``data_parallel`` engines, each on its own ``vllm.tensor_parallel_size`` GPUs and its own share
    of the items (every n-th); shards resume on their own, then merge into ``out`` in item order."""
    import os
    import subprocess
    import sys

    from data_prep.writers import write_jsonl

    n, per_engine = cfg.data_parallel, cfg.vllm.tensor_parallel_size
    check_booleans(cfg, BOOLEANS)
    check_numbers(cfg)
    items = load_items(Path(cfg.items_file), cfg.limit)  # a missing or damaged items file: its message, before anything
    check_resume(Path(cfg.out), run_provenance(cfg))  # the merge below replaces out: only with the same setup
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
    order = [item["id"] for item in items]
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
    try:
        if cfg.data_parallel > 1:
            from hydra.core.hydra_config import HydraConfig

            overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(("data_parallel=", "shard"))]
            print(json.dumps(infer_data_parallel(cfg, overrides), indent=2))
        else:
            result = infer(cfg)
            print(json.dumps(result, indent=2))
            if result.get("failed"):
                raise SystemExit(f"{result['failed']} items got no reply (errors above); rerun to retry only them")
    except (JsonlError, ConfigValueError, EmptyOutputError, CardError, RemoteEndpointRefused,
            EndpointUnavailable) as error:  # bad input or an endpoint that cannot be used: a message, not a traceback
        raise SystemExit(f"eval.infer: {error}") from None


if __name__ == "__main__":
    main()
