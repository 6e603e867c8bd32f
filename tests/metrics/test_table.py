import csv
import io

from stardist_hier.metrics import format_csv, format_markdown, pq_conic, pq_pannuke, tidy_rows

from .test_conventions import two_images


def test_tidy_rows_of_a_class_report():
    gts, preds = two_images()
    r = pq_conic(gts, preds, [{1: "x", 2: "y"}] * 2, [{1: "x", 7: "x"}] * 2)
    rows = tidy_rows(r)
    assert [(row["kind"], row["label"]) for row in rows] == [("binary", ""), ("class", "x"), ("class", "y"),
                                                            ("mean", "mPQ+")]
    assert rows[0]["pq"] == r.pq and rows[1]["tp"] == r.per_class["x"].tp and rows[3]["pq"] == r.mpq
    assert rows[3]["dq"] == ""


def test_markdown_and_csv():
    gts, preds = two_images()
    r = pq_pannuke(gts, preds, [{1: 1, 2: 2}] * 2, [{1: 1, 7: 1}] * 2, tissues=["a", "b"])
    rows = tidy_rows([r])
    md = format_markdown(rows, columns=("kind", "label", "pq"))
    lines = md.splitlines()
    assert lines[0] == "| kind | label | pq |"
    assert "| class | 2 | 0.0000 |" in lines       # its one ground-truth nucleus is missed
    assert "| tissue mPQ | a | 1.0000 |" in lines
    parsed = list(csv.DictReader(io.StringIO(format_csv(rows))))
    assert len(parsed) == len(rows)
    assert float(parsed[0]["pq"]) == r.pq
    assert parsed[0]["convention"] == "pannuke"
