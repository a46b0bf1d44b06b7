"""ImageNet streamed from `<root>/imagenet/{train,val}/<class>/<image>`: images are decoded batch by batch.

Preprocessing as OpenLTH's (datasets/imagenet.py): for evaluation, and for training without augmentation,
the shorter side resized to 256 (bilinear) and a center crop of 224; for augmented training batches,
RandomResizedCrop(224, scale=(0.1, 1.0), ratio=(0.8, 1.25)) at decode, then a random horizontal flip.
Then /255 and the ImageNet channel mean/std. Requires Pillow (`pip install losspath[imagenet]`).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import LosspathError
from .augment import random_flip
from .base import Dataset, Split

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RESIZE, CROP = 256, 224
SCALE, RATIO = (0.1, 1.0), (0.8, 1.25)  # OpenLTH's RandomResizedCrop: area fraction and aspect-ratio ranges
ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes before its central fallback
# torchvision ImageFolder's IMG_EXTENSIONS.
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_HOW_GET = "place ImageNet as imagenet/train/<class>/*.JPEG and imagenet/val/<class>/*.JPEG"


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise LosspathError("Reading ImageNet needs Pillow: pip install losspath[imagenet].") from None
    return Image


def random_resized_box(width: int, height: int, draws: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, w, h) of torchvision's RandomResizedCrop(scale=SCALE, ratio=RATIO) box, from uniforms.

    `draws` holds ATTEMPTS rows of four U[0, 1) numbers: area fraction, log aspect ratio, top, left. As
    torchvision's get_params: the first box that fits the image wins; if none does, the central box of the
    largest size whose aspect ratio is clamped into RATIO.
    """
    area = width * height
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    for u_area, u_ratio, u_top, u_left in draws:
        target = area * (SCALE[0] + u_area * (SCALE[1] - SCALE[0]))
        aspect = math.exp(log_lo + u_ratio * (log_hi - log_lo))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(u_left * (width - w + 1)), int(u_top * (height - h + 1)), w, h
    if width / height < RATIO[0]:
        w, h = width, int(round(width / RATIO[0]))
    elif width / height > RATIO[1]:
        w, h = int(round(height * RATIO[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def _decode(path: str, draws: np.ndarray | None = None) -> np.ndarray:
    """One image file → uint8 CROP×CROP×3: with `draws`, the random resized crop they pick; otherwise the
    shorter side to RESIZE, then the central CROP×CROP."""
    Image = _pil()
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            if draws is not None:
                left, top, cw, ch = random_resized_box(w, h, draws)
                img = img.crop((left, top, left + cw, top + ch)).resize((CROP, CROP), Image.BILINEAR)
                return np.array(img, dtype=np.uint8)
            # Same sizes as torchvision's Resize(256): the longer side is truncated, not rounded.
            if w <= h:
                size = (RESIZE, int(RESIZE * h / w))
            else:
                size = (int(RESIZE * w / h), RESIZE)
            if size != (w, h):
                img = img.resize(size, Image.BILINEAR)
            w, h = img.size
            # Same offsets as torchvision's CenterCrop(224).
            top, left = int(round((h - CROP) / 2.0)), int(round((w - CROP) / 2.0))
            img = img.crop((left, top, left + CROP, top + CROP))
            return np.array(img, dtype=np.uint8)  # a writable copy, unlike np.asarray
    except Exception as e:  # Pillow raises several types (UnidentifiedImageError, OSError, ...) for a bad file
        raise LosspathError(
            f"ImageNet image {path} cannot be decoded ({type(e).__name__}: {e}); replace or remove it."
        ) from None


class StreamedImages:
    """Stands in for an inputs tensor: has `shape`, `len()` and indexing, decoding the files on access."""

    def __init__(self, paths: list[str]):
        self.paths = paths
        self.dtype = torch.float32

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), 3, CROP, CROP))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> torch.Tensor:
        return self.read(index)

    def read(self, index, generator: torch.Generator | None = None) -> torch.Tensor:
        """The images at `index`, center-cropped, or with a generator, randomly resized-cropped (OpenLTH's
        training augmentation; ATTEMPTS×4 uniforms per image, drawn whether or not they are all used)."""
        if isinstance(index, int):
            return self.read(torch.tensor([index]), generator)[0]
        if isinstance(index, slice):
            index = torch.arange(len(self.paths))[index]
        index = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        if index.numel() == 0:
            return torch.empty((0, 3, CROP, CROP), dtype=torch.float32)
        paths = [self.paths[i] for i in index.tolist()]
        draws = [None] * len(paths)
        if generator is not None:
            u = torch.rand((len(paths), ATTEMPTS, 4), generator=generator, device=generator.device, dtype=torch.float64)
            draws = list(u.cpu().numpy())
        if len(paths) == 1:
            pixels = _decode(paths[0], draws[0])[None]
        else:
            # Pillow releases the GIL while decoding, so threads overlap the file reads and JPEG decoding.
            with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1, 8)) as pool:
                pixels = np.stack(list(pool.map(_decode, paths, draws)))
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        x.sub_(torch.tensor(MEAN).view(1, 3, 1, 1)).div_(torch.tensor(STD).view(1, 3, 1, 1))
        return x.contiguous()

    def __repr__(self) -> str:
        return f"StreamedImages({len(self.paths)} files)"


