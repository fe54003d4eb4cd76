"""Build every dataset of the pipeline from the releases: ``make data`` / ``python -m data_prep.build``.

1. Parse each release present under ``data_root`` (one module per source) into ``Sample`` rows.
2. Verify and size every image in the model's frame, writing it once at that size (``images``).
3. Draw the evaluation set (XrayBench), then the GRPO train/validation sets and the stage-1 mixture
   from the remaining patients only.
4. Write the trainers' files (``writers``), check that no evaluation patient reached a training
   file, and write ``manifest.json``: counts, every output's sha256, the config, every skipped row.

One build writes into an output folder at a time (``writers.output_lock``); temporaries that a
failed build left behind are removed when it fails and when the next build starts. What is refused,
skipped or warned about: ``data_prep.readers`` and the README's data preparation section.

Configuration: ``recipes/data/build.yaml`` (Hydra; every key overridable on the command line).
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf

from data_prep import medical_cxr_vqa, mimic_cxr, mimic_ext_vqa, ms_cxr, openi, xraybench
from data_prep.images import ImageJob, PreparedImage, prepare_images
from data_prep.mixtures import draw_planned, equalize
from data_prep.readers import SourceFileError, file_problem
from data_prep.records import Sample, SkipLog, SourceMissingError
from data_prep.writers import (
    STAGE1_DATASET,
    OutputLockedError,
    atomic_write_bytes,
    dataset_info_entry,
    output_lock,
    remove_stale_temporaries,
    sha256_of,
    sharegpt_row,
    update_dataset_info,
    write_json,
    write_jsonl,
    write_parquet,
)
from rewards.frame import Frame, scale_box_to_frame
from rewards.ground_truth import encode_ground_truth
from rewards.normalize import normalize_answer, written_answer
from rewards.settings import ConfigValueError, check_booleans

log = logging.getLogger("data_prep.build")
RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "data"

# Skips that describe the data, not damage to it: they do not count towards max_skip_fraction.
# (An exact duplicate row loses nothing: it is counted, but does not count towards the limit.)
CONTENT_GAPS = {"no_findings_section", "no_impression_section", "no_frontal_view", "no_report_for_study",
                "duplicate_row"}
# Upstream first: MIMIC-CXR-JPG's index is what the other MIMIC-based sources join on, so when it
# is broken their rows fail too ("image_not_in_mimic_metadata"); the error names it first.
SOURCE_ORDER = (mimic_cxr.SOURCE, openi.SOURCE, ms_cxr.SOURCE, mimic_ext_vqa.SOURCE, medical_cxr_vqa.SOURCE)
# The config key of each release folder -> the source name its samples carry.
SAMPLE_SOURCE = {"mimic_cxr_reports": mimic_cxr.SOURCE, "openi": openi.SOURCE, "ms_cxr": ms_cxr.SOURCE,
                 "mimic_ext_vqa": mimic_ext_vqa.SOURCE, "medical_cxr_vqa": medical_cxr_vqa.SOURCE}
# The splits every used source must yield (training sets and XrayBench are drawn from them);
# "validate" is small (MIMIC: 0.8% of images) and may be empty for a small source.
REQUIRED_SPLITS = ("train", "test")


# Tasks drawn in the ratio of their weights even when one pool is short: presence questions
# answered "yes" (MS-CXR) and "no" (ruled out), so the answer never leaks from the mix.
BALANCED = (("grounding", "grounding_absent"),)
BOOLEANS = ("images.resize", "grpo.disjoint_from_stage1", "grpo.balance_yes_no", "stage1.fill_shortfall",
            "grpo.fill_shortfall",
            "cold_start.fill_shortfall", "xraybench.local.allow_unknown_subjects",
            "grounding_eval.enabled")  # every boolean of build.yaml


# every number of build.yaml that sizes or bounds the outputs: (key, lowest value, integer?). A typo
# (stage1.size=-5, xraybench.scale=abc) is refused at start, never an empty set built with exit 0
# or a traceback after hours of image work.
NUMBERS = (("stage1.size", 1, True), ("grpo.size", 1, True), ("grpo.val_size", 1, True),
           ("cold_start.candidates", 1, True), ("xraybench.scale", 0, False), ("images.workers", 0, True),
           ("images.quality", 1, True), ("grounding.absent_per_present", 0, False), ("max_skip_fraction", 0, False),
           ("max_text_chars", 1, True), ("seed", 0, True), ("openi.test_fraction", 0, False),
           ("openi.validate_fraction", 0, False))


def check_numbers(cfg: DictConfig) -> None:
    """``ConfigValueError`` naming the first key of ``NUMBERS`` that is not a number >= its lowest value
    (an integer where it must be one); a scale must be above 0, a fraction at most 1."""
    for key, lowest, integer in NUMBERS:
        value = OmegaConf.select(cfg, key)
        if value is None:
            continue
        kind = int if integer else (int, float)
        fraction = key.endswith("fraction")
        if (isinstance(value, bool) or not isinstance(value, kind) or value < lowest or not value == value
                or (key == "xraybench.scale" and value <= 0) or (fraction and value > 1)):
            wanted = ("a number in (0, ...)" if key == "xraybench.scale" else "a number in [0, 1]" if fraction
                      else f"an integer >= {lowest}" if integer else f"a number >= {lowest}")
            raise ConfigValueError(f"{key} must be {wanted}, got {value!r} ({type(value).__name__})")


class LeakageError(RuntimeError):
    """A patient of the evaluation set is in a training output."""


class SkipRateError(RuntimeError):
    """A source lost more rows to bad input than ``max_skip_fraction`` allows."""


class EmptySourceError(RuntimeError):
    """A source folder that is present yielded no sample (or none in a split) and the config
    does not list it in ``allow_empty``."""


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
    releases = ["mimic_cxr_jpg", *SAMPLE_SOURCE]
    if not any(folder[key].is_dir() for key in releases):
        raise SourceMissingError(
            f"data_root {data_root} holds none of the release folders {[cfg.sources[k] for k in releases]}: "
            "nothing to build (see recipes/data/build.yaml, sources)")
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

    def with_absent_findings(present: list[Sample]) -> list[Sample]:
        """MS-CXR's "yes" presence questions and as many "no" ones (ms_cxr.absent_finding_samples)."""
        return present + ms_cxr.absent_finding_samples(
            folder["mimic_cxr_jpg"], index, present, cfg.grounding.absent_per_present, cfg.seed, skips)

    parsers = {
        "ms_cxr": lambda: with_absent_findings(ms_cxr.grounding_samples(folder["ms_cxr"], index, skips)),
        "mimic_ext_vqa": lambda: mimic_ext_vqa.vqa_samples(
            folder["mimic_ext_vqa"], index, dict(cfg.vqa.mimic_ext_answer_kinds), skips, cfg.vqa.split),
        "medical_cxr_vqa": lambda: medical_cxr_vqa.vqa_samples(
            folder["medical_cxr_vqa"], index, dict(cfg.vqa.medical_cxr_answer_kinds), skips, cfg.vqa.split),
    }
    for key, parse in parsers.items():
        if missing(key):
            continue
        if index is None:
            status[key] = "skipped: needs mimic-cxr-jpg (its images and split)"
            log.warning("source %s skipped: it needs mimic-cxr-jpg", key)
            continue
        rows, left_out = chosen_question_types(parse(), cfg.vqa.get("question_types"))
        samples += rows
        status[key] = f"used: {len(rows)} samples" + (
            f"; left out by vqa.question_types: {dict(sorted(left_out.items()))}" if left_out else "")
    return samples, status


