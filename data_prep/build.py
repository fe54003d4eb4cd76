"""Build every dataset of the pipeline from the releases: ``make data`` / ``python -m data_prep.build``.

1. Parse each release present under ``data_root`` (one module per source) into ``Sample`` rows.
2. Verify and size every image in the model's frame, writing it once at that size (``images``).
3. Draw the evaluation set (XrayBench), then the GRPO train/validation sets and the stage-1 mixture
   from the remaining patients only.
4. Write the trainers' files (``writers``), check that no evaluation patient reached a training
   file, and write ``manifest.json``: counts, every output's sha256, the config, every skipped row.

Configuration: ``recipes/data/build.yaml`` (Hydra; every key overridable on the command line).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf

from data_prep import medical_cxr_vqa, mimic_cxr, mimic_ext_vqa, ms_cxr, openi, xraybench
from data_prep.images import ImageJob, PreparedImage, prepare_images
from data_prep.mixtures import draw_mixture
from data_prep.records import Sample, SkipLog, SourceMissingError
from data_prep.writers import (
    STAGE1_DATASET,
    atomic_write_bytes,
    dataset_info_entry,
    sha256_of,
    sharegpt_row,
    update_dataset_info,
    write_json,
    write_jsonl,
    write_parquet,
)
from rewards.frame import Frame, scale_box_to_frame
from rewards.ground_truth import encode_ground_truth
from rewards.normalize import written_answer

log = logging.getLogger("data_prep.build")
RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "data"

# Skips that describe the data, not damage to it: they do not count towards max_skip_fraction.
CONTENT_GAPS = {"no_findings_section", "no_impression_section", "no_frontal_view", "no_report_for_study"}


class LeakageError(RuntimeError):
    """A patient of the evaluation set is in a training output."""


class SkipRateError(RuntimeError):
    """A source lost more rows to bad input than ``max_skip_fraction`` allows."""


def load_config(overrides: list[str] | None = None, config_name: str = "build") -> DictConfig:
    """The build config with command-line style overrides, without running Hydra's app machinery."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides or [])


# ---------------------------------------------------------------------------------------- parsing


def parse_sources(cfg: DictConfig, skips: SkipLog) -> tuple[list[Sample], dict[str, str]]:
    data_root = Path(cfg.data_root)
    if not data_root.is_dir():
        raise SourceMissingError(f"data_root {data_root} does not exist or is not a folder")
    folder = {key: data_root / name for key, name in cfg.sources.items()}
    status: dict[str, str] = {}
    samples: list[Sample] = []

    def missing(key: str) -> bool:
        if folder[key].is_dir():
            return False
        status[key] = f"missing: {folder[key]}"
        log.warning("source %s skipped: %s not found", key, folder[key])
        return True

    index = None
    if not missing("mimic_cxr_jpg"):
        index = mimic_cxr.index_images(folder["mimic_cxr_jpg"], list(cfg.mimic.frontal_views), skips)
        status["mimic_cxr_jpg"] = f"used: {len(index.images)} images, {len(index.frontal_by_study)} frontal studies"
        if not missing("mimic_cxr_reports"):
            mimic_cxr.index_reports(folder["mimic_cxr_reports"], index, skips)
            reports = mimic_cxr.report_samples(index, cfg.placeholder, skips)
            samples += reports
            status["mimic_cxr_reports"] = f"used: {len(reports)} samples"
    elif folder["mimic_cxr_reports"].is_dir():
        status["mimic_cxr_reports"] = "skipped: needs mimic-cxr-jpg"
    if not missing("openi"):
        rows = openi.report_samples(
            folder["openi"], cfg.placeholder, cfg.openi.test_fraction, cfg.openi.validate_fraction,
            cfg.openi.split_seed, skips,
        )
        samples += rows
        status["openi"] = f"used: {len(rows)} samples"
    parsers = {
        "ms_cxr": lambda: ms_cxr.grounding_samples(folder["ms_cxr"], index, skips),
        "mimic_ext_vqa": lambda: mimic_ext_vqa.vqa_samples(
            folder["mimic_ext_vqa"], index, dict(cfg.vqa.mimic_ext_answer_kinds), skips),
        "medical_cxr_vqa": lambda: medical_cxr_vqa.vqa_samples(
            folder["medical_cxr_vqa"], index, dict(cfg.vqa.medical_cxr_answer_kinds), skips),
    }
    for key, parse in parsers.items():
        if missing(key):
            continue
        if index is None:
            status[key] = "skipped: needs mimic-cxr-jpg (its images and split)"
            log.warning("source %s skipped: it needs mimic-cxr-jpg", key)
            continue
        rows = parse()
        samples += rows
        status[key] = f"used: {len(rows)} samples"
    return samples, status


