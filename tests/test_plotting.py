"""The plotting module (class colours, overlays, loss curves) and the tree's colours (no TensorFlow)."""

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from stardist_hier import plotting
from stardist_hier.tree import ClassTree, LabelSet, Taxonomy, TreeError, default_taxonomy


def _png_shape(path):
    import imageio.v3 as iio

    return iio.imread(path).shape


def _circles(n, shape, rng, n_rays=32):
    ang = np.linspace(0, 2 * np.pi, n_rays, endpoint=False)
    cent = np.c_[rng.uniform(12, shape[0] - 12, n), rng.uniform(12, shape[1] - 12, n)]
    rad = rng.uniform(4, 8, (n, 1))
    return np.stack([cent[:, :1] + rad * np.sin(ang), cent[:, 1:] + rad * np.cos(ang)], 1)


# ------------------------------------------------------------------------ tree colours
def test_default_taxonomy_colors_and_inheritance():
    tree = default_taxonomy().tree
    assert tree.color("epithelial_tumor") == (214, 39, 40)
    assert tree.color("inflammatory") == (44, 160, 44)
    # leaves without a colour get shades of their parent's colour, all different
    shades = [tree.color(c) for c in tree.children("inflammatory")]
    assert len(set(shades)) == len(shades)
    assert all(isinstance(v, int) and 0 <= v <= 255 for c in shades for v in c)
    # green stays the dominant channel in every shade of green
    assert all(g >= r and g >= b for r, g, b in shades)
    for node in tree.nodes:
        assert len(tree.color(node)) == 3


def test_tree_without_colors_is_deterministic_palette():
    spec = {"nucleus": {"a": ["a1", "a2"], "b": None}}
    t1, t2 = ClassTree.from_dict(spec), ClassTree.from_dict(spec)
    assert [t1.color(n) for n in t1.nodes] == [t2.color(n) for n in t2.nodes]
    assert t1.color("a") != t1.color("b")
    assert t1.colors == {}
    assert t1.to_dict() == {"nucleus": {"a": {"a1": None, "a2": None}, "b": None}}  # no "colors" key


def test_colors_round_trip_and_do_not_change_equality():
    spec = {"nucleus": {"a": ["a1", "a2"], "b": None}, "colors": {"a": "#102030", "b": [1, 2, 3]}}
    tree = ClassTree.from_dict(spec)
    assert tree.color("a") == (16, 32, 48) and tree.color("b") == (1, 2, 3)
    back = ClassTree.from_dict(json.loads(json.dumps(tree.to_dict())))
    assert back.colors == {"a": "#102030", "b": "#010203"}
    assert [back.color(n) for n in back.nodes] == [tree.color(n) for n in tree.nodes]
    plain = ClassTree.from_dict({"nucleus": {"a": ["a1", "a2"], "b": None}})
    assert plain == tree and hash(plain) == hash(tree)
    # label sets on either tree are interchangeable
    assert LabelSet(tree, {"A": "a"}) == LabelSet(plain, {"A": "a"})


def test_taxonomy_colors_key_and_config_round_trip():
    d = {"tree": {"nucleus": {"a": None, "b": None}}, "colors": {"a": "#ff0000"},
         "label_sets": {"s": {"labels": {"A": "a", "B": "b"}}}}
    tax = Taxonomy.from_dict(d)
    assert tax.tree.color("a") == (255, 0, 0)
    again = Taxonomy.from_dict(json.loads(json.dumps(tax.to_dict())))
    assert again.tree.color("a") == (255, 0, 0)
    # the full default taxonomy survives the trip through JSON (as in a model's config.json)
    t = default_taxonomy().tree
    assert ClassTree.from_dict(json.loads(json.dumps(t.to_dict()))).colors == t.colors


@pytest.mark.parametrize("bad", ["red", "#12345", [1, 2], [0, 0, 256], "#gg0000", [0.5, 0, 0]])
def test_bad_colors_raise(bad):
    with pytest.raises(TreeError, match="colour"):
        ClassTree.from_dict({"nucleus": {"a": None, "b": None}, "colors": {"a": bad}})


