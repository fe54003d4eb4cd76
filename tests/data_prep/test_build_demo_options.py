"""The build options the learning demo uses: keeping only some VQA question types, and "locate
<phrase>" rows in the cold-start candidates and the GRPO set."""

import json

import pandas as pd

from data_prep.build import build
from rewards.ground_truth import parse_ground_truth


def test_question_types_keep_only_the_listed_ones_and_say_what_they_left_out(releases, tmp_path, make_config):
    out = tmp_path / "presence-only"
    manifest = build(make_config(releases[0], out, "vqa.question_types=[presence]"))
    rows = [json.loads(line) for line in (out / "stage1" / "train.jsonl").read_text().splitlines()]
    questions = [row["messages"][0]["content"] for row in rows]
    assert any("evidence of" in q or q.startswith("<image>Is there") for q in questions)
    assert not any("which view" in q.lower() or "what level" in q.lower() for q in questions)
    sources = manifest["sources"]
    assert "left out by vqa.question_types" in sources["medical_cxr_vqa"]
    assert "'view'" in sources["medical_cxr_vqa"] and "'gender'" in sources["mimic_ext_vqa"]


def test_locate_rows_carry_their_boxes_and_an_id_of_their_own(releases, tmp_path, make_config):
    out = tmp_path / "locate"
    # few MS-CXR phrases in the small world: GRPO takes a handful, the cold start (never the same
    # samples) the rest, drawn both as presence questions and as "locate"
    grpo = "{findings: 0, impression: 0, vqa: 0.5, grounding: 0, grounding_absent: 0, grounding_phrase_to_box: 0.5}"
    cold = "{findings: 0, impression: 0, vqa: 0, grounding: 0.5, grounding_absent: 0, grounding_phrase_to_box: 0.5}"
    build(make_config(releases[0], out, f"grpo.weights={grpo}", f"cold_start.weights={cold}",
                      "grpo.size=6", "cold_start.candidates=40"))
    for name in ("grpo/train.parquet", "cold_start/candidates.parquet"):
        frame = pd.read_parquet(out / name)
        locate = frame[frame["prompt"].str.contains("Locate the finding")]
        assert len(locate) > 0, name
        assert frame["sample_id"].is_unique, name  # a phrase drawn both ways keeps two ids
        for _, row in locate.iterrows():
            assert row["sample_id"].endswith("#locate")
            truth = parse_ground_truth(row["answer"])
            assert truth.task == "open_ended" and truth.boxes  # box text scored as text, boxes for IoU
            assert truth.answer.startswith("[")


def test_the_default_build_draws_no_locate_rows_for_grpo(built):
    out, _ = built
    assert not pd.read_parquet(out / "grpo" / "train.parquet")["prompt"].str.contains("Locate the finding").any()


def test_balance_yes_no_sets_the_commoner_answer_aside_for_stage_1_and_counts_it(releases, tmp_path, make_config):
    """GRPO's VQA pool is drawn down to as many "yes" as "no" questions; what is set aside is neither
    lost nor drawn twice: it stays in stage 1's pool, and the manifest counts it."""
    from rewards.normalize import normalize_answer

    grpo = "{findings: 0, impression: 0, vqa: 1, grounding: 0, grounding_absent: 0}"
    sizes = ["grpo.size=100000", "grpo.val_size=100000", "stage1.size=100000"]  # every pool whole
    runs = {}
    for balance in ("false", "true"):
        out = tmp_path / balance
        manifest = build(make_config(releases[0], out, f"grpo.weights={grpo}", *sizes,
                                     f"grpo.balance_yes_no={balance}"))
        truths = [parse_ground_truth(a) for a in pd.read_parquet(out / "grpo" / "train.parquet")["answer"]]
        answers = [normalize_answer(truth.answer) for truth in truths if truth.task == "closed"]
        stage1_rows = len((out / "stage1" / "train.jsonl").read_text().splitlines())
        runs[balance] = (answers, manifest, stage1_rows)
    unbalanced, _, stage1_unbalanced = runs["false"]
    answers, manifest, stage1_rows = runs["true"]
    assert unbalanced.count("no") != unbalanced.count("yes")  # the small world's VQA answers lean one way
    assert answers.count("yes") == answers.count("no") == min(unbalanced.count("yes"), unbalanced.count("no"))
    set_aside = manifest["outputs"]["grpo/train.parquet"]["vqa_yes_no_set_aside"]
    assert sum(set_aside.values()) == len(unbalanced) - len(answers) > 0
    assert stage1_rows == stage1_unbalanced + sum(set_aside.values())  # every pool whole: stage 1 takes them
    assert "vqa_yes_no_set_aside" not in runs["false"][1]["outputs"]["grpo/train.parquet"]
