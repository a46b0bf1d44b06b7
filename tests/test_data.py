"""Data layer: each reader is run on tiny files written in the real on-disk format."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from losspath.data import Dataset, Split, dataset_names, default_data_root, load_dataset
from losspath.data.augment import random_crop, random_flip, random_flip_crop
from losspath.errors import LosspathError

# ---------------------------------------------------------------------------------------------- registry


def test_dataset_names_default_first():
    names = dataset_names()
    assert names[0] == "mnist1d"
    assert set(names) == {"mnist1d", "digits", "mnist5k", "mnist", "cifar10", "imagenet"}


def test_unknown_name_lists_known_names(tmp_path):
    with pytest.raises(LosspathError) as e:
        load_dataset("fashion", tmp_path)
    for name in dataset_names():
        assert name in str(e.value)


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("LOSSPATH_DATA", str(tmp_path / "d"))
    assert default_data_root() == tmp_path / "d"
    monkeypatch.delenv("LOSSPATH_DATA")
    assert default_data_root() == Path.home() / ".losspath" / "data"


def test_root_none_uses_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LOSSPATH_DATA", str(tmp_path))
    with pytest.raises(LosspathError, match=str(tmp_path / "MNIST" / "raw")):
        load_dataset("mnist")


# ---------------------------------------------------------------------------------------------- mnist1d


@pytest.fixture(scope="module")
def mnist1d_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist1d_root")
    load_dataset("mnist1d", root)
    return root


def test_mnist1d_shapes_and_cache(mnist1d_root, monkeypatch):
    cache = mnist1d_root / "mnist1d" / "mnist1d.safetensors"
    assert cache.is_file()
    first = load_dataset("mnist1d", mnist1d_root)

    import mnist1d.data

    def no_regeneration(*a, **k):
        raise AssertionError("regenerated although the cache is valid")

    monkeypatch.setattr(mnist1d.data, "make_dataset", no_regeneration)
    second = load_dataset("mnist1d", mnist1d_root)
    ds = first
    assert isinstance(ds, Dataset) and ds.name == "mnist1d" and ds.augment is None
    assert ds.train.inputs.shape == (4000, 1, 40) and ds.test.inputs.shape == (1000, 1, 40)
    assert ds.train.inputs.dtype == torch.float32 and ds.train.targets.dtype == torch.int64
    assert ds.num_classes == 10 and ds.input_shape == (1, 40)
    assert set(ds.train.targets.tolist()) == set(range(10))
    for a, b in ((first.train, second.train), (first.test, second.test)):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


def test_mnist1d_corrupt_cache_is_regenerated_identically(mnist1d_root, tmp_path):
    reference = load_dataset("mnist1d", mnist1d_root)
    cache = tmp_path / "mnist1d" / "mnist1d.safetensors"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"not a safetensors file")
    np_before, torch_before = np.random.get_state()[1].copy(), torch.get_rng_state()
    ds = load_dataset("mnist1d", tmp_path)
    # make_dataset reseeds numpy globally; the loader must put the global state back.
    assert np.array_equal(np.random.get_state()[1], np_before)
    assert torch.equal(torch.get_rng_state(), torch_before)
    assert torch.equal(ds.train.inputs, reference.train.inputs)
    assert torch.equal(ds.test.targets, reference.test.targets)
    assert cache.stat().st_size > 1000  # rewritten with the real arrays


# ---------------------------------------------------------------------------------------------- mnist5k


def test_mnist5k_is_mlxtends_digits_split_4000_1000_and_normalized_as_mnist(tmp_path, monkeypatch):
    from losspath.data import mnist5k

    ds = load_dataset("mnist5k", tmp_path)
    assert ds.name == "mnist5k" and ds.num_classes == 10 and ds.input_shape == (1, 28, 28)
    assert ds.train.inputs.shape == (4000, 1, 28, 28) and ds.test.inputs.shape == (1000, 1, 28, 28)
    assert ds.train.targets.bincount().tolist() == [400] * 10 and ds.test.targets.bincount().tolist() == [100] * 10
    # x = (p/255 − 0.1307)/0.3081: black pixels at −0.42421296, white at 2.82148671 (MNIST's statistics)
    assert ds.train.inputs.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-6)
    assert ds.train.inputs.max().item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-6)
    # the two splits are the file's 5,000 digits, each once: undo the normalization and compare rows
    images, labels = mnist5k.read_digits(mnist5k.csv_path())
    assert images.shape == (5000, 1, 28, 28) and int(images[0].sum()) == 31095 and labels[0] == 0
    both = torch.cat([ds.train.inputs, ds.test.inputs]).reshape(5000, -1).double()
    pixels = torch.round((both * 0.3081 + 0.1307) * 255).to(torch.uint8).numpy()
    with_labels = np.concatenate([pixels, torch.cat([ds.train.targets, ds.test.targets]).numpy()[:, None]], 1)
    from_file = np.concatenate([images.reshape(5000, -1), labels[:, None]], 1)
    assert sorted(map(bytes, with_labels.astype(np.uint8))) == sorted(map(bytes, from_file.astype(np.uint8)))
    # cached: a second load reads the cache and never parses the CSV again
    assert mnist5k.cache_path(tmp_path).is_file()
    monkeypatch.setattr(mnist5k, "read_digits", lambda path: (_ for _ in ()).throw(AssertionError("re-read")))
    again = load_dataset("mnist5k", tmp_path)
    assert torch.equal(again.train.inputs, ds.train.inputs) and torch.equal(again.test.targets, ds.test.targets)


# ---------------------------------------------------------------------------------------------- digits


def test_digits_shapes_and_determinism():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.train.inputs.shape == (1437, 1, 8, 8) and a.test.inputs.shape == (360, 1, 8, 8)
    assert a.train.inputs.dtype == torch.float32 and a.test.targets.dtype == torch.int64
    assert a.num_classes == 10
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.test.targets, b.test.targets)
    assert abs(float(a.train.inputs.mean())) < 1e-5 and abs(float(a.train.inputs.std()) - 1) < 1e-3
    # Stratified: every class in the test split in proportion (≈36 each).
    counts = torch.bincount(a.test.targets, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


# ---------------------------------------------------------------------------------------------- mnist


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist(root: Path, gz: bool, n_train=3, n_test=2, seed=0):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 27, 27] = 0, 255
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz)
        arrays[prefix] = (images, labels)
    return raw, arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_round_trip(tmp_path, gz):
    _, arrays = write_mnist(tmp_path, gz)
    ds = load_dataset("mnist", tmp_path)
    assert ds.name == "mnist" and ds.augment is None and ds.num_classes == 10
    for split, prefix in ((ds.train, "train"), (ds.test, "t10k")):
        images, labels = arrays[prefix]
        assert split.inputs.shape == (len(labels), 1, 28, 28) and split.inputs.dtype == torch.float32
        expected = (torch.from_numpy(images.astype(np.float32))[:, None] / 255 - 0.1307) / 0.3081
        torch.testing.assert_close(split.inputs, expected, rtol=0, atol=1e-6)
        assert split.targets.dtype == torch.int64 and split.targets.tolist() == labels.tolist()
    assert ds.train.inputs[0, 0, 0, 0].item() == pytest.approx(-0.1307 / 0.3081, abs=1e-6)
    assert ds.train.inputs[0, 0, 27, 27].item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-6)


def test_mnist_missing_file_names_expected_path(tmp_path):
    raw, _ = write_mnist(tmp_path, gz=False)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(LosspathError) as e:
        load_dataset("mnist", tmp_path)
    msg = str(e.value)
    assert f"{raw / 't10k-labels-idx1-ubyte'}(.gz)" in msg
    assert "cannot download" in msg and "Traceback" not in msg


@pytest.mark.parametrize(
    "damage",
    ["truncated", "truncated_header", "bad_magic", "truncated_gz", "garbage_gz", "label_count"],
)
def test_mnist_malformed_files(tmp_path, damage):
    gz = damage in ("truncated_gz", "garbage_gz")
    raw, _ = write_mnist(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    path = raw / f"train-images-idx3-ubyte{suffix}"
    data = path.read_bytes()
    if damage in ("truncated", "truncated_gz"):
        path.write_bytes(data[: len(data) // 2])
    elif damage == "truncated_header":
        path.write_bytes(data[:10])
    elif damage == "bad_magic":
        path.write_bytes(struct.pack(">I", 0x0801) + data[4:])
    elif damage == "garbage_gz":
        path.write_bytes(b"\x1f\x8b" + os.urandom(50))
    elif damage == "label_count":
        path = raw / "train-labels-idx1-ubyte"
        write_idx(path, np.zeros(5, np.uint8), gz=False)
    with pytest.raises(LosspathError) as e:
        load_dataset("mnist", tmp_path)
    assert str(path) in str(e.value)
    # No numpy/gzip traceback chained onto the one-sentence error.
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)


# ---------------------------------------------------------------------------------------------- cifar10

CIFAR_MEAN, CIFAR_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """The opcodes Python 2 + numpy 1.x write for a CIFAR batch dict (str keys, numpy.core names)."""

    def s(b: bytes) -> bytes:  # SHORT_BINSTRING (a Python 2 str)
        return b"U" + bytes([len(b)]) + b

    def i(v: int) -> bytes:  # BININT1 / BININT2 / BININT
        if v < 256:
            return b"K" + bytes([v])
        if v < 65536:
            return b"M" + struct.pack("<H", v)
        return b"J" + struct.pack("<i", v)

    n, width = data.shape
    out = b"\x80\x02}(" + s(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b") + b"\x87R"
    out += b"(" + i(1) + i(n) + i(width) + b"\x86"
    out += b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"
    out += b"(" + i(3) + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + i(0) + b"tb"
    out += b"\x89T" + struct.pack("<I", data.nbytes) + data.tobytes() + b"tb"
    out += s(b"labels") + b"](" + b"".join(i(v) for v in labels) + b"e"
    out += s(b"batch_label") + s(b"testing batch 1 of 1")
    return out + b"u."


def write_cifar(root: Path, fmt, n=3, seed=0):
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        if fmt == "py2":
            (directory / name).write_bytes(py2_cifar_pickle(data, labels))
        else:
            batch = {b"batch_label": b"batch", b"labels": labels, b"data": data,
                     b"filenames": [b"x_%d.png" % j for j in range(n)]}
            with open(directory / name, "wb") as f:
                pickle.dump(batch, f, protocol=fmt)
        batches[name] = (data, labels)
    return directory, batches


def expected_cifar(data: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(data.astype(np.float32)).view(-1, 3, 32, 32) / 255
    return (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)


@pytest.mark.parametrize("fmt", ["py2", 2, pickle.DEFAULT_PROTOCOL, 5])
def test_cifar_round_trip(tmp_path, fmt):
    _, batches = write_cifar(tmp_path, fmt)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train.inputs.shape == (15, 3, 32, 32) and ds.test.inputs.shape == (3, 3, 32, 32)
    assert ds.train.inputs.dtype == torch.float32 and ds.train.targets.dtype == torch.int64
    train_data = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    torch.testing.assert_close(ds.train.inputs, expected_cifar(train_data), rtol=0, atol=1e-6)
    torch.testing.assert_close(ds.test.inputs, expected_cifar(batches["test_batch"][0]), rtol=0, atol=1e-6)
    assert ds.train.targets.tolist() == train_labels
    # Row layout is 1024 red, 1024 green, 1024 blue: pixel (c, y, x) sits at c*1024 + y*32 + x.
    d = batches["test_batch"][0]
    pixel = d[1, 2 * 1024 + 5 * 32 + 7]
    assert ds.test.inputs[1, 2, 5, 7].item() == pytest.approx((pixel / 255 - 0.406) / 0.225, abs=1e-5)
    from losspath.data import cifar10

    assert ds.augment is cifar10.augment


class _RunsCode:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


@pytest.mark.parametrize("hostile", ["os.system", "eval"])
def test_cifar_hostile_pickle_is_refused_without_running(tmp_path, hostile):
    directory, _ = write_cifar(tmp_path, pickle.DEFAULT_PROTOCOL)
    marker = tmp_path / "pwned"
    payload = _RunsCode(f"touch {marker}") if hostile == "os.system" else _Evals()
    with open(directory / "data_batch_2", "wb") as f:
        pickle.dump({b"data": payload, b"labels": [0]}, f)
    with pytest.raises(LosspathError) as e:
        load_dataset("cifar10", tmp_path)
    assert str(directory / "data_batch_2") in str(e.value)
    assert ("system" in str(e.value)) if hostile == "os.system" else ("eval" in str(e.value))
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "wrong_shape", "not_dict", "label_count"])
def test_cifar_malformed_file(tmp_path, damage):
    directory, _ = write_cifar(tmp_path, pickle.DEFAULT_PROTOCOL)
    path = directory / "test_batch"
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(200))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        obj = {
            "wrong_shape": {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]},
            "not_dict": [1, 2, 3],
            "label_count": {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]},
        }[damage]
        path.write_bytes(pickle.dumps(obj))
    with pytest.raises(LosspathError) as e:
        load_dataset("cifar10", tmp_path)
    assert str(path) in str(e.value)


def test_cifar_missing_file(tmp_path):
    directory, _ = write_cifar(tmp_path, pickle.DEFAULT_PROTOCOL)
    (directory / "data_batch_4").unlink()
    with pytest.raises(LosspathError) as e:
        load_dataset("cifar10", tmp_path)
    assert str(directory / "data_batch_4") in str(e.value) and "cannot download" in str(e.value)


# ---------------------------------------------------------------------------------------------- augment


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x moved by (dy, dx), vacated pixels zero: out[i, j] = x[i + dy, j + dx]."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def test_random_crop_is_a_true_shift():
    x = torch.arange(1, 64 * 3 * 8 * 8 + 1, dtype=torch.float32).view(64, 3, 8, 8)
    out = random_crop(x, torch.Generator().manual_seed(0), padding=4)
    assert out.shape == x.shape
    offsets = set()
    for k in range(64):
        matches = [
            (dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if torch.equal(out[k], _shift(x[k], dy, dx))
        ]
        assert len(matches) == 1, f"example {k} is not a zero-filled shift of its input"
        offsets.add(matches[0])
    assert len(offsets) > 10  # per-example offsets, not one for the whole batch


def test_cifar10_crop_pads_with_black_per_channel_as_openlth():
    from losspath.data import cifar10

    # OpenLTH crops the uint8 image (black border) before Normalize: border = (0 − mean_c)/std_c
    assert cifar10.BLACK == pytest.approx((-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225), abs=1e-6)
    assert cifar10.BLACK == pytest.approx((-2.117904, -2.035714, -1.804444), abs=1e-6)
    out = cifar10.augment(torch.full((256, 3, 32, 32), 1.3), torch.Generator().manual_seed(0))
    for ch, black in enumerate(cifar10.BLACK):
        values = out[:, ch].unique().tolist()
        assert values == pytest.approx(sorted([1.3, black]), abs=1e-6)  # image and black border, no zeros
    # the same pixels as cropping the raw uint8 images with a zero border, then normalizing (OpenLTH's order)
    from losspath.data._common import normalize_uint8

    raw = torch.randint(0, 256, (64, 3, 32, 32), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    ours = cifar10.augment(normalize_uint8(raw.numpy(), cifar10.MEAN, cifar10.STD), torch.Generator().manual_seed(5))
    raw_crop = random_flip_crop(raw.float(), torch.Generator().manual_seed(5), padding=4, fill=0.0)
    assert torch.equal(ours, normalize_uint8(raw_crop.to(torch.uint8).numpy(), cifar10.MEAN, cifar10.STD))


def test_random_flip_crop_deterministic_and_flips_some():
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    a = random_flip_crop(x, torch.Generator().manual_seed(7))
    b = random_flip_crop(x, torch.Generator().manual_seed(7))
    c = random_flip_crop(x, torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    flipped = random_flip(x, torch.Generator().manual_seed(3))
    is_flipped = [torch.equal(flipped[k], x[k].flip(-1)) for k in range(64)]
    is_same = [torch.equal(flipped[k], x[k]) for k in range(64)]
    assert all(f or s for f, s in zip(is_flipped, is_same))
    assert 10 < sum(is_flipped) < 54


def test_random_flip_works_on_1d_signals():
    x = torch.arange(40.0).view(1, 1, 40).repeat(32, 1, 1)
    out = random_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert any(torch.equal(out[k], x[k]) for k in range(32))
    assert any(torch.equal(out[k], x[k].flip(-1)) for k in range(32))


# ---------------------------------------------------------------------------------------------- imagenet

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_imagenet(root: Path):
    Image = pytest.importorskip("PIL.Image")
    base = root / "imagenet"
    colors = {}
    for split in ("train", "val"):
        for cls, color in (("n02", (200, 10, 30)), ("n01", (5, 120, 250))):
            d = base / split / cls
            d.mkdir(parents=True)
            # A solid PNG (exact after resizing) and a JPEG of another aspect ratio.
            Image.new("RGB", (300, 260), color).save(d / "a.png")
            noise = np.random.default_rng(0).integers(0, 256, (320, 240, 3), dtype=np.uint8)
            Image.fromarray(noise).save(d / "b.JPEG", quality=90)
            (d / "notes.txt").write_text("not an image")
            colors[cls] = color
    return base, colors


def test_imagenet_streams_from_folders(tmp_path):
    base, colors = write_imagenet(tmp_path)
    ds = load_dataset("imagenet", tmp_path)
    for split in (ds.train, ds.test):
        assert isinstance(split, Split)
        assert len(split) == 4 and split.num_classes == 2 and split.input_shape == (3, 224, 224)
        assert split.classes == ["n01", "n02"]  # sorted as ImageFolder
        assert split.targets.tolist() == [0, 0, 1, 1] and split.targets.dtype == torch.int64
    assert ds.input_shape == (3, 224, 224) and ds.num_classes == 2
    x, y = ds.train.batch(torch.tensor([0, 3]))
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32 and y.tolist() == [0, 1]
    # The solid PNG of class n01 (index 0): every pixel is its color, normalized.
    expected = (torch.tensor(colors["n01"]) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[0], expected.view(3, 1, 1).expand(3, 224, 224), rtol=0, atol=1e-5)
    batches = list(ds.test.batches(3))
    assert [b[0].shape[0] for b in batches] == [3, 1]
    assert torch.equal(torch.cat([b[1] for b in batches]), ds.test.targets)
    assert ds.train.inputs.shape == (4, 3, 224, 224) and ds.train.inputs[1].shape == (3, 224, 224)
    flipped = ds.augment(x, torch.Generator().manual_seed(0))
    assert flipped.shape == x.shape


def test_imagenet_missing_and_corrupt(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    with pytest.raises(LosspathError) as e:
        load_dataset("imagenet", tmp_path)
    assert str(tmp_path / "imagenet" / "train") in str(e.value) and "cannot download" in str(e.value)
    base, _ = write_imagenet(tmp_path)
    bad = base / "val" / "n02" / "c.JPEG"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    ds = load_dataset("imagenet", tmp_path)
    index = ds.test.paths.index(str(bad))
    with pytest.raises(LosspathError, match=str(bad)):
        ds.test.batch(torch.tensor([index]))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(LosspathError, match=r"pip install losspath\[imagenet\]"):
        load_dataset("imagenet", tmp_path)


def test_random_resized_box_ranges_and_fallback_are_torchvisions():
    from losspath.data.imagenet import ATTEMPTS, random_resized_box

    rng = np.random.default_rng(0)
    fractions, ratios = [], []
    for _ in range(4000):
        left, top, w, h = random_resized_box(300, 260, rng.random((ATTEMPTS, 4)))
        assert 0 <= left and left + w <= 300 and 0 <= top and top + h <= 260
        fractions.append(w * h / (300 * 260))
        ratios.append(w / h)
    # OpenLTH: scale=(0.1, 1.0), ratio=(0.8, 1.25); w and h are rounded, so allow a pixel's worth
    assert 0.1 - 0.01 < min(fractions) < 0.11 and 0.9 < max(fractions) <= 1.0
    assert 0.8 - 0.01 < min(ratios) < 0.82 and 1.2 < max(ratios) < 1.25 + 0.01
    # no box fits a 50×1000 strip at ratio ≥ 0.8 with area ≥ 10%: torchvision's central fallback, ratio clamped
    tall = np.tile([0.5, 0.5, 0.5, 0.5], (ATTEMPTS, 1))
    assert random_resized_box(50, 1000, tall) == (0, (1000 - 62) // 2, 50, 62)  # h = round(50 / 0.8)
    assert random_resized_box(1000, 50, tall) == ((1000 - 62) // 2, 0, 62, 50)  # w = round(50 · 1.25)
    # a square image whose first attempt fits takes that box: area 0.55, ratio 1 → 74×74 of 100×100
    first = np.array([[0.5, 0.5, 0.0, 1.0 - 1e-12]] + [[0.0, 0.0, 0.0, 0.0]] * (ATTEMPTS - 1))
    assert random_resized_box(100, 100, first) == (26, 0, 74, 74)


def test_imagenet_training_crops_cover_openlths_scale_and_ratio(tmp_path):
    """Many augmented decodes of one gradient image: each crop's box, read back from its corner pixels, has
    area fraction in [0.1, 1] and aspect ratio in [0.8, 1.25]; evaluation batches stay center crops."""
    Image = pytest.importorskip("PIL.Image")
    width, height = 400, 300
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    pixels = np.stack([xs * 255 // (width - 1), ys * 255 // (height - 1), np.zeros_like(xs)], -1).astype(np.uint8)
    for split in ("train", "val"):
        (tmp_path / "imagenet" / split / "n01").mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / "imagenet" / split / "n01" / "a.png")
    ds = load_dataset("imagenet", tmp_path)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    gen = torch.Generator().manual_seed(0)
    fractions, ratios = [], []
    for _ in range(300):
        x, _ = ds.train.batch(torch.tensor([0]), gen)
        raw = (x[0] * std + mean) * 255  # back to pixel values: red ∝ column, green ∝ row
        w = (raw[0, :, -1].mean() - raw[0, :, 0].mean()).item() / 255 * (width - 1) * 224 / 223
        h = (raw[1, -1, :].mean() - raw[1, 0, :].mean()).item() / 255 * (height - 1) * 224 / 223
        fractions.append(w * h / (width * height))
        ratios.append(w / h)
    assert 0.08 < min(fractions) < 0.15 and max(fractions) > 0.85 and max(fractions) < 1.05
    assert 0.76 < min(ratios) < 0.86 and 1.19 < max(ratios) < 1.31
    again = ds.train.batch(torch.tensor([0]), torch.Generator().manual_seed(1))[0]
    assert torch.equal(again, ds.train.batch(torch.tensor([0]), torch.Generator().manual_seed(1))[0])
    # without a generator (evaluation, or training with augment off): resize 256 + center crop 224, as the test split
    assert torch.equal(ds.train.batch(torch.tensor([0]))[0], ds.test.batch(torch.tensor([0]))[0])