def test_unknown_color_node_raises():
    with pytest.raises(TreeError, match="unknown node 'zz'"):
        ClassTree.from_dict({"nucleus": {"a": None, "b": None}, "colors": {"zz": "#000000"}})


# --------------------------------------------------------------------- label colours
def test_label_colors_distinct_for_every_default_label_set():
    tax = default_taxonomy()
    for name in tax.names():
        cols = plotting.label_colors(tax[name])
        assert list(cols) == list(tax[name].labels)
        assert len(set(cols.values())) == len(cols), name
    cols = plotting.label_colors(tax["pannuke"])
    assert cols["Neoplastic"] == tax.tree.color("epithelial_tumor")
    assert cols["Inflammatory"] == tax.tree.color("inflammatory")


# ------------------------------------------------------------------------- overlays
def test_render_overlay_colours_outlines_by_class():
    img = np.zeros((40, 40, 3), np.uint8)
    lab = np.zeros((40, 40), np.int32)
    lab[5:15, 5:15] = 1
    lab[20:30, 20:30] = 2
    out = plotting.render_overlay(img, labels=lab, classes={1: "A"}, colors={"A": (255, 0, 0)})
    assert out.shape == (40, 40, 3) and out.dtype == np.float64
    assert np.allclose(out[5, 10], [1, 0, 0])  # outline of 1 in its class colour
    assert np.allclose(out[20, 25], np.array(plotting.UNCLASSIFIED_COLOR) / 255)  # 2 has no class
    assert np.allclose(out[10, 10], 0)  # interior untouched without fill
    filled = plotting.render_overlay(img, labels=lab, classes={1: "A"}, colors={"A": (255, 0, 0)},
                                     fill=True, alpha=0.5)
    assert np.allclose(filled[10, 10], [0.5, 0, 0])
    assert np.allclose(out[0, 0], 0) and np.allclose(filled[0, 0], 0)  # background untouched


def test_render_overlay_from_polygons_matches_label_image(rng):
    coord = _circles(5, (64, 64), rng)
    img = rng.uniform(0, 1, (64, 64))
    a = plotting.render_overlay(img, polygons=coord, classes=["A"] * 5, colors={"A": (0, 0, 255)})
    from skimage.draw import polygon

    lab = np.zeros((64, 64), np.int32)
    for i, c in enumerate(coord):
        rr, cc = polygon(c[0], c[1], lab.shape)
        lab[rr, cc] = i + 1
    b = plotting.render_overlay(img, labels=lab, classes={i + 1: "A" for i in range(5)}, colors={"A": (0, 0, 255)})
    assert np.allclose(a, b)
    with pytest.raises(ValueError, match="exactly one"):
        plotting.render_overlay(img)