def chosen_question_types(rows: list[Sample], keep) -> tuple[list[Sample], Counter]:
    """The samples of a release's question types listed in ``vqa.question_types`` (all when it is
    null), and how many of each other type were left out (written to the manifest's sources)."""
    if keep is None:
        return rows, Counter()
    keep = set(keep)
    left_out = Counter(row.subtype for row in rows if row.task == "vqa" and row.subtype not in keep)
    return [row for row in rows if row.task != "vqa" or row.subtype in keep], left_out


def check_skip_rates(samples: list[Sample], skips: SkipLog, limit: float) -> None:
    """Stop when a source lost more than ``limit`` of its rows to bad input; every such source is
    named, upstream (MIMIC-CXR) first, since its damage makes the sources that join on it fail."""
    kept = Counter(sample.source for sample in samples)
    damaged = Counter(row["source"] for row in skips.rows if row["reason"] not in CONTENT_GAPS)
    order = {source: rank for rank, source in enumerate(SOURCE_ORDER)}
    failing = []
    for source, count in sorted(damaged.items(), key=lambda item: (order.get(item[0], len(order)), item[0])):
        fraction = count / (count + kept.get(source, 0))
        if fraction > limit:
            reasons = skips.counts().get(source, {})
            failing.append(f"{source}: {count} rows ({fraction:.0%}) were skipped for bad input; reasons: {reasons}")
    if failing:
        raise SkipRateError(
            f"more than max_skip_fraction={limit:.0%} of the rows were skipped for bad input. "
            + " | ".join(failing) + ". See skipped.jsonl.")