class ImageFolderSplit(Split):
    """A split streamed from image files: `inputs` is a `StreamedImages`, `targets` a full int64 tensor.

    `random_crop`: augmented batches (a generator given to `batch`) are randomly resized-cropped at decode
    (the training split); otherwise every batch is center-cropped.
    """

    def __init__(self, paths: list[str], targets: torch.Tensor, classes: list[str], random_crop: bool = False):
        super().__init__(inputs=StreamedImages(paths), targets=targets, num_classes=len(classes))
        self.classes = classes
        self.paths = paths
        self.random_crop = random_crop

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode the images at `index` and return them with their targets."""
        index = torch.as_tensor(index, dtype=torch.int64)
        return self.inputs.read(index, generator if self.random_crop else None), self.targets[index]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, CROP, CROP)


def _scan(directory: Path, root: Path, classes: list[str] | None) -> tuple[list[str], list[int], list[str]]:
    """(file paths, class indices, class names) of `directory/<class>/<image>`, classes sorted as ImageFolder."""
    if not directory.is_dir():
        raise LosspathError(
            f"ImageNet directory {directory} not found; losspath cannot download data sets: {_HOW_GET} under {root}."
        )
    found = sorted(e.name for e in os.scandir(directory) if e.is_dir())
    if classes is None:
        classes = found
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise LosspathError(
                f"ImageNet directory {directory} has class folder {extra[0]!r} that train/ lacks; "
                f"val/ must use the same class folder names as train/."
            )
    paths, targets = [], []
    for label, name in enumerate(classes):
        class_dir = directory / name
        if not class_dir.is_dir():
            continue
        files = sorted(e.name for e in os.scandir(class_dir) if e.is_file() and e.name.lower().endswith(EXTENSIONS))
        paths.extend(str(class_dir / f) for f in files)
        targets.extend([label] * len(files))
    if not paths:
        raise LosspathError(
            f"ImageNet directory {directory} holds no images in class folders; losspath cannot download data sets: "
            f"{_HOW_GET} under {root}."
        )
    return paths, targets, classes


def load(root: Path) -> Dataset:
    """ImageNet train and val (as the test split), streamed from disk; augmentation as OpenLTH's: a random
    resized crop of each training image at decode, then a random horizontal flip (`Dataset.augment`)."""
    _pil()  # fail now, not at the first batch, if Pillow is missing
    base = Path(root) / "imagenet"
    train_paths, train_targets, classes = _scan(base / "train", root, None)
    val_paths, val_targets, _ = _scan(base / "val", root, classes)
    return Dataset(
        name="imagenet",
        train=ImageFolderSplit(train_paths, torch.tensor(train_targets, dtype=torch.int64), classes, random_crop=True),
        test=ImageFolderSplit(val_paths, torch.tensor(val_targets, dtype=torch.int64), classes),
        augment=random_flip,
    )