def test_overlay_figure_writes_png_with_legend(tmp_path, rng):
    tax = default_taxonomy()
    ls = tax["consep"]
    coord = _circles(12, (96, 128), rng)
    img = (rng.uniform(0.5, 0.9, (96, 128, 3)) * 255).astype(np.uint8)
    classes = [ls.labels[i % 3] for i in range(12)]
    fig = plotting.overlay_figure([plotting.Panel(img, polygons=coord, classes=classes, title="pred"),
                                   plotting.Panel(img, polygons=coord, title="gt")],
                                  colors=plotting.label_colors(ls), default_label="nucleus", title="t")
    legend = fig.legends[0]
    names = [t.get_text() for t in legend.get_texts()]
    assert names == list(ls.labels[:3]) + ["nucleus"]  # only the classes present, in label-set order
    path = plotting.save_figure(fig, tmp_path / "ov.png")
    assert path.is_file() and _png_shape(path)[2] in (3, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["ov.png"]  # no temporary file left


def test_legend_has_default_entry_only_for_unclassified_nuclei():
    img = np.zeros((30, 30), np.uint8)
    lab = np.zeros((30, 30), np.int32)
    lab[2:10, 2:10], lab[15:25, 15:25] = 1, 2
    colors = {"A": (255, 0, 0), "B": (0, 0, 255)}

    def names(classes):
        fig = plotting.overlay_figure([plotting.Panel(img, labels=lab, classes=classes)], colors=colors,
                                      default_label="no class")
        return [t.get_text() for t in fig.legends[0].get_texts()]

    assert names({1: "A", 2: "B"}) == ["A", "B"]
    assert names({1: "B", 2: None}) == ["B", "no class"]
    assert names({1: "A"}) == ["A", "no class"]  # instance 2 has no entry
    assert names({1: "A", 2: "unknown"}) == ["A", "no class"]


def test_importing_plotting_has_no_side_effects():
    code = ("import sys, numpy as np\n"
            "import stardist_hier.plotting as p\n"
            "assert 'matplotlib' not in sys.modules\n"
            "fig = p.loss_curves_figure([dict(name='a', loss=[1, 0.5])])\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- loss curves
def _episodes():
    return [dict(name="pannuke", first_epoch=0, loss=list(np.linspace(2, 1, 10)),
                 val_loss=list(np.linspace(2.2, 1.2, 10)), best_epoch=8, best_val_loss=1.22),
            dict(name="consep", first_epoch=10, loss=list(np.linspace(1.5, 0.8, 6)),
                 val_loss=[1.6, None, 1.4, 1.3, 1.2, 1.1])]


def test_loss_curves_mark_switches_and_markers(tmp_path):
    fig = plotting.loss_curves_figure([_episodes(), _episodes()[1:]], titles=["a", "b"], title="loss")
    ax = fig.axes[0]
    def vertical(a):
        return [ln for ln in a.lines if len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1]]

    vlines = vertical(ax)
    assert len(vlines) == 1 and vlines[0].get_xdata()[0] == 10.5  # one switch, between the two episodes
    assert all(ln.get_marker() not in (None, "None", "") for ln in ax.lines if ln not in vlines)
    assert vertical(fig.axes[1]) == []  # a run with one episode has no switch
    train = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    assert np.allclose(train[1].get_xdata(), np.arange(11, 17))
    plotting.save_figure(fig, tmp_path / "loss.png")
    assert _png_shape(tmp_path / "loss.png")[0] > 100


def test_experiment_outputs_use_plotting(tmp_path, rng):
    from stardist_hier.training.experiment.outputs import plot_loss_curves, write_overlays

    history = {"episodes": [dict(name=e["name"], first_epoch=e["first_epoch"], loss=e["loss"],
                                 val_loss_episode=e["val_loss"], best_epoch=e.get("best_epoch"),
                                 best_val_loss=e.get("best_val_loss")) for e in _episodes()]}
    plot_loss_curves(history, tmp_path / "loss_curves.png", title="run")
    assert (tmp_path / "loss_curves.png").is_file()

    tax = default_taxonomy()
    cut = tax["consep"]
    lab = np.zeros((64, 64), np.int32)
    lab[5:20, 5:20], lab[30:45, 30:45] = 1, 2
    part = SimpleNamespace(X=[rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)], Y=[lab],
                           classes=[{1: "Neoplastic", 2: "Inflammatory"}], label_sets=[tax["pannuke"]])
    probs = {1: np.eye(tax.tree.n_classes + 1)[tax.tree.leaf_index("epithelial_tumor")],
             2: np.eye(tax.tree.n_classes + 1)[tax.tree.leaf_index("lymphocyte")]}
    write_overlays(part, [(lab, probs)], cut, tmp_path / "ov", "test set", n=2)
    assert [p.name for p in (tmp_path / "ov").iterdir()] == ["test_set_0.png"]


