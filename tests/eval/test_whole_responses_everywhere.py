"""A prediction that holds a whole response (``<think>...</think> ... \\boxed{report}``) is read as its
final answer by every consumer of predictions, as eval.score scores it (issue 14 item 12, whole class):
the arena's judge sees the final report, the report's length figure counts the final report's words."""

import json

from eval import report
from eval.arena.judges import ReferenceJudge
from eval.arena.run import main as arena_main

REPORT = "Small left pleural effusion. No pneumothorax."
REASONING = "<think>" + " ".join(["The costophrenic angle at [10, 20, 30, 40] is blunted."] * 30) + "</think>"


def write(path, prediction):
    rows = [{"id": f"r{i}", "dataset": "mimic-cxr", "task": "findings", "reference": REPORT, "prediction": prediction}
            for i in range(6)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_arena_judges_the_final_report_not_the_reasoning(tmp_path, monkeypatch):
    seen = []
    original = ReferenceJudge.judge

    def spy(self, battles):
        seen.extend(text for battle in battles for text in (battle.report_a, battle.report_b))
        return original(self, battles)

    monkeypatch.setattr(ReferenceJudge, "judge", spy)
    whole = write(tmp_path / "whole.jsonl", f"{REASONING} The report is: \\boxed{{{REPORT}}}")
    plain = write(tmp_path / "plain.jsonl", REPORT)
    assert arena_main([f"--model=whole={whole}", f"--model=plain={plain}", "--judge", "reference", "--budget", "6",
                       "--bootstrap", "0", "--out", str(tmp_path / "out")]) == 0
    assert seen and set(seen) == {REPORT}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["verdicts"]["tie"] == summary["judgments"]  # the same report: every battle a tie


def test_the_length_figure_counts_the_final_report(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    write(run / "predictions.jsonl", f"{REASONING} \\boxed{{{REPORT}}}")
    plotted = {}
    monkeypatch.setattr(report.plt.Axes, "hist", lambda axis, lengths, **kwargs: plotted.setdefault(kwargs["label"], lengths))
    assert report.length_figure({"whole": run}, tmp_path / "lengths.png")
    assert plotted["whole"] == plotted["ground truth"] == [len(REPORT.split())] * 6
    assert json.loads((run / "predictions.jsonl").read_text().splitlines()[0])["prediction"].startswith("<think>")  # file unchanged



def test_the_viewer_shows_the_final_answer_and_the_reasoning_as_steps(tmp_path):
    from eval.viewer.items import load_view_items

    (tmp_path / "test").mkdir()
    items = tmp_path / "test" / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"r{i}", "task": "findings", "images": [f"images/{i}.jpg"],
                                         "prompt": "Describe the findings.", "answer": REPORT}) + "\n" for i in range(6)))
    whole = write(tmp_path / "whole.jsonl", f"{REASONING} \\boxed{{{REPORT}}}")
    view = load_view_items(items, {"whole": whole}, None, 0, False)
    shown = view[0].predictions[0]
    assert shown["prediction"] == REPORT and shown["reasoning"].startswith("The costophrenic angle")
    assert "<think>" in shown["raw_output"]
