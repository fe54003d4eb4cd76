import json

from eval.predictions import PredictionWriter, extract_answer, load_predictions, read_finished


def test_answer_extraction():
    assert extract_answer("<think>lung [1, 2, 30, 40]</think> The answer is \\boxed{Yes}.") == {
        "prediction": "Yes", "reasoning": "lung [1, 2, 30, 40]", "boxes": [[1.0, 2.0, 30.0, 40.0]]}
    assert extract_answer("<think>r</think> No acute process.")["prediction"] == "No acute process."
    assert extract_answer("Plain report text.")["prediction"] == "Plain report text."
    assert extract_answer("\\boxed{a} then \\boxed{b}")["prediction"] == "b"


def test_a_killed_run_leaves_no_duplicate_and_no_loss(tmp_path):
    path = tmp_path / "predictions.jsonl"
    writer = PredictionWriter(path)
    writer.write([{"id": "a", "dataset": "d", "task": "vqa", "prediction": "yes", "reference": "yes"}])
    writer.close()
    with path.open("ab") as handle:  # the process died in the middle of the next line
        handle.write(b'{"id": "b", "dataset": "d", "ta')
    assert [row["id"] for row in read_finished(path)] == ["a"]
    assert path.read_bytes().endswith(b'"ta')  # reading alone does not modify the file
    assert [row["id"] for row in read_finished(path, repair=True)] == ["a"]
    writer = PredictionWriter(path)
    writer.write([{"id": "b", "dataset": "d", "task": "vqa", "prediction": "no", "reference": "yes"}])
    writer.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]


def test_rows_missing_fields_are_reported(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "task": "vqa"}) + "\n" + json.dumps(
        {"id": "b", "dataset": "d", "task": "vqa", "prediction": "yes", "reference": "yes"}) + "\n")
    rows, problems = load_predictions(path)
    assert [r["id"] for r in rows] == ["b"] and "missing ['dataset', 'prediction', 'reference']" in problems[0]