def test_run_overlays_colour_by_the_test_label_set(tmp_path, rng, monkeypatch):
    """The experiment runner's overlays (demo, benchmark): ground truth and prediction coloured by label of the cut."""
    from stardist_hier.training.experiment.outputs import write_overlays

    tax = default_taxonomy()
    consep = tax["consep"]
    lab = np.zeros((48, 48), np.int32)
    lab[5:20, 5:20] = 1
    lab[25:40, 25:40] = 2
    part = SimpleNamespace(X=[rng.uniform(0, 1, (48, 48, 3)).astype(np.float32)], Y=[lab],
                           classes=[{1: "inflammatory", 2: None}], label_sets=[consep])
    # predicted leaf probabilities (background + leaves): nucleus 1 a lymphocyte, nucleus 2 a fibroblast
    probs = {k: np.eye(tax.tree.n_classes + 1)[tax.tree.leaf_index(leaf)]
             for k, leaf in ((1, "lymphocyte"), (2, "fibroblast"))}
    seen = []
    real = plotting.overlay_figure

    def spy(panels, **kw):
        seen.append(([dict(p.classes) for p in panels], kw))
        return real(panels, **kw)

    monkeypatch.setattr(plotting, "overlay_figure", spy)
    write_overlays(part, [(lab, probs)], consep, tmp_path / "ov", "consep", n=2)
    (gt, pred), kw = seen[0]
    fibro = next(c for c in consep.labels if "fibroblast" in consep.leaf_set(c))
    assert gt == {1: "inflammatory"}  # the unlabelled nucleus gets the default colour
    assert pred == {1: "inflammatory", 2: fibro}
    assert kw["colors"] == plotting.label_colors(consep) and kw["colors"]["inflammatory"] != kw["colors"][fibro]
    assert [p.name for p in (tmp_path / "ov").iterdir()] == ["consep_0.png"]
    assert (tmp_path / "ov" / "consep_0.png").stat().st_size > 1000


# ---------------------------------------------------------------- validation curve
def _curve(shift=0.0):
    rows = []
    for g in range(1, 6):
        ep = "pre" if g <= 3 else "fine"
        for d in ("target", "source"):
            rows.append(dict(episode=ep, epoch=g if g <= 3 else g - 3, global_epoch=g, dataset=d,
                             val_loss=2.0 - 0.1 * g + shift + (d == "source"), pq=0.1 * g, mpq=0.05 * g))
    return rows


def test_validation_curve_figure(tmp_path):
    fig = plotting.validation_curve_figure(_curve(), title="curve")
    ax_loss, ax_pq = fig.axes[:2]

    def vertical(a):
        return [ln for ln in a.lines if len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1]]

    for ax in (ax_loss, ax_pq):
        assert [ln.get_xdata()[0] for ln in vertical(ax)] == [3.5]  # the switch from pre to fine
    data = [ln for ln in ax_loss.lines if ln not in vertical(ax_loss)]
    assert len(data) == 2 and np.allclose(data[0].get_xdata(), np.arange(1, 6))
    assert len([ln for ln in ax_pq.lines if ln not in vertical(ax_pq)]) == 4  # PQ and mPQ+ per dataset
    plotting.save_figure(fig, tmp_path / "curve.png")
    assert _png_shape(tmp_path / "curve.png")[0] > 100
    # means over seeds, per row of a study; CSV strings (curve.csv read back) are accepted
    as_text = [{k: str(v) for k, v in r.items()} for r in _curve(0.2)]
    fig = plotting.validation_curve_figure({"a": [_curve(), as_text], "b": [_curve()]}, datasets=["target"])
    ax_loss = fig.axes[0]
    data = [ln for ln in ax_loss.lines if ln not in vertical(ax_loss)]
    assert len(data) == 2 and np.allclose(data[0].get_ydata(), 2.1 - 0.1 * np.arange(1, 6))


def test_paired_curve_figure_draws_the_difference_with_its_t_interval():
    from stardist_hier.metrics.paired import t_interval
    from stardist_hier.plotting import paired_curve_figure

    rng = np.random.default_rng(0)
    a = [rng.normal(0.3, 0.05, 6) for _ in range(3)]
    b = [v - 0.02 + rng.normal(0, 0.02, 6) for v in a]
    fig = paired_curve_figure([8, 24, 48], a, b, labels=("st", "t"), xlabel="tiles", ylabel="mPQ+")
    right = fig.axes[1]
    line = [ln for ln in right.get_lines() if ln.get_marker() == "o"][0]
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float), [float((u - v).mean()) for u, v in zip(a, b)])
    # the error bar of the first point spans the paired t interval
    bars = [c for c in right.collections if c.get_segments()][0].get_segments()
    lo, hi = t_interval(a[0] - b[0])
    np.testing.assert_allclose(sorted(bars[0][:, 1]), [lo, hi])
    with pytest.raises(ValueError, match="same seeds"):
        paired_curve_figure([8], [a[0]], [b[0][:3]])
