"""Source parsers on small hand-written inputs: one quirk per test."""

import json
from pathlib import Path

import pytest

from data_prep import medical_cxr_vqa, mimic_ext_vqa, ms_cxr, openi
from data_prep.mimic_cxr import MimicImage, MimicIndex
from data_prep.records import SkipLog, SourceMissingError

DICOM = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"


def mimic_index(split="train") -> MimicIndex:
    index = MimicIndex()
    index.images[DICOM] = MimicImage(DICOM, "10000032", "50414267", "PA", 2544, 3056, split, Path("/x"))
    index.subject_split["10000032"] = split
    return index


def test_openi_split_is_stable_and_proportional():
    splits = [openi.stable_split(str(uid), 0.2, 0.05, 0) for uid in range(4000)]
    assert splits == [openi.stable_split(str(uid), 0.2, 0.05, 0) for uid in range(4000)]
    assert 0.17 < splits.count("test") / 4000 < 0.23 and 0.03 < splits.count("validate") / 4000 < 0.07
    assert splits != [openi.stable_split(str(uid), 0.2, 0.05, 1) for uid in range(4000)]


def test_openi_xml_release(tmp_path):
    (tmp_path / "ecgen-radiology").mkdir()
    (tmp_path / "ecgen-radiology" / "1.xml").write_text(
        '<eCitation><MedlineCitation><Article><Abstract>'
        '<AbstractText Label="FINDINGS">The heart is XXXX. Lungs clear.</AbstractText>'
        '<AbstractText Label="IMPRESSION">Normal chest x-XXXX.</AbstractText>'
        '</Abstract></Article></MedlineCitation><parentImage id="CXR1_1_IM-0001-3001"></parentImage></eCitation>'
    )
    (tmp_path / "ecgen-radiology" / "2.xml").write_text(
        '<eCitation><AbstractText Label="FINDINGS"></AbstractText><AbstractText Label="IMPRESSION">No acute '
        'disease.</AbstractText><parentImage id="CXR2_IM-0652-1001"/></eCitation>'
    )
    (tmp_path / "ecgen-radiology" / "3.xml").write_text("<broken")
    skips = SkipLog()
    samples = openi.report_samples(tmp_path, "___", 0.2, 0.05, 0, skips)
    by_id = {s.sample_id: s for s in samples}
    assert by_id["openi/findings/1"].answer == "The heart is ___. Lungs clear."
    assert by_id["openi/impression/1"].answer == "Normal chest x-___."
    assert by_id["openi/findings/1"].image == tmp_path / "images" / "CXR1_1_IM-0001-3001.png"
    assert "openi/findings/2" not in by_id and "openi/impression/2" in by_id
    assert skips.counts()["openi"] == {"malformed_xml": 1, "no_findings_section": 1}


def test_openi_without_a_release_is_a_clear_error(tmp_path):
    with pytest.raises(SourceMissingError, match="neither indiana_reports.csv"):
        openi.report_samples(tmp_path, "___", 0.2, 0.05, 0, SkipLog())


def test_ms_cxr_coco_groups_boxes_and_ignores_its_own_split(tmp_path):
    coco = {
        "images": [{"id": 1, "file_name": f"{DICOM}.jpg", "path": "files/p10/...", "width": 2544, "height": 3056}],
        "categories": [{"id": 3, "name": "Pleural Effusion"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [100, 200, 300, 400], "label_text": "Bilateral effusions."},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [1500, 200, 300, 400], "label_text": "Bilateral effusions."},
            {"id": 3, "image_id": 1, "category_id": 3, "bbox": [2400, 200, 300, 400], "label_text": "Too wide."},
            {"id": 4, "image_id": 9, "category_id": 3, "bbox": [1, 1, 2, 2], "label_text": "Unknown image."},
        ],
    }
    (tmp_path / "MS_CXR_Local_Alignment_v1.1.0.json").write_text(json.dumps(coco))
    skips = SkipLog()
    (sample,) = ms_cxr.grounding_samples(tmp_path, mimic_index(split="test"), skips)
    assert sample.boxes == ((100.0, 200.0, 400.0, 600.0), (1500.0, 200.0, 1800.0, 600.0))
    assert sample.split == "test" and sample.subject == "mimic:10000032" and sample.subtype == "Pleural Effusion"
    assert skips.counts()["ms-cxr"] == {"box_outside_image": 1, "malformed_row": 1}