def check_skip_rates(samples: list[Sample], skips: SkipLog, limit: float) -> None:
    kept = Counter(sample.source for sample in samples)
    damaged = Counter(row["source"] for row in skips.rows if row["reason"] not in CONTENT_GAPS)
    for source, count in sorted(damaged.items()):
        fraction = count / (count + kept.get(source, 0))
        if fraction > limit:
            reasons = skips.counts().get(source, {})
            raise SkipRateError(
                f"{source}: {count} rows ({fraction:.0%}) were skipped for bad input, more than "
                f"max_skip_fraction={limit:.0%}; reasons: {reasons}. See skipped.jsonl."
            )


# ----------------------------------------------------------------------------------------- images


def prepare_sample_images(
    samples: list[Sample], cfg: DictConfig, out_dir: Path, skips: SkipLog
) -> tuple[list[Sample], dict[Path, PreparedImage]]:
    """Samples whose image is usable, and each image's prepared form."""
    data_root = Path(cfg.data_root).resolve()
    sources = sorted({sample.image for sample in samples})
    jobs = []
    for source in sources:
        target = None
        if cfg.images.resize:
            relative = source.resolve().relative_to(data_root) if source.resolve().is_relative_to(data_root) else Path(source.name)
            target = (out_dir / "images" / relative).with_suffix(".jpg")
        jobs.append(ImageJob(source, target, cfg.frame.min_pixels, cfg.frame.max_pixels, cfg.images.quality))
    results = prepare_images(jobs, cfg.images.workers)
    prepared, failed = {}, {}
    for source, result in zip(sources, results):
        if isinstance(result, PreparedImage):
            prepared[source] = result
        else:
            failed[source] = result
    reported = set()
    usable = []
    for sample in samples:
        if sample.image in prepared:
            usable.append(sample)
        elif sample.image not in reported:
            reason, detail = failed[sample.image]
            skips.skip(sample.source, reason, str(sample.image), detail)
            reported.add(sample.image)
    return usable, prepared


# ------------------------------------------------------------------------------------ conversions


