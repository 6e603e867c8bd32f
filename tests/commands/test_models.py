"""``stardist-hier models``: the shipped registry listed and shown, unknown names in one line (downloads,
fetch and the model cache: tests/models/test_pretrained.py)."""

import json

from stardist_hier.cli import main


def test_list_and_json(capsys):
    assert main(["models", "list"]) == 0
    assert "he_consep_nucls" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert "he_consep_nucls" in json.dumps(entries)


def test_show_a_shipped_model(capsys):
    assert main(["models", "show", "he_consep_nucls"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("he_consep_nucls: ") and "licence:" in out and "shipped with the package" in out


def test_unknown_name_is_one_line(capsys):
    assert main(["models", "show", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stardist-hier models: error: unknown pretrained model 'nope'")
