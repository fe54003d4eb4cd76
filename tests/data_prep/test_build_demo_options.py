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