def check_sources_yield(samples: list[Sample], status: dict[str, str], skips: SkipLog, allow_empty: list[str]) -> None:
    """Every source folder that is present yields samples, in each of ``REQUIRED_SPLITS``, unless
    ``allow_empty`` lists it (``openi``) or that split of it (``ms-cxr/test``)."""
    if not samples:
        raise EmptySourceError(f"no source yielded a usable sample: {dict(sorted(status.items()))}; "
                               f"skipped: {skips.counts() or 'nothing'}")
    # The grounding slice's absent-finding questions carry MIMIC-CXR's name (they come from its
    # CheXpert labels), but they say nothing about whether its reports were read: not counted here.
    released = [sample for sample in samples
                if not (sample.source == ms_cxr.ABSENT_SOURCE and sample.task == "grounding")]
    per_split = Counter((sample.source, sample.split) for sample in released)
    per_source = Counter(sample.source for sample in released)
    problems = []
    for key, source in SAMPLE_SOURCE.items():
        if not status.get(key, "").startswith("used") or source in allow_empty:
            continue
        if not per_source[source]:
            reasons = skips.counts().get(source, {})
            problems.append(f"{source} yielded no sample (skipped: {reasons or 'nothing'})")
            continue
        problems += [f"{source} yielded no sample in the {split} split" for split in REQUIRED_SPLITS
                     if not per_split[(source, split)] and f"{source}/{split}" not in allow_empty]
    if problems:
        raise EmptySourceError(
            "; ".join(problems) + ". A release file lost its rows or a column, or the join on "
            "MIMIC-CXR failed: see skipped.jsonl. If this is expected, list it in allow_empty "
            "(recipes/data/build.yaml).")


def check_allow_empty(allow_empty: list[str]) -> None:
    """Refuse a misspelt ``allow_empty`` entry before the build starts (it would silently allow nothing)."""
    wrong = [entry for entry in allow_empty
             if entry.split("/")[0] not in SOURCE_ORDER or entry.count("/") > 1
             or ("/" in entry and entry.split("/")[1] not in REQUIRED_SPLITS)]
    if wrong:
        raise ValueError(f"allow_empty: {wrong} are not a source ({list(SOURCE_ORDER)}) or a "
                         f"source/split (split one of {list(REQUIRED_SPLITS)})")


def drop_duplicate_ids(samples: list[Sample], skips: SkipLog) -> list[Sample]:
    """The first sample of each id; every later one is a counted skip (``duplicate_sample_id``):
    two rows that claim the same id (a uid listed twice...) would make the evaluation ambiguous."""
    seen: set[str] = set()
    unique = []
    for sample in samples:
        if sample.sample_id in seen:
            skips.skip(sample.source, "duplicate_sample_id", sample.sample_id, str(sample.image))
        else:
            seen.add(sample.sample_id)
            unique.append(sample)
    return unique


def bound_text(samples: list[Sample], limit: int, skips: SkipLog) -> list[Sample]:
    """Samples whose every text field (question, answer, each list item) holds at most ``limit``
    characters; a longer one is a counted skip (``text_too_long``), never copied into training data."""
    kept = []
    for sample in samples:
        answers = sample.answer if isinstance(sample.answer, tuple) else (sample.answer,)
        longest = max(len(text) for text in (sample.question or "", sample.subtype, *answers))
        if longest > limit:
            skips.skip(sample.source, "text_too_long", sample.sample_id, f"{longest} characters, over {limit}")
        else:
            kept.append(sample)
    return kept


