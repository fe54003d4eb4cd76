"""The README's deviation table: one section, one four-column table, so rows added by different
changes merge into a table that still renders."""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def deviation_rows() -> list[list[str]]:
    text = README.read_text()
    assert text.count("\n## Deviations from the paper\n") == 1
    section = text.split("\n## Deviations from the paper\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.replace("\\|", "").strip("|").split("|")] for line in lines]


def test_one_four_column_table():
    rows = deviation_rows()
    assert rows[0] == ["paper", "released code", "this project", "why"] and set(rows[1]) == {"---"}
    assert all(len(row) == 4 for row in rows), [row for row in rows if len(row) != 4]


def test_it_declares_the_grpo_objective_lengths_and_metrics():
    topics = " ".join(row[0] for row in deviation_rows()[2:])
    for topic in ("GRPO clip", "Dual clip", "Loss averaging", "KL reference", "Response length", "F1-RadGraph",
                  "Average", "r_coo", "Report Arena scores"):
        assert topic in topics, topic


def test_deviations_are_declared_in_the_table_only():
    """One place for deviations: no other section keeps its own list (a user reads the table)."""
    text = README.read_text()
    outside = text.split("\n## Deviations from the paper\n", 1)[0]
    assert not [line for line in outside.splitlines() if line.lstrip().startswith("Deviations")]
    topics = " ".join(row[0] for row in deviation_rows()[2:])
    for topic in ("Report Arena judge", "Table 1's baselines"):
        assert topic in topics, topic
