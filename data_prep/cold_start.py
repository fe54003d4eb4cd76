"""Cold-start reasoning traces for stage 2: a teacher writes grounded reasoning, we keep the sound ones.

For each candidate the data build drew (``cold_start/candidates.parquet``), the teacher sees the
image at its frame size, the task prompt, the ground truth and the frame's width and height (so
its boxes come back in the frame the reward checks) and writes ``<think>...</think>`` reasoning
citing regions, then ``\\boxed{answer}``. Each trace is validated with the reward's own grammar and
normalisation (``rewards``), every rejection counted by reason; an optional verifier model then
judges consistency (paper: Qwen2.5-VL-32B). Kept traces become the LLaMA-Factory dataset
``deepmedix_cold_start`` (``cold_start/train.jsonl``); ``cold_start/report.json`` and
``rejected.jsonl`` say what was dropped and why.

Teachers: any OpenAI-compatible endpoint (``data_prep.endpoint``: local by default, cached,
retried, bounded concurrency), or the offline template teacher, which builds a trace from the
ground truth without any model, for the demo and tests. It is labelled as such in every row.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import jinja2
from omegaconf import DictConfig
from tqdm import tqdm

from data_prep import readers
from data_prep.endpoint import (CallCache, ChatEndpoint, EndpointConfig, EndpointUnavailable, RemoteEndpointRefused,
                                image_part, preflight, public_url)
from data_prep.outputs import EmptyOutputError, require_rows
from data_prep.records import SourceMissingError
from data_prep.writers import dataset_info_entry, update_dataset_info, write_json, write_jsonl
from rewards.boxes import BoxVerdict, judge_box, parse_boxes
from rewards.components import closed_answer_score, multi_object_f1, open_ended_overlap
from rewards.ground_truth import GroundTruth, GroundTruthError, parse_ground_truth
from rewards.normalize import LIST_SEPARATOR, written_answer
from rewards.response import first_reasoning, format_problem, last_boxed
from rewards.settings import ConfigValueError, check_booleans, check_counts

log = logging.getLogger("data_prep.cold_start")
HOW_TO_SERVE = ("Start one (`make serve-teacher`, or `vllm serve <model> --host 127.0.0.1 --port 8000`), or let the "
                "cold-start stage serve it: SERVE_TEACHER=1 (cold_start.serve.enabled=true)")
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
DATASET_NAME = "deepmedix_cold_start"
OFFLINE_TEACHER = "offline-template (built from the ground truth; not a model)"
COUNTS = {"size": 1, "batch_size": 1, "teacher.max_tokens": 1, "teacher.concurrency": 1, "teacher.max_retries": 0,
          "verifier.max_tokens": 1, "verifier.concurrency": 1, "verifier.max_retries": 0}  # batch_size=0: a traceback
BOOLEANS = ("teacher.allow_remote_endpoint", "verifier.allow_remote_endpoint", "verifier.enabled")  # of cold_start.yaml


@dataclass(frozen=True)
class Candidate:
    sample_id: str
    prompt: str  # the task prompt, without the <image> placeholder
    image: Path
    truth: GroundTruth

    @property
    def answer_text(self) -> str:
        return written_answer(self.truth.answer)


def load_candidates(data_dir: Path) -> list[Candidate]:
    path = data_dir / "cold_start" / "candidates.parquet"
    if not path.exists():
        raise SourceMissingError(f"{path} is missing: run the data build (make data) first")
    candidates = []
    rows = readers.parquet_rows(path, allow_empty=True)  # unreadable: SourceFileError naming the file
    require_rows(path, len(rows))  # empty: EmptyOutputError naming the data build and why
    for row in rows:
        try:
            truth = parse_ground_truth(row["answer"])
        except GroundTruthError as error:
            raise ValueError(f"{path}: candidate {row.get('sample_id')}: {error}") from None
        candidates.append(Candidate(row["sample_id"], row["prompt"].replace("<image>", "").strip(),
                                    data_dir / row["images"][0], truth))  # an absolute path stays absolute
    return candidates


# ------------------------------------------------------------------------------------ the prompts


def load_template(name: str) -> jinja2.Template:
    text = (RECIPES / "prompts" / name).read_text(encoding="utf-8")
    return jinja2.Template(text.strip(), undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


def model_prompt(candidate: Candidate, format_template: jinja2.Template) -> str:
    """The user turn the model trains on: what EasyR1 builds at GRPO time (format prompt appended)."""
    return format_template.render(content="<image>" + candidate.prompt)


def teacher_messages(candidate: Candidate, teacher: jinja2.Template, format_text: str) -> list[dict[str, Any]]:
    text = teacher.render(
        task_prompt=candidate.prompt,
        answer=candidate.answer_text,
        frame_width=candidate.truth.frame.width,
        frame_height=candidate.truth.frame.height,
        boxes=[list(box) for box in candidate.truth.boxes],
        format_prompt=format_text,
    )
    return [{"role": "user", "content": [
        image_part(candidate.image),
        {"type": "text", "text": text},
    ]}]


def verifier_messages(candidate: Candidate, trace: str, verifier: jinja2.Template) -> list[dict[str, Any]]:
    text = verifier.render(task_prompt=candidate.prompt, answer=candidate.answer_text, trace=trace,
                           frame_width=candidate.truth.frame.width, frame_height=candidate.truth.frame.height)
    return [{"role": "user", "content": [
        image_part(candidate.image),
        {"type": "text", "text": text},
    ]}]


def parse_verdict(reply: str) -> str | None:
    """"valid" / "invalid" from the verifier's first word; None if it said neither."""
    words = reply.strip().split()
    first = words[0].strip(".:*,").upper() if words else ""
    return {"VALID": "valid", "INVALID": "invalid"}.get(first)