# ----------------------------------------------------------------------------------------- images


def prepare_sample_images(
    samples: list[Sample], cfg: DictConfig, out_dir: Path, skips: SkipLog
) -> tuple[list[Sample], dict[Path, PreparedImage]]:
    """Samples whose image is usable, and each image's prepared form."""
    data_root = Path(cfg.data_root).resolve()
    failed: dict[Path, tuple[str, str]] = {}
    sources = []
    for source in sorted({sample.image for sample in samples}):
        # Checked before anything opens or resolves it: a FIFO would hang the build, a symlink loop abort it.
        problem = file_problem(source)
        if problem is None:
            sources.append(source)
        else:
            failed[source] = ("missing_image" if problem == "missing" else "unreadable_image", f"{source}: {problem}")
    jobs = []
    for source in sources:
        target = None
        if cfg.images.resize:
            relative = source.resolve().relative_to(data_root) if source.resolve().is_relative_to(data_root) else Path(source.name)
            target = (out_dir / "images" / relative).with_suffix(".jpg")
        jobs.append(ImageJob(source, target, cfg.frame.min_pixels, cfg.frame.max_pixels, cfg.images.quality))
    results = prepare_images(jobs, cfg.images.workers)
    prepared = {}
    for source, result in zip(sources, results):
        if isinstance(result, PreparedImage):
            prepared[source] = result
        else:
            failed[source] = result
    usable = []
    for sample in samples:  # one skip per sample lost, so each source counts what it lost
        if sample.image in prepared:
            usable.append(sample)
        else:
            reason, detail = failed[sample.image]
            skips.skip(sample.source, reason, str(sample.image), f"{sample.sample_id}: {detail}")
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
        if task in ("grounding", "grounding_absent"):  # GRPO: a presence question (boxes when present)
            return self.prompts["grounding_presence"].format(category=sample.subtype.lower())
        raise ValueError(f"no prompt for task {task!r}")

    def stage1_row(self, task: str, sample: Sample) -> dict[str, Any]:
        if task == "grounding_phrase_to_box":
            answer = self.box_text(self.boxes_in_frame(sample))
        else:
            answer = written_answer(sample.answer)
        return sharegpt_row(self.prompt(task, sample), answer, [self.image_path(sample)])

    def ground_truth(self, task: str, sample: Sample) -> str:
        if task == "grounding_phrase_to_box":  # the box text, scored as text; its boxes for IoU
            boxes = self.boxes_in_frame(sample)
            return encode_ground_truth("open_ended", self.box_text(boxes), self.frame(sample), boxes,
                                       sample.source, sample.sample_id)
        if task in ("grounding", "grounding_absent"):  # present: MS-CXR's boxes; absent: ruled out, none
            return encode_ground_truth("closed", "yes" if sample.boxes else "no", self.frame(sample),
                                       self.boxes_in_frame(sample), sample.source, sample.sample_id)
        answer = list(sample.answer) if isinstance(sample.answer, tuple) else sample.answer
        return encode_ground_truth(sample.answer_kind, answer, self.frame(sample), None, sample.source, sample.sample_id)

    def grpo_row(self, task: str, sample: Sample) -> dict[str, Any]:
        # One MS-CXR phrase may be drawn both as a presence question and as "locate <phrase>":
        # the second keeps an id of its own.
        suffix = "#locate" if task == "grounding_phrase_to_box" else ""
        return {
            "prompt": "<image>" + self.prompt(task, sample),
            "images": [self.image_path(sample)],
            "answer": self.ground_truth(task, sample),
            "sample_id": sample.sample_id + suffix,
        }

    def eval_item(self, sample: Sample, prompt: str | None = None) -> dict[str, Any]:
        """``prompt``: the item's own (a local XrayBench copy), else ours for its task."""
        frame = self.frame(sample)
        return {
            "id": sample.sample_id,
            "source": sample.source,
            "task": sample.task,
            "subtype": sample.subtype,
            "images": [self.image_path(sample)],
            "prompt": self.prompt(sample.task, sample) if prompt is None else prompt,
            "answer": list(sample.answer) if isinstance(sample.answer, tuple) else sample.answer,
            "answer_kind": sample.answer_kind,
            "ground_truth": self.ground_truth(sample.task, sample),
            "frame": {"width": frame.width, "height": frame.height},
        }


    def grounding_item(self, sample: Sample) -> dict[str, Any]:
        """A phrase-grounding evaluation item (``eval.grounding``): "locate <phrase>" -> its boxes,
        in the model's frame, in the reference (box text) and in the ground truth."""
        frame = self.frame(sample)
        return {
            "id": sample.sample_id,
            "source": sample.source,
            "task": "grounding",
            "subtype": sample.subtype,
            "images": [self.image_path(sample)],
            "prompt": self.prompt("grounding_phrase_to_box", sample),
            "answer": self.box_text(self.boxes_in_frame(sample)),
            "answer_kind": "grounding",
            "ground_truth": self.ground_truth("grounding_phrase_to_box", sample),
            "frame": {"width": frame.width, "height": frame.height},
        }


