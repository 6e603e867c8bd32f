"""``stardist-hier export``: refusals before anything is loaded or written (exports of a trained model,
end to end: tests/models/test_export.py::test_export_command)."""

from stardist_hier.cli import main


def test_out_never_replaces_the_model_folder(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    for out, verb in ((model, "is"), (tmp_path, "holds")):
        assert main(["export", str(model), "--to", "stardist", "--out", str(out), "--force"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"stardist-hier export: error: --out {out} {verb} the model folder {model}; an export "
                       "never replaces a model folder: choose another --out")
    assert [p.name for p in model.iterdir()] == ["config.json"]


def test_existing_out_needs_force(tmp_path, capsys):
    out = tmp_path / "model.zip"
    out.write_bytes(b"old")
    assert main(["export", str(tmp_path / "model"), "--to", "qupath", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"stardist-hier export: error: --out {out} exists; pass --force to replace it"
    assert out.read_bytes() == b"old"