# ---------------------------------------------------------------------------- the offline teacher


def anatomy_regions(width: int, height: int) -> dict[str, tuple[int, int, int, int]]:
    """Coarse regions of a frontal chest X-ray in a frame (the patient's left is the image's right)."""
    def box(x1, y1, x2, y2):
        return (int(x1 * width), int(y1 * height), int(x2 * width), int(y2 * height))

    return {
        "right lung": box(0.10, 0.15, 0.48, 0.85),
        "left lung": box(0.52, 0.15, 0.90, 0.85),
        "cardiac silhouette": box(0.35, 0.40, 0.72, 0.82),
        "mediastinum": box(0.40, 0.10, 0.60, 0.50),
        "right costophrenic angle": box(0.08, 0.70, 0.30, 0.90),
        "left costophrenic angle": box(0.70, 0.70, 0.92, 0.90),
    }


# Where a reader looks for a finding the question or answer names (the template's regions; a real
# teacher chooses its own). Words are matched whole.
FINDING_REGIONS = {
    "cardiomegaly": ("cardiac silhouette",), "heart": ("cardiac silhouette",),
    "effusion": ("right costophrenic angle", "left costophrenic angle"),
    "effusions": ("right costophrenic angle", "left costophrenic angle"),
    "pneumothorax": ("right lung", "left lung"),
    "tube": ("mediastinum",), "catheter": ("mediastinum",), "devices": ("mediastinum",),
}