class Converter:
    """Turns samples into stage-1 conversations, GRPO rows and evaluation items."""

    def __init__(self, prompts: dict[str, str], prepared: dict[Path, PreparedImage], out_dir: Path):
        self.prompts, self.prepared, self.out_dir = prompts, prepared, out_dir

    def image_path_of(self, image: PreparedImage) -> str:
        path = Path(image.path)
        return path.relative_to(self.out_dir).as_posix() if path.is_relative_to(self.out_dir) else str(path)

    def image_path(self, sample: Sample) -> str:
        return self.image_path_of(self.prepared[sample.image])

    def frame(self, sample: Sample) -> Frame:
        return self.prepared[sample.image].frame

    def boxes_in_frame(self, sample: Sample) -> list[tuple[float, float, float, float]]:
        image = self.prepared[sample.image]
        original = sample.image_size or image.original_size
        frame = image.frame
        boxes = []
        for box in sample.boxes:
            x1, y1, x2, y2 = scale_box_to_frame(box, original, frame)
            boxes.append((
                round(min(max(x1, 0.0), frame.width), 2), round(min(max(y1, 0.0), frame.height), 2),
                round(min(max(x2, 0.0), frame.width), 2), round(min(max(y2, 0.0), frame.height), 2),
            ))
        return boxes

    @staticmethod
    def box_text(boxes: list[tuple[float, ...]]) -> str:
        return ", ".join("[" + ", ".join(str(int(round(v))) for v in box) + "]" for box in boxes)

    def prompt(self, task: str, sample: Sample) -> str:
        if task in ("findings", "impression"):
            return self.prompts[task]
        if task == "vqa":
            return self.prompts[f"vqa_{sample.answer_kind}"].format(question=sample.question)
        if task == "grounding_phrase_to_box":
            return self.prompts[task].format(phrase=sample.question)
        if task == "grounding_box_to_phrase":
            return self.prompts[task].format(boxes=self.box_text(self.boxes_in_frame(sample)))
        if task == "grounding":  # GRPO: a presence question whose ground truth carries the boxes
            return self.prompts["grounding_presence"].format(category=sample.subtype.lower())
        raise ValueError(f"no prompt for task {task!r}")

    def stage1_row(self, task: str, sample: Sample) -> dict[str, Any]:
        if task == "grounding_phrase_to_box":
            answer = self.box_text(self.boxes_in_frame(sample))
        else:
            answer = written_answer(sample.answer)
        return sharegpt_row(self.prompt(task, sample), answer, [self.image_path(sample)])

    def ground_truth(self, task: str, sample: Sample) -> str:
        if task == "grounding":
            return encode_ground_truth("closed", "yes", self.frame(sample), self.boxes_in_frame(sample),
                                       sample.source, sample.sample_id)
        answer = list(sample.answer) if isinstance(sample.answer, tuple) else sample.answer
        return encode_ground_truth(sample.answer_kind, answer, self.frame(sample), None, sample.source, sample.sample_id)

    def grpo_row(self, task: str, sample: Sample) -> dict[str, Any]:
        return {
            "prompt": "<image>" + self.prompt(task, sample),
            "images": [self.image_path(sample)],
            "answer": self.ground_truth(task, sample),
            "sample_id": sample.sample_id,
        }

    def eval_item(self, sample: Sample) -> dict[str, Any]:
        frame = self.frame(sample)
        return {
            "id": sample.sample_id,
            "source": sample.source,
            "task": sample.task,
            "subtype": sample.subtype,
            "images": [self.image_path(sample)],
            "prompt": self.prompt(sample.task, sample),
            "answer": list(sample.answer) if isinstance(sample.answer, tuple) else sample.answer,
            "answer_kind": sample.answer_kind,
            "ground_truth": self.ground_truth(sample.task, sample),
            "frame": {"width": frame.width, "height": frame.height},
        }


    def grounding_item(self, sample: Sample) -> dict[str, Any]:
        """A phrase-grounding evaluation item (``eval.grounding``): "locate <phrase>" -> its boxes,
        in the model's frame, in the reference (box text) and in the ground truth."""
        frame, boxes = self.frame(sample), self.boxes_in_frame(sample)
        box_text = self.box_text(boxes)
        return {
            "id": sample.sample_id,
            "source": sample.source,
            "task": "grounding",
            "subtype": sample.subtype,
            "images": [self.image_path(sample)],
            "prompt": self.prompt("grounding_phrase_to_box", sample),
            "answer": box_text,
            "answer_kind": "grounding",
            "ground_truth": encode_ground_truth("open_ended", box_text, frame, boxes, sample.source, sample.sample_id),
            "frame": {"width": frame.width, "height": frame.height},
        }


