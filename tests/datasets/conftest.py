"""Synthetic datasets written to tmp_path in their exact native layouts, with known answers."""

from pathlib import Path

import numpy as np
import pytest


def write_png(path, arr):
    from skimage.io import imsave

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, np.asarray(arr), check_contrast=False)
    return path


def write_tif(path, arr):
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.asarray(arr))
    return path


def random_image(rng, h, w, c=3):
    return rng.integers(0, 256, (h, w, c), dtype=np.uint8)


# ----------------------------------------------------------------------------- PanNuke
def write_pannuke_fold(root, fold, images, masks, types):
    base = Path(root) / f"Fold {fold}"
    (base / "images" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
    (base / "masks" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
    np.save(base / "images" / f"fold{fold}" / "images.npy", images)
    np.save(base / "images" / f"fold{fold}" / "types.npy", np.asarray(types))
    np.save(base / "masks" / f"fold{fold}" / "masks.npy", masks)
    return base


@pytest.fixture
def pannuke_root(tmp_path, rng):
    """Fold 1 with 2 patches of 64x64 (float64), fold 2 with 1 patch.

    Patch 0 of fold 1:
    - ch0 Neoplastic id 7: [5:15, 5:15] (100 px)
    - ch1 Inflammatory id 3: [20:30, 20:30] (100 px)
    - ch2 Connective id 12: [40:50, 5:15] (100 px)
    - ch3 Dead id 5: [14:20, 14:20] (36 px), overlapping ch0 at the single pixel (14, 14)
    - ch4 Non-neoplastic epithelial id 9: [40:50, 40:50] (100 px) and a second component
      [55:58, 55:58] (9 px)
    - ch5 background = 1 wherever no instance, except a void block [60:64, 0:4] (16 px)
    Patch 1 of fold 1: no nuclei. Fold 2 patch 0: one Inflammatory nucleus id 40 at [0:8, 0:8].
    """
    h = w = 64
    imgs = rng.integers(0, 256, (2, h, w, 3)).astype(np.float64)
    masks = np.zeros((2, h, w, 6), np.float64)
    m = masks[0]
    m[5:15, 5:15, 0] = 7
    m[20:30, 20:30, 1] = 3
    m[40:50, 5:15, 2] = 12
    m[14:20, 14:20, 3] = 5
    m[40:50, 40:50, 4] = 9
    m[55:58, 55:58, 4] = 9
    for k in range(2):
        masks[k, ..., 5] = (masks[k, ..., :5].sum(-1) == 0).astype(np.float64)
    masks[0, 60:64, 0:4, 5] = 0  # void
    write_pannuke_fold(tmp_path, 1, imgs, masks, ["Breast", "Colon"])
    imgs2 = rng.integers(0, 256, (1, h, w, 3)).astype(np.float64)
    masks2 = np.zeros((1, h, w, 6), np.float64)
    masks2[0, 0:8, 0:8, 1] = 40
    masks2[0, ..., 5] = (masks2[0, ..., 1] == 0)
    write_pannuke_fold(tmp_path, 2, imgs2, masks2, ["Liver"])
    return tmp_path, imgs, masks


# ----------------------------------------------------------------------------- CoNSeP
@pytest.fixture
def consep_root(tmp_path, rng):
    """Train/train_1 (RGBA PNG, 4 nuclei of types 4, 5, 2, 7) and Test/test_1 (RGB, 1 nucleus of type 3)."""
    from scipy.io import savemat

    root = tmp_path / "CoNSeP"
    rgba = random_image(rng, 40, 40, 4)
    write_png(root / "Train" / "Images" / "train_1.png", rgba)
    inst = np.zeros((40, 40), np.int32)
    inst[2:8, 2:8] = 1
    inst[10:16, 10:16] = 2
    inst[20:26, 2:8] = 3
    inst[30:36, 30:36] = 4
    inst_type = np.array([[4], [5], [2], [7]])
    type_map = np.zeros_like(inst)
    for i, t in enumerate(inst_type.ravel(), 1):
        type_map[inst == i] = t
    (root / "Train" / "Labels").mkdir(parents=True)
    savemat(root / "Train" / "Labels" / "train_1.mat",
            {"inst_map": inst, "type_map": type_map, "inst_type": inst_type,
             "inst_centroid": np.array([[5, 5], [13, 13], [5, 23], [33, 33]], float)})
    rgb = random_image(rng, 30, 30)
    write_png(root / "Test" / "Images" / "test_1.png", rgb)
    inst2 = np.zeros((30, 30), np.int32)
    inst2[5:10, 5:10] = 1
    (root / "Test" / "Labels").mkdir(parents=True)
    savemat(root / "Test" / "Labels" / "test_1.mat",
            {"inst_map": inst2, "type_map": inst2 * 3, "inst_type": np.array([[3]]),
             "inst_centroid": np.array([[7, 7]], float)})
    return tmp_path, rgba, inst


# ----------------------------------------------------------------------------- MoNuSAC
def region_xml(rid, pts):
    verts = "".join(f'<Vertex X="{x}" Y="{y}" Z="0"/>' for x, y in pts)
    return f'<Region Id="{rid}" Type="0"><Attributes/><Vertices>{verts}</Vertices></Region>'


def annotation_xml(blocks, mpp=0.25):
    """``blocks``: list of (class name, [vertex lists])."""
    out = [f'<?xml version="1.0"?><Annotations MicronsPerPixel="{mpp}">']
    for i, (name, regions) in enumerate(blocks, 1):
        out.append(f'<Annotation Id="{i}" Name="" Type="4"><Attributes>'
                   f'<Attribute Name="{name}" Id="0" Value=""/></Attributes><Regions>'
                   f'<RegionAttributeHeaders/>')
        out += [region_xml(k, pts) for k, pts in enumerate(regions, 1)]
        out.append("</Regions><Plots/></Annotation>")
    out.append("</Annotations>")
    return "".join(out)


MONUSAC_BLOCKS = [
    ("Epithelial", [
        [(2.5, 2.5), (12.5, 2.5), (12.5, 12.5), (2.5, 12.5)],
        # repeated vertices (consecutive and closing)
        [(20.0, 2.0), (20.0, 2.0), (30.0, 2.0), (30.0, 10.0), (30.0, 10.0), (20.0, 10.0), (20.0, 2.0)],
    ]),
    ("Lymphocyte", []),  # empty block
    ("Macrophage", [
        # self-crossing bow tie: two triangles meeting at (10, 30)
        [(2.0, 22.0), (18.0, 38.0), (18.0, 22.0), (2.0, 38.0)],
    ]),
    ("Ambiguous", [[(30.0, 30.0), (38.0, 30.0), (38.0, 38.0), (30.0, 38.0)]]),
]


@pytest.fixture
def monusac_root(tmp_path, rng):
    """Patient P1 with P1_1.xml (blocks above) and P1_1.tif (RGBA written as BGRA)."""
    rgb = random_image(rng, 40, 40)
    bgra = np.concatenate([rgb[..., ::-1], np.full((40, 40, 1), 255, np.uint8)], axis=-1)
    d = tmp_path / "MoNuSAC" / "P1"
    write_tif(d / "P1_1.tif", bgra)
    (d / "P1_1.xml").write_text(annotation_xml(MONUSAC_BLOCKS))
    return tmp_path / "MoNuSAC", rgb


# ----------------------------------------------------------------------------- Lizard / CoNIC
@pytest.fixture
def lizard_root(tmp_path, rng):
    """consep_1 with inst ids {3, 8, 11}; id/class rows permuted: (11, 6), (3, 2), (8, 1)."""
    from scipy.io import savemat

    root = tmp_path / "lizard"
    img = random_image(rng, 32, 32)
    write_png(root / "Lizard_Images1" / "consep_1.png", img)
    inst = np.zeros((32, 32), np.int32)
    inst[2:8, 2:8] = 3
    inst[10:16, 10:16] = 8
    inst[20:26, 20:26] = 11
    (root / "Lizard_Labels" / "Labels").mkdir(parents=True)
    savemat(root / "Lizard_Labels" / "Labels" / "consep_1.mat",
            {"inst_map": inst, "id": np.array([[11], [3], [8]]), "class": np.array([[6], [2], [1]]),
             "bbox": np.zeros((3, 4)), "centroid": np.zeros((3, 2))})
    img2 = random_image(rng, 16, 16)
    write_png(root / "Lizard_Images2" / "glas_1.png", img2)
    inst2 = np.zeros((16, 16), np.int32)
    inst2[1:5, 1:5] = 2
    savemat(root / "Lizard_Labels" / "Labels" / "glas_1.mat",
            {"inst_map": inst2, "id": np.array([[2]]), "class": np.array([[3]])})
    (root / "Lizard_Labels" / "info.csv").write_text(
        "Filename,Source,Split\nconsep_1,test_14,3\nglas_1,testB_10,1\n")
    return root, img, inst


@pytest.fixture
def conic_root(tmp_path, rng):
    """2 patches 32x32; patch 0: id 5 class 3, id 2 class 6, id 9 class 0 (unknown)."""
    root = tmp_path / "conic"
    root.mkdir()
    imgs = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    labels = np.zeros((2, 32, 32, 2), np.uint16)
    labels[0, 2:8, 2:8] = (5, 3)
    labels[0, 10:16, 10:16] = (2, 6)
    labels[0, 20:26, 20:26, 0] = 9
    labels[1, 0:4, 0:4] = (1, 2)
    np.save(root / "images.npy", imgs)
    np.save(root / "labels.npy", labels.astype(np.float64))  # integer values in a float array
    (root / "patch_info.csv").write_text("patch_info\nconsep_3-0000\nglas_1-0001\n")
    return root, imgs, labels


# ----------------------------------------------------------------------------- helpers as fixtures
@pytest.fixture
def native():
    """The writer helpers of this module: ``native.png``, ``native.tif``, ``native.pannuke_fold``, ``native.xml``."""
    from types import SimpleNamespace

    return SimpleNamespace(png=write_png, tif=write_tif, pannuke_fold=write_pannuke_fold, xml=annotation_xml,
                           monusac_blocks=MONUSAC_BLOCKS)