def offline_trace(candidate: Candidate) -> str:
    """A reasoning trace assembled from the ground truth with a template. Not a model: it exists
    so the whole chain (validation, stage-2 data, training) runs without a model server."""
    frame, truth = candidate.truth.frame, candidate.truth
    regions = anatomy_regions(frame.width, frame.height)
    text = f"{candidate.prompt} {candidate.answer_text}".lower()
    steps = []
    named = [region for word in re.findall(r"[a-z]+", text) for region in FINDING_REGIONS.get(word, ())]
    wanted = [name for name in regions if any(word in text for word in name.split() if len(word) > 4)]
    for name in (list(dict.fromkeys(named + wanted)) or ["right lung", "left lung"])[:3]:
        steps.append(f"I examine the {name} {list(regions[name])}.")
    # The finding's own boxes come last, next to the answer that repeats them: written first, three
    # steps before \boxed{}, a small model's answer box did not copy its reasoning's (README, "The demo").
    first_finding_step = len(steps) + 1
    # A "locate" answer is worded apart from a presence verdict: with one wording for both, GRPO's
    # rewards for "locate" traces tipped the presence verdicts to "yes" (docs/demo_grpo.md).
    locating = truth.task == "open_ended" and bool(truth.boxes)
    for box in truth.boxes:
        written = ", ".join(str(int(round(v))) for v in box)
        steps.append(f"The phrase points to [{written}]." if locating else
                     f"The region [{written}] shows the finding in question.")
    # Each part of a long answer is written once in the reasoning and once in \boxed{}: a third copy
    # in the summary step made a small model loop on what it had already written.
    sentences = []
    if truth.task == "open_ended" and not locating:  # a report's sentences (a box answer is its finding step's box)
        sentences = [sentence.strip() + "." for sentence in truth.answer.split(".") if sentence.strip()][:6]
        steps += sentences
    if locating:
        steps.append(f"So the box of step {first_finding_step} is the answer." if len(truth.boxes) == 1 else
                     f"So the boxes of steps {first_finding_step} to {len(steps)} are the answer.")
    elif sentences:
        steps.append("Taken together, these observations make up the answer.")
    else:
        steps.append(f"Taken together, this supports the answer: {candidate.answer_text.rstrip('.')}.")
    reasoning = " ".join(f"Step {n}: {step}" for n, step in enumerate(steps, start=1))
    return f"<think>{reasoning}</think> The answer is: \\boxed{{{candidate.answer_text}}}"


# ----------------------------------------------------------------------------------- validation


def trace_problem(trace: str, truth: GroundTruth, rules: DictConfig) -> str | None:
    """Why a trace is not kept, as a reason code; None if it is."""
    form = format_problem(trace)
    if form:
        return f"format_{form}"
    reasoning = first_reasoning(trace).strip()
    if len(reasoning) < rules.min_reasoning_chars:
        return "reasoning_too_short"
    if len(reasoning) > rules.max_reasoning_chars:
        return "reasoning_too_long"
    boxes = parse_boxes(reasoning)
    verdicts = [judge_box(box, truth.frame) for box in boxes]
    for verdict in (BoxVerdict.OUTSIDE_FRAME, BoxVerdict.MALFORMED, BoxVerdict.WHOLE_IMAGE, BoxVerdict.DEGENERATE):
        if verdict in verdicts:
            return f"box_{verdict.value}"
    if len(set(boxes)) < rules.min_boxes:
        return "too_few_boxes"
    answer = last_boxed(trace)
    if truth.task == "closed":
        agrees = closed_answer_score(answer, truth.answer) == 1.0
    elif truth.task == "multi_object":
        agrees = multi_object_f1(answer, truth.answer) >= rules.multi_object_min_f1
        if agrees and len(truth.answer) > 1 and LIST_SEPARATOR not in (answer or ""):
            return "answer_list_not_separated_by_pipe"  # one list format: the upstream preset would score it 0
    else:
        agrees = open_ended_overlap(answer, truth.answer) >= rules.open_ended_min_overlap
    return None if agrees else "answer_disagrees_with_ground_truth"


# ------------------------------------------------------------------------------------- synthesis


def endpoint_config(section: DictConfig) -> EndpointConfig:
    fields = EndpointConfig.__dataclass_fields__
    return EndpointConfig(**{key: section[key] for key in fields if key in section})