def task_pools(samples: list[Sample], split: str, expand_grounding: bool) -> dict[str, list[Sample]]:
    pools: dict[str, list[Sample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.sample_id):
        if sample.split != split:
            continue
        if sample.task == "grounding" and expand_grounding:
            pools["grounding_phrase_to_box"].append(sample)
            pools["grounding_box_to_phrase"].append(sample)
        else:
            pools[sample.task].append(sample)
    keys = ("findings", "impression", "vqa") + (
        ("grounding_phrase_to_box", "grounding_box_to_phrase") if expand_grounding else ("grounding",)
    )
    return {key: pools.get(key, []) for key in keys}


# ------------------------------------------------------------------------------------------ build


def build(cfg: DictConfig) -> dict[str, Any]:
    out_dir = Path(cfg.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    skips = SkipLog()
    samples, status = parse_sources(cfg, skips)
    samples, prepared = prepare_sample_images(samples, cfg, out_dir, skips)
    write_jsonl(out_dir / "skipped.jsonl", skips.rows)
    check_skip_rates(samples, skips, cfg.max_skip_fraction)
    prompts_file = Path(cfg.get("prompts_file") or RECIPES / "prompts.yaml")
    converter = Converter(yaml.safe_load(prompts_file.read_text(encoding="utf-8")), prepared, out_dir)

    # Evaluation first: its patients are then kept out of every training output.
    if cfg.xraybench.mode == "rebuild":
        evaluation, bench_shortfalls = xraybench.compose(
            samples, list(OmegaConf.to_container(cfg.xraybench.composition)), cfg.xraybench.scale, cfg.seed
        )
        evaluation_subjects = {sample.subject for sample in evaluation}
        eval_items = [converter.eval_item(sample) for sample in evaluation]
    elif cfg.xraybench.mode == "local":
        local = xraybench.load_local(
            Path(cfg.data_root) / cfg.sources.xraybench, cfg.xraybench.local.file,
            dict(cfg.xraybench.local.columns),
        )
        bench_shortfalls, evaluation_subjects = [], {item.subject for item in local}
        eval_items = [
            {"id": item.item_id, "images": [str(path) for path in item.images], "prompt": item.prompt,
             "answer": list(item.answer) if isinstance(item.answer, tuple) else item.answer, "task": item.task}
            for item in local
        ]
    else:
        raise ValueError(f"xraybench.mode must be 'rebuild' or 'local', got {cfg.xraybench.mode!r}")

    # Beyond the paper: phrase grounding on the MS-CXR phrases of test patients (test/grounding.jsonl).
    grounding_eval = [sample for sample in sorted(samples, key=lambda s: s.sample_id)
                      if cfg.get("grounding_eval", {}).get("enabled", False)
                      and sample.task == "grounding" and sample.split == "test"]
    evaluation_subjects |= {sample.subject for sample in grounding_eval}

    trainable = []
    for sample in samples:
        if sample.split != "test" and sample.subject in evaluation_subjects:
            skips.skip(sample.source, "patient_in_evaluation_set", sample.sample_id)
        else:
            trainable.append(sample)

    grpo, grpo_short = draw_mixture(
        task_pools(trainable, "train", False), cfg.grpo.size, dict(cfg.grpo.weights), cfg.seed, "grpo")
    grpo_val, grpo_val_short = draw_mixture(
        task_pools(trainable, "validate", False), cfg.grpo.val_size, dict(cfg.grpo.weights), cfg.seed, "grpo-val")
    grpo_ids = {sample.sample_id for _, sample in grpo}
    cold_start, cold_short = draw_mixture(
        task_pools([s for s in trainable if s.sample_id not in grpo_ids], "train", False),
        cfg.cold_start.candidates, dict(cfg.cold_start.weights), cfg.seed, "cold-start")
    taken = grpo_ids if cfg.grpo.disjoint_from_stage1 else set()
    stage1_pool = [sample for sample in trainable if sample.sample_id not in taken]
    stage1, stage1_short = draw_mixture(
        task_pools(stage1_pool, "train", True), cfg.stage1.size, dict(cfg.stage1.weights), cfg.seed, "stage1")

    training_subjects = {sample.subject for _, sample in stage1 + grpo + grpo_val + cold_start}
    leaked = sorted(training_subjects & evaluation_subjects)
    if leaked:
        raise LeakageError(f"{len(leaked)} evaluation patients would be in training outputs, e.g. {leaked[:5]}")

    outputs = {
        "stage1/train.jsonl": [converter.stage1_row(task, sample) for task, sample in stage1],
        "grpo/train.parquet": [converter.grpo_row(task, sample) for task, sample in grpo],
        "grpo/val.parquet": [converter.grpo_row(task, sample) for task, sample in grpo_val],
        "cold_start/candidates.parquet": [converter.grpo_row(task, sample) for task, sample in cold_start],
        "test/xraybench.jsonl": eval_items,
        "test/grounding.jsonl": [converter.grounding_item(sample) for sample in grounding_eval],
    }
    for name, rows in outputs.items():
        (write_parquet if name.endswith(".parquet") else write_jsonl)(out_dir / name, rows)
    update_dataset_info(out_dir, STAGE1_DATASET, dataset_info_entry("stage1/train.jsonl"))
    write_jsonl(out_dir / "skipped.jsonl", skips.rows)
    # Where each image came from and how it was scaled: maps boxes back to original pixels.
    data_root = Path(cfg.data_root).resolve()
    image_rows = []
    for original, image in sorted(prepared.items(), key=lambda item: item[1].path):
        source = original.resolve()
        image_rows.append({
            "path": converter.image_path_of(image),
            "original": source.relative_to(data_root).as_posix() if source.is_relative_to(data_root) else str(source),
            "original_size": list(image.original_size),
            "frame": [image.frame.width, image.frame.height],
        })
    write_jsonl(out_dir / "images" / "index.jsonl", image_rows)
    images_listing = "".join(
        f"{sha256_of(Path(image.path))}  {converter.image_path_of(image)}\n"
        for image in sorted(prepared.values(), key=lambda i: i.path)
        if Path(image.path).is_relative_to(out_dir)
    )
    atomic_write_bytes(out_dir / "images" / "SHA256SUMS", images_listing.encode("utf-8"))

    def breakdown(pairs: list[tuple[str, Sample]]) -> dict[str, dict[str, int]]:
        return {
            "by_task": dict(sorted(Counter(task for task, _ in pairs).items())),
            "by_source": dict(sorted(Counter(sample.source for _, sample in pairs).items())),
        }

    files = sorted(list(outputs) + ["dataset_info.json", "skipped.jsonl", "images/SHA256SUMS", "images/index.jsonl"])
    manifest = {
        "config": OmegaConf.to_container(cfg, resolve=False),
        "sources": dict(sorted(status.items())),
        "parsed": _parsed_counts(samples),
        "outputs": {
            "stage1/train.jsonl": {"rows": len(stage1), **breakdown(stage1), "shortfalls": stage1_short},
            "grpo/train.parquet": {"rows": len(grpo), **breakdown(grpo), "shortfalls": grpo_short},
            "grpo/val.parquet": {"rows": len(grpo_val), **breakdown(grpo_val), "shortfalls": grpo_val_short},
            "cold_start/candidates.parquet": {"rows": len(cold_start), **breakdown(cold_start), "shortfalls": cold_short},
            "test/xraybench.jsonl": {"rows": len(eval_items), "mode": cfg.xraybench.mode, "shortfalls": bench_shortfalls},
            "test/grounding.jsonl": {"rows": len(grounding_eval)},
        },
        "images": {"prepared": len(prepared), "resized_into_output": bool(cfg.images.resize)},
        "skipped": skips.counts(),
        "leakage_check": {
            "evaluation_patients": len(evaluation_subjects),
            "training_patients": len(training_subjects),
            "overlap": 0,
        },
        "sha256": {name: sha256_of(out_dir / name) for name in files},
    }
    manifest["config"].pop("hydra", None)
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def _parsed_counts(samples: list[Sample]) -> dict[str, dict[str, dict[str, int]]]:
    counts: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for sample in samples:
        counts[sample.source][sample.task][sample.split] += 1
    return {source: {task: dict(sorted(c.items())) for task, c in sorted(tasks.items())}
            for source, tasks in sorted(counts.items())}


@hydra.main(config_path=str(RECIPES), config_name="build", version_base="1.3")
def main(cfg: DictConfig) -> None:
    manifest = build(cfg)
    rows = {name: entry["rows"] for name, entry in manifest["outputs"].items()}
    print(json.dumps({"out_dir": str(Path(cfg.out_dir).resolve()), "rows": rows, "skipped": manifest["skipped"]}, indent=2))


if __name__ == "__main__":
    main()