def test_ms_cxr_size_must_agree_with_mimic(tmp_path):
    (tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv").write_text(
        "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split\n"
        f"{DICOM},Edema,Mild edema.,files/x.jpg,10,10,50,50,1000,1000,train\n"
    )
    skips = SkipLog()
    assert ms_cxr.grounding_samples(tmp_path, mimic_index(), skips) == []
    assert skips.counts()["ms-cxr"] == {"image_size_disagrees_with_mimic": 1}


def test_ext_vqa_types_lists_and_unknown_types(tmp_path):
    (tmp_path / "dataset").mkdir()
    base = {"split": "train", "subject_id": "10000032", "study_id": "50414267", "image_id": DICOM,
            "image_path": f"p10/p10000032/s50414267/{DICOM}.jpg", "template": "t", "template_program": "program_1",
            "template_arguments": {}}
    records = [
        {**base, "idx": 0, "question": "Is there atelectasis?", "semantic_type": "verify", "content_type": "presence", "answer": ["yes"]},
        {**base, "idx": 1, "question": "List abnormalities.", "semantic_type": "query", "content_type": "abnormality", "answer": ["atelectasis", "edema"]},
        {**base, "idx": 2, "question": "Any devices?", "semantic_type": "query", "content_type": "presence", "answer": []},
        {**base, "idx": 3, "question": "Weather?", "semantic_type": "query", "content_type": "weather", "answer": ["sunny"]},
        {**base, "idx": 4, "question": "Is it?", "semantic_type": "verify", "content_type": "presence", "answer": []},
    ]
    (tmp_path / "dataset" / "train.json").write_text(json.dumps(records, indent=4))
    skips = SkipLog()
    samples = mimic_ext_vqa.vqa_samples(tmp_path, mimic_index(), {"presence": "multi_object", "abnormality": "multi_object"}, skips)
    assert [(s.answer_kind, s.answer) for s in samples] == [
        ("closed", "yes"), ("multi_object", ("atelectasis", "edema")), ("multi_object", ()),
    ]
    assert skips.counts()["mimic-ext-vqa"] == {"closed_question_without_single_answer": 1, "unknown_question_type": 1}


def test_medical_cxr_vqa_splits_lists_and_counts_malformed_rows(tmp_path):
    (tmp_path / "medical_cxr_vqa_questions.csv").write_text(
        "subject_id,study_id,dicom_id,question_type,question,answer,split\n"
        f"10000032,50414267,{DICOM},abnormality,what abnormalities are seen?,\"atelectasis, edema\",train\n"
        f"10000032,50414267,{DICOM},view,which view is this?,postero-anterior,train\n"
        f"10000032,50414267,{DICOM},view,too,many,fields,here\n"
        f"10000032,50414267,{DICOM},mood,how is it?,fine,train\n"
        f"10000032,50414267,ffffffff-0000,presence,is there edema?,yes,train\n"
    )
    skips = SkipLog()
    kinds = {"abnormality": "multi_object", "view": "closed", "presence": "closed"}
    samples = medical_cxr_vqa.vqa_samples(tmp_path, mimic_index(), kinds, skips)
    assert [(s.answer_kind, s.answer) for s in samples] == [
        ("multi_object", ("atelectasis", "edema")), ("closed", "postero-anterior"),
    ]
    assert skips.counts()["medical-cxr-vqa"] == {
        "image_not_in_mimic_metadata": 1, "malformed_row": 1, "unknown_question_type": 1,
    }