def synthesize(cfg: DictConfig) -> dict[str, Any]:
    check_booleans(cfg, BOOLEANS)
    check_counts(cfg, COUNTS)
    data_dir = Path(cfg.data_dir).resolve()
    out = data_dir / "cold_start"
    candidates = load_candidates(data_dir)
    format_template = load_template(cfg.prompts.format)
    format_text = format_template.render(content="").strip()
    teacher_template = load_template(cfg.prompts.teacher)
    cache = CallCache(Path(cfg.cache_dir) if cfg.cache_dir else out / "cache")

    offline = cfg.teacher.kind == "offline"
    if cfg.teacher.kind not in ("endpoint", "offline"):
        raise ValueError(f"teacher.kind must be 'endpoint' or 'offline', got {cfg.teacher.kind!r}")
    if not offline:  # seconds, not hours of retried requests, when no teacher is listening
        preflight(endpoint_config(cfg.teacher), how_to_serve=HOW_TO_SERVE)
    if cfg.verifier.enabled:
        preflight(endpoint_config(cfg.verifier), how_to_serve=HOW_TO_SERVE)
    teacher = None if offline else ChatEndpoint(endpoint_config(cfg.teacher), cache)
    verifier = ChatEndpoint(endpoint_config(cfg.verifier), cache) if cfg.verifier.enabled else None
    verifier_template = load_template(cfg.prompts.verifier) if verifier else None
    teacher_name = OFFLINE_TEACHER if offline else f"{cfg.teacher.model} at {public_url(cfg.teacher.base_url)}"

    kept, rejected, reasons = [], [], Counter()
    progress = tqdm(total=min(cfg.size, len(candidates)), desc="cold-start traces kept", unit="trace")
    for start in range(0, len(candidates), cfg.batch_size):
        if len(kept) >= cfg.size:
            break
        batch = candidates[start : start + cfg.batch_size]
        if offline:
            traces = [offline_trace(candidate) for candidate in batch]
            errors = [None] * len(batch)
        else:
            results = teacher.complete_all([teacher_messages(c, teacher_template, format_text) for c in batch])
            traces, errors = [r.content for r in results], [r.error for r in results]
        problems = [
            "teacher_call_failed" if trace is None else trace_problem(trace, c.truth, cfg.validation)
            for c, trace in zip(batch, traces)
        ]
        if verifier:
            to_check = [i for i, problem in enumerate(problems) if problem is None]
            results = verifier.complete_all([verifier_messages(batch[i], traces[i], verifier_template) for i in to_check])
            for i, result in zip(to_check, results):
                verdict = None if result.content is None else parse_verdict(result.content)
                if result.content is None:
                    problems[i] = "verifier_call_failed"
                elif verdict is None:
                    problems[i] = "verifier_unparseable"
                elif verdict == "invalid":
                    problems[i] = "verifier_rejected"
        for candidate, trace, problem, error in zip(batch, traces, problems, errors):
            if problem is None and len(kept) < cfg.size:
                kept.append({
                    "messages": [
                        {"role": "user", "content": model_prompt(candidate, format_template)},
                        {"role": "assistant", "content": trace},
                    ],
                    "images": [candidate.image.relative_to(data_dir).as_posix()
                               if candidate.image.is_relative_to(data_dir) else str(candidate.image)],
                    "sample_id": candidate.sample_id,
                    "teacher": teacher_name,
                })
                progress.update()
            elif problem is not None:
                reasons[problem] += 1
                rejected.append({"sample_id": candidate.sample_id, "reason": problem, "error": error,
                                 "trace": (trace or "")[:2000]})
    progress.close()

    write_jsonl(out / "train.jsonl", kept)
    write_jsonl(out / "rejected.jsonl", rejected)
    update_dataset_info(data_dir, DATASET_NAME, dataset_info_entry("cold_start/train.jsonl"))
    calls = {
        "teacher": teacher.calls_made if teacher else 0,
        "verifier": verifier.calls_made if verifier else 0,
    }
    report = {
        "teacher": teacher_name,
        "verifier": f"{cfg.verifier.model} at {public_url(cfg.verifier.base_url)}" if verifier else None,
        "candidates": len(candidates),
        "considered": len(kept) + len(rejected),
        "kept": len(kept),
        "target": cfg.size,
        "rejected": dict(sorted(reasons.items())),
        "requests_sent": calls,
    }
    write_json(out / "report.json", report)
    if len(kept) < cfg.size:
        log.warning("kept %d traces, fewer than size=%d: %d candidates were not enough", len(kept), cfg.size,
                    len(candidates))
    return report


@hydra.main(config_path=str(RECIPES / "data"), config_name="cold_start", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        report = synthesize(cfg)
    except (ConfigValueError, RemoteEndpointRefused, SourceMissingError, readers.SourceFileError,
            EmptyOutputError) as error:
        # a setting or an input to fix: the message, not a traceback
        raise SystemExit(f"data_prep.cold_start: {error}") from None
    except EndpointUnavailable as error:
        log.error("cold start stopped: %s", error)
        raise SystemExit(f"cold start stopped: {error}") from None
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