def task_pools(samples: list[Sample], split: str, expand_grounding: bool) -> dict[str, list[Sample]]:
    pools: dict[str, list[Sample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.sample_id):
        if sample.split != split:
            continue
        if sample.task == "grounding" and not sample.boxes:  # an absent finding: presence questions only
            if not expand_grounding:
                pools["grounding_absent"].append(sample)
        elif sample.task == "grounding" and expand_grounding:
            pools["grounding_phrase_to_box"].append(sample)
            pools["grounding_box_to_phrase"].append(sample)
        elif sample.task == "grounding":  # GRPO / cold start: a presence question, or "locate <phrase>"
            pools["grounding"].append(sample)
            pools["grounding_phrase_to_box"].append(sample)
        else:
            pools[sample.task].append(sample)
    keys = ("findings", "impression", "vqa") + (
        ("grounding_phrase_to_box", "grounding_box_to_phrase") if expand_grounding
        else ("grounding", "grounding_absent", "grounding_phrase_to_box")
    )
    return {key: pools.get(key, []) for key in keys}


def yes_or_no(sample: Sample) -> str | None:
    """"yes" or "no" for a closed question answered so, else None."""
    answer = normalize_answer(written_answer(sample.answer)) if sample.answer_kind == "closed" else None
    return answer if answer in ("yes", "no") else None


def balance_yes_no(pools: dict[str, list[Sample]], seed: int, purpose: str) -> tuple[dict[str, int], str | None]:
    """Draw the VQA pool's closed "yes" and "no" questions down to the rarer answer's count, in place
    (grpo.balance_yes_no): GRPO's rewards for the commoner answer otherwise move every verdict its way
    (docs/demo_grpo.md, "December 4, later"). What is set aside stays in the pools of stage 1 and the cold
    start. Returns the counts set aside per answer, and a warning if one answer was missing."""
    present = Counter(yes_or_no(sample) for sample in pools["vqa"])
    pools["vqa"], set_aside = equalize(pools["vqa"], yes_or_no, ("yes", "no"), seed, f"{purpose}/vqa")
    log.info("%s: VQA yes/no balanced at %d each; set aside: %d yes, %d no", purpose,
             min(present["yes"], present["no"]), set_aside["yes"], set_aside["no"])
    missing = [answer for answer in ("yes", "no") if not present[answer]]
    if missing and sum(set_aside.values()):
        return set_aside, (f"grpo.balance_yes_no: no VQA question is answered {missing[0]!r}, so all "
                           f"{sum(set_aside.values()):,} yes/no VQA questions were set aside")
    return set_aside, None


# ------------------------------------------------------------------------------------------ build


def build(cfg: DictConfig) -> dict[str, Any]:
    """Build every dataset into ``cfg.out_dir``, holding its lock (a second build is refused)."""
    check_booleans(cfg, BOOLEANS)
    check_numbers(cfg)
    out_dir = Path(cfg.out_dir).resolve()
    with output_lock(out_dir):
        for path in remove_stale_temporaries(out_dir):
            log.warning("removed %s, left by an earlier build that failed", path)
        try:
            return _build_locked(cfg)
        except BaseException:
            remove_stale_temporaries(out_dir)
            raise


def _build_locked(cfg: DictConfig) -> dict[str, Any]:
    out_dir = Path(cfg.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    check_allow_empty(list(cfg.allow_empty))
    if cfg.xraybench.mode == "local":  # refused now, not after hours of image work on the releases
        local_file = Path(cfg.data_root) / cfg.sources.xraybench / cfg.xraybench.local.file
        if not local_file.is_file():
            raise SourceMissingError(f"xraybench.mode=local but {local_file} does not exist")
    skips = SkipLog()
    samples, status = parse_sources(cfg, skips)
    samples = bound_text(drop_duplicate_ids(samples, skips), cfg.max_text_chars, skips)
    samples, prepared = prepare_sample_images(samples, cfg, out_dir, skips)
    write_jsonl(out_dir / "skipped.jsonl", skips.rows)
    write_jsonl(out_dir / "warnings.jsonl", skips.warnings)
    check_skip_rates(samples, skips, cfg.max_skip_fraction)
    check_sources_yield(samples, status, skips, list(cfg.allow_empty))
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
        folder = Path(cfg.data_root) / cfg.sources.xraybench
        local = xraybench.load_local(
            folder / cfg.xraybench.local.file, dict(cfg.xraybench.columns),
            Path(cfg.xraybench.local.image_root) if cfg.xraybench.local.image_root else folder,
            out_dir / "xraybench_images", samples,
            {"mimic-ext-vqa": dict(cfg.vqa.mimic_ext_answer_kinds),
             "medical-cxr-vqa": dict(cfg.vqa.medical_cxr_answer_kinds)},
            bool(cfg.xraybench.local.allow_unknown_subjects), skips,
        )
        evaluation, local_prepared = prepare_sample_images(local.samples, cfg, out_dir, skips)
        prepared.update(local_prepared)
        bench_shortfalls, evaluation_subjects = [], {sample.subject for sample in evaluation}
        eval_items = [converter.eval_item(sample, local.prompts[sample.sample_id]) for sample in evaluation]
    else:
        raise ValueError(f"xraybench.mode must be 'rebuild' or 'local', got {cfg.xraybench.mode!r}")

    # Beyond the paper: phrase grounding on the MS-CXR phrases of test patients (test/grounding.jsonl).
    grounding_eval = [sample for sample in sorted(samples, key=lambda s: s.sample_id)
                      if cfg.get("grounding_eval", {}).get("enabled", False)
                      and sample.task == "grounding" and sample.source == ms_cxr.SOURCE and sample.boxes
                      and sample.split == "test"]  # MS-CXR's phrases (not the absent-finding questions)
    evaluation_subjects |= {sample.subject for sample in grounding_eval}

    trainable = []
    for sample in samples:
        if sample.split != "test" and sample.subject in evaluation_subjects:
            skips.skip(sample.source, "patient_in_evaluation_set", sample.sample_id)
        else:
            trainable.append(sample)

    mixtures: dict[str, dict[str, Any]] = {}  # output -> target vs achieved (mixture_report)

    def mixture(output: str, pools: dict[str, list[Sample]], section: DictConfig, size: int, purpose: str):
        fill = bool(section.get("fill_shortfall", False))
        pairs, plan = draw_planned(pools, size, dict(section.weights), cfg.seed, purpose, fill, BALANCED)
        mixtures[output] = mixture_report(output, size, fill, plan, pairs, pools)
        return pairs

    grpo_pools = {"grpo": task_pools(trainable, "train", False), "grpo-val": task_pools(trainable, "validate", False)}
    balance = {purpose: balance_yes_no(pools, cfg.seed, purpose) for purpose, pools in grpo_pools.items()
               if cfg.grpo.balance_yes_no}
    grpo = mixture("grpo/train.parquet", grpo_pools["grpo"], cfg.grpo, cfg.grpo.size, "grpo")
    grpo_val = mixture("grpo/val.parquet", grpo_pools["grpo-val"], cfg.grpo, cfg.grpo.val_size, "grpo-val")
    for output, purpose in (("grpo/train.parquet", "grpo"), ("grpo/val.parquet", "grpo-val")):
        if purpose in balance:
            mixtures[output]["vqa_yes_no_set_aside"], warning = balance[purpose]
            mixtures[output]["warnings"] += [f"{output}: {warning}"] if warning else []
    grpo_ids = {sample.sample_id for _, sample in grpo}
    cold_start = mixture("cold_start/candidates.parquet",
                         task_pools([s for s in trainable if s.sample_id not in grpo_ids], "train", False),
                         cfg.cold_start, cfg.cold_start.candidates, "cold-start")
    taken = grpo_ids if cfg.grpo.disjoint_from_stage1 else set()
    stage1_pool = [sample for sample in trainable if sample.sample_id not in taken]
    stage1 = mixture("stage1/train.jsonl", task_pools(stage1_pool, "train", True), cfg.stage1, cfg.stage1.size,
                     "stage1")
    warnings = [f"test/xraybench.jsonl: {row['source']} {row['task']}/{row['subtype']} capped at {row['drawn']:,} of "
                f"{row['target']:,}: its test split holds no more" for row in bench_shortfalls]
    warnings += [line for report in mixtures.values() for line in report.pop("warnings")]
    for line in warnings:
        log.warning("%s", line)

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
    empty_outputs = empty_output_reasons(cfg, outputs, status)
    for name, reason in empty_outputs.items():
        log.warning("EMPTY OUTPUT %s: %s. Stages that read it will refuse it.", name, reason)
    update_dataset_info(out_dir, STAGE1_DATASET, dataset_info_entry("stage1/train.jsonl"))
    write_jsonl(out_dir / "skipped.jsonl", skips.rows)
    write_jsonl(out_dir / "warnings.jsonl", skips.warnings)
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

    files = sorted(list(outputs) + ["dataset_info.json", "skipped.jsonl", "warnings.jsonl", "images/SHA256SUMS",
                                    "images/index.jsonl"])
    manifest = {
        "config": OmegaConf.to_container(cfg, resolve=False),
        "sources": dict(sorted(status.items())),
        "parsed": _parsed_counts(samples),
        "outputs": {
            **{name: {"rows": len(pairs), **breakdown(pairs), **mixtures[name]} for name, pairs in (
                ("stage1/train.jsonl", stage1), ("grpo/train.parquet", grpo), ("grpo/val.parquet", grpo_val),
                ("cold_start/candidates.parquet", cold_start))},
            "test/xraybench.jsonl": {"rows": len(eval_items), "mode": cfg.xraybench.mode, "shortfalls": bench_shortfalls,
                                     **({"local": local.report} if cfg.xraybench.mode == "local" else {})},
            "test/grounding.jsonl": {"rows": len(grounding_eval)},
        },
        "warnings": warnings,
        "empty_outputs": empty_outputs,
        "images": {"prepared": len(prepared), "resized_into_output": bool(cfg.images.resize)},
        "skipped": skips.counts(),
        "row_warnings": skips.counts(skips.warnings),
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


def mixture_report(
    output: str, size: int, fill: bool, plan: dict[str, dict], pairs: list[tuple[str, Sample]],
    pools: dict[str, list[Sample]],
) -> dict[str, Any]:
    """Target vs achieved size of one drawn set, per task and per source, with a warning for every
    task whose pool capped its share (naming the sources that pool holds) and for a short set."""
    total_weight = sum(entry["weight"] for entry in plan.values() if entry["weight"] > 0) or 1.0
    achieved: dict[str, Counter] = defaultdict(Counter)
    for task, sample in pairs:
        achieved[task][sample.source] += 1
    tasks, shortfalls, warnings = {}, {}, []
    for task, entry in sorted(plan.items()):
        got = sum(achieved[task].values())
        tasks[task] = {
            "weight": entry["weight"], "target": entry["target"], "available": entry["available"], "achieved": got,
            "share_target": round(max(entry["weight"], 0.0) / total_weight, 4),
            "share_achieved": round(got / len(pairs), 4) if pairs else 0.0,
            "by_source": dict(sorted(achieved[task].items())),
            "available_by_source": dict(sorted(Counter(sample.source for sample in pools[task]).items())),
        }
        if got < entry["target"]:
            shortfalls[task] = {"target": entry["target"], "drawn": got}
            sources = ", ".join(f"{source} {count:,}" for source, count in tasks[task]["available_by_source"].items())
            why = (f"its pool holds only {entry['available']:,} ({sources or 'no source'})" if entry["available"] <= got
                   else f"held in ratio with the task it is balanced with ({BALANCED})")
            warnings.append(
                f"{output}: {task} capped at {got:,} of its {entry['target']:,} target "
                f"({tasks[task]['share_achieved']:.1%} of the set instead of {tasks[task]['share_target']:.1%}): {why}")
    if len(pairs) < size:
        warnings.append(f"{output}: {len(pairs):,} rows, fewer than the {size:,} asked"
                        + ("" if fill else " (fill_shortfall is off: capped shares are not made up by other tasks)"))
    return {"target": size, "achieved": len(pairs), "fill_shortfall": fill, "tasks": tasks,
            "shortfalls": shortfalls, "warnings": warnings}


# The split each output draws from, and the config key of its size.
OUTPUT_DRAWS = {
    "stage1/train.jsonl": ("train", "stage1.size"),
    "grpo/train.parquet": ("train", "grpo.size"),
    "grpo/val.parquet": ("validate", "grpo.val_size"),
    "cold_start/candidates.parquet": ("train", "cold_start.candidates"),
    "test/xraybench.jsonl": ("test", None),
    "test/grounding.jsonl": ("test", None),
}


def empty_output_reasons(cfg: DictConfig, outputs: dict[str, list], status: dict[str, str]) -> dict[str, str]:
    """Why each output without rows has none, for the log and ``manifest.json`` (data_prep.outputs)."""
    used = ", ".join(sorted(source for source, state in status.items() if state.startswith("used"))) or "none"
    reasons = {}
    for name, rows in outputs.items():
        if rows:
            continue
        split, size_key = OUTPUT_DRAWS[name]
        if name == "test/xraybench.jsonl" and cfg.xraybench.mode == "local":
            reasons[name] = "the local XrayBench file has no items"
            continue
        if name == "test/grounding.jsonl":
            reasons[name] = ("grounding_eval.enabled is off" if not cfg.get("grounding_eval", {}).get("enabled")
                             else f"no MS-CXR phrase of a test patient (ms-cxr: {status.get('ms_cxr', 'not used')})")
            continue
        if size_key and OmegaConf.select(cfg, size_key) == 0:
            reasons[name] = f"{size_key}=0 asked for none"
            continue
        asked = f"{size_key}={OmegaConf.select(cfg, size_key)}" if size_key else (
            f"XrayBench's composition at xraybench.scale={cfg.xraybench.scale}")
        reasons[name] = (f"{asked} drew nothing: the releases used ({used}) have no {split}-split samples "
                         "of the tasks it draws (see its shortfalls)")
    return reasons


def _parsed_counts(samples: list[Sample]) -> dict[str, dict[str, dict[str, int]]]:
    counts: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for sample in samples:
        counts[sample.source][sample.task][sample.split] += 1
    return {source: {task: dict(sorted(c.items())) for task, c in sorted(tasks.items())}
            for source, tasks in sorted(counts.items())}


# Refusals: bad input or a second writer, stated in one message (no traceback), exit status 2.
REFUSALS = (SourceMissingError, SourceFileError, SkipRateError, EmptySourceError, LeakageError, OutputLockedError)


@hydra.main(config_path=str(RECIPES), config_name="build", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        manifest = build(cfg)
    except REFUSALS as error:
        print(f"data build refused ({type(error).__name__}): {error}", file=sys.stderr)
        sys.exit(2)
    except ConfigValueError as error:  # a setting to fix: the message, not a traceback
        raise SystemExit(f"data_prep.build: {error}") from None
    rows = {name: entry["rows"] for name, entry in manifest["outputs"].items()}
    sizes = {name: {"target": entry["target"], "achieved": entry["achieved"],
                    "by_task": {task: f"{t['achieved']}/{t['target']}" for task, t in entry["tasks"].items()}}
             for name, entry in manifest["outputs"].items() if "tasks" in entry}
    print(json.dumps({"out_dir": str(Path(cfg.out_dir).resolve()), "rows": rows, "sizes (achieved/target)": sizes,
                      "warnings": manifest["warnings"], "skipped": manifest["skipped"],
                      "empty_outputs": manifest["empty_outputs"]}, indent=2))
    for name, reason in manifest["empty_outputs"].items():
        print(f"WARNING: {name} is EMPTY ({reason}); stages that read it will refuse it.", file=sys.stderr)


if __name__ == "__main__":
    main()
