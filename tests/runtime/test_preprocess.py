"""Eval preprocessing: timm's geometry and (nearly) its pixels, without torch, and bomb guards."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import skimage.data

from sketchsearch.data.errors import ImageDecodeError
from sketchsearch.data.image_header import image_size
from sketchsearch.data.imagefile import read_image
from sketchsearch.runtime import preprocess
from sketchsearch.runtime.preprocess import (
    PreprocessConfig,
    preprocess_array,
    preprocess_batch,
    preprocess_file,
)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # 512², 600×400, 451×300, 640×427


def photo(name: str) -> np.ndarray:
    return np.ascontiguousarray(getattr(skimage.data, name)())


def timm_eval(image: np.ndarray, **kwargs: Any) -> np.ndarray:
    """timm's own eval transform, stopped before ToTensor/Normalize: uint8 H×W×3."""
    from PIL import Image
    from timm.data.transforms_factory import create_transform

    transform = create_transform(is_training=False, **kwargs)
    pil = Image.fromarray(image)
    for step in transform.transforms:
        if "ToTensor" in type(step).__name__:
            break
        pil = step(pil)
    else:
        raise AssertionError(f"no ToTensor step in {transform}")
    return np.asarray(pil)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def encode(rgb: np.ndarray, ext: str, params: tuple[int, ...] = ()) -> bytes:
    ok, buffer = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params))
    assert ok
    return buffer.tobytes()


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# Measured mean |difference| over the four photos: at most 1.3, 0.4 and 1.5 grey levels.
@pytest.mark.parametrize(
    ("size", "crop_pct", "interpolation", "bound"),
    [(224, 0.875, "bicubic", 2.0), (64, 1.0, "bilinear", 1.0), (96, 0.9, "bicubic", 2.0)],
)
def test_matches_timm_eval_transform_on_real_photos(
    size: int, crop_pct: float, interpolation: str, bound: float
) -> None:
    config = PreprocessConfig(size, crop_pct, interpolation)
    for name in PHOTOS:
        image = photo(name)
        expected = timm_eval(image, input_size=size, crop_pct=crop_pct, interpolation=interpolation)
        got = preprocess_array(image, config)
        assert got.shape == expected.shape == (size, size, 3) and got.dtype == np.uint8
        assert mean_abs_diff(got, expected) < bound, name


@pytest.mark.parametrize(
    "shape",
    [(300, 200), (200, 300), (427, 640), (9, 7), (7, 9), (1, 5), (224, 224), (256, 256),
     (257, 300), (301, 256), (255, 511), (100, 100)],
)  # fmt: skip
@pytest.mark.parametrize(("size", "crop_pct"), [(224, 0.875), (64, 1.0), (96, 0.9), (33, 0.7)])
def test_geometry_is_exactly_timms(shape: tuple[int, int], size: int, crop_pct: float) -> None:
    """Nearest resampling copies pixels, so any difference in sizes or offsets would show."""
    image = noise(*shape, seed=shape[0] * 1000 + shape[1])
    expected = timm_eval(image, input_size=size, crop_pct=crop_pct, interpolation="nearest")
    got = preprocess_array(image, PreprocessConfig(size, crop_pct, "nearest"))
    np.testing.assert_array_equal(got, expected)


def centroid(image: np.ndarray) -> np.ndarray:
    weight = image[:, :, 0].astype(np.float64)
    ys, xs = np.indices(weight.shape)
    return np.asarray([(ys * weight).sum(), (xs * weight).sum()]) / float(weight.sum())


@pytest.mark.parametrize("shape", [(500, 330), (330, 500), (60, 90), (90, 60)])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_a_marker_lands_where_timm_puts_it(shape: tuple[int, int], interpolation: str) -> None:
    image = np.zeros((*shape, 3), dtype=np.uint8)
    y, x = int(shape[0] * 0.37), int(shape[1] * 0.61)
    image[y : y + 4, x : x + 4] = 255
    expected = timm_eval(image, input_size=128, crop_pct=0.875, interpolation=interpolation)
    got = preprocess_array(image, PreprocessConfig(128, 0.875, interpolation))
    assert np.abs(centroid(got) - centroid(expected)).max() <= 1.0


@pytest.mark.parametrize(
    "shape", [(400, 300), (300, 400), (40, 30), (30, 40), (2, 3000), (3000, 2), (1, 1)]
)
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "nearest"])
def test_portrait_landscape_and_tiny_inputs(shape: tuple[int, int], interpolation: str) -> None:
    image = noise(*shape)
    got = preprocess_array(image, PreprocessConfig(96, 0.875, interpolation))
    assert got.shape == (96, 96, 3) and got.dtype == np.uint8 and got.flags.c_contiguous
    if shape == (1, 1):
        assert (got == image[0, 0]).all()


def test_an_exactly_sized_input_is_only_cropped() -> None:
    image = noise(256, 300)
    np.testing.assert_array_equal(
        preprocess_array(image, PreprocessConfig(224, 0.875)), image[16:240, 38:262]
    )
    square = noise(64, 64)
    np.testing.assert_array_equal(preprocess_array(square, PreprocessConfig(64, 1.0)), square)


def test_preprocess_array_refuses_what_is_not_rgb_uint8() -> None:
    config = PreprocessConfig(32)
    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                np.zeros((8, 8, 3), np.float32), np.zeros((0, 8, 3), np.uint8)):  # fmt: skip
        with pytest.raises(ValueError, match="RGB uint8"):
            preprocess_array(bad, config)


def bomb_png(width: int, height: int) -> bytes:
    """A real PNG whose IHDR (with a valid CRC) claims another size."""
    data = bytearray(encode(noise(8, 8), ".png"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def refuse_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> np.ndarray:
        raise AssertionError("decoded although the header already exceeded max_pixels")

    monkeypatch.setattr(preprocess, "decode_checked", fail)


def test_a_png_bomb_is_refused_from_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(20000, 20000))
    assert image_size(path.read_bytes()) == (20000, 20000)
    refuse_decoding(monkeypatch)
    with pytest.raises(ImageDecodeError, match="decompression bomb") as caught:
        preprocess_file(path, PreprocessConfig(224))
    assert caught.value.path == path and "bomb.png" in str(caught.value)
    assert "20000×20000 pixels" in str(caught.value) and "100000000" in str(caught.value)


WEBP_LOSSLESS = (cv2.IMWRITE_WEBP_QUALITY, 101)


EVERY_FORMAT = [
    (".png", ()),
    (".jpg", ()),
    (".webp", ()),
    (".webp", WEBP_LOSSLESS),
    (".bmp", ()),
    (".tif", ()),
]


@pytest.mark.parametrize(("ext", "params"), EVERY_FORMAT)
def test_small_limits_are_enforced_from_every_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str, params: tuple[int, ...]
) -> None:
    path = tmp_path / f"real{ext}"
    path.write_bytes(encode(noise(20, 20), ext, params))
    config = PreprocessConfig(16, max_pixels=400)
    assert preprocess_file(path, config).shape == (16, 16, 3)  # at the limit: fine
    refuse_decoding(monkeypatch)
    with pytest.raises(ImageDecodeError, match=r"20×20 pixels, more than the limit of 100"):
        preprocess_file(path, PreprocessConfig(16, max_pixels=100))


@pytest.mark.parametrize(("ext", "params"), EVERY_FORMAT)
def test_header_sizes_match_the_decoded_sizes(ext: str, params: tuple[int, ...]) -> None:
    data = encode(noise(23, 37), ext, params)
    assert image_size(data) == (37, 23)
    for cut in (0, 10, 20):  # headers cut short are unknown, never an exception
        assert image_size(data[:cut]) is None


def test_header_parsers_handle_exif_vp8x_and_garbage(tmp_path: Path) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate, so the decoded image is 23 wide and 37 high
    exif[0x010E] = "x" * 5000  # a long description: the frame header comes after it
    Image.fromarray(noise(23, 37)).save(tmp_path / "exif.jpg", exif=exif)
    assert image_size((tmp_path / "exif.jpg").read_bytes()) == (37, 23)
    assert read_image(tmp_path / "exif.jpg").shape == (37, 23, 3)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x10\x00\x00\x00"
    assert image_size(vp8x + (4999).to_bytes(3, "little") + (2999).to_bytes(3, "little")) == (
        5000,
        3000,
    )
    for data in (b"", b"hello world", b"\xff\xd8\xff\xda\x00\x02", b"BM" + bytes(40)):
        assert image_size(data) is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file"),
        (b"just some text, not an image\n", "holds text"),
        ("truncated", "truncated JPEG"),
    ],
)
def test_decoding_errors_name_the_file(tmp_path: Path, content: Any, problem: str) -> None:
    path = tmp_path / "broken.jpg"
    if content == "truncated":
        content = encode(noise(40, 40), ".jpg")[:300]
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=problem) as caught:
        preprocess_file(path, PreprocessConfig(32))
    assert caught.value.path == path and "broken.jpg" in str(caught.value)
    with pytest.raises(ImageDecodeError, match="not found"):
        preprocess_file(tmp_path / "missing.png", PreprocessConfig(32))


def test_preprocess_file_and_batch_agree_with_preprocess_array(tmp_path: Path) -> None:
    config = PreprocessConfig(48, 0.9, "bilinear")
    image = photo("coffee")
    (tmp_path / "coffee.png").write_bytes(encode(image, ".png"))
    from_file = preprocess_file(tmp_path / "coffee.png", config)
    np.testing.assert_array_equal(from_file, preprocess_array(image, config))
    other = noise(30, 50)
    batch = preprocess_batch([str(tmp_path / "coffee.png"), other, tmp_path / "coffee.png"], config)
    assert batch.shape == (3, 48, 48, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], from_file)
    np.testing.assert_array_equal(batch[1], preprocess_array(other, config))
    np.testing.assert_array_equal(batch[2], from_file)
    assert preprocess_batch([], config).shape == (0, 48, 48, 3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_size": 0}, "input_size must be at least 1"),
        ({"input_size": 2.5}, "input_size must be an integer"),
        ({"crop_pct": 0.0}, r"crop_pct must be in \(0, 1\]"),
        ({"crop_pct": 1.01}, r"crop_pct must be in \(0, 1\]"),
        ({"crop_pct": math.nan}, r"crop_pct must be in \(0, 1\]"),
        ({"interpolation": "lanczos"}, "unknown interpolation 'lanczos'"),
        ({"mean": (0.5, 0.5)}, "mean must have 3 values"),
        ({"std": (0.2, 0.0, 0.2)}, "std values must be positive"),
        ({"max_pixels": 0}, "max_pixels must be at least 1"),
    ],
)
def test_config_validation(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PreprocessConfig(**{"input_size": 224, **changes})


def test_config_round_trips_through_a_dict_and_json() -> None:
    config = PreprocessConfig(96, 0.9, "bilinear", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 10**6)
    assert config.scale_size == 106 and PreprocessConfig(224).scale_size == 256
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    assert PreprocessConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert PreprocessConfig.from_dict({"input_size": 224}) == PreprocessConfig(224)
    with pytest.raises(ValueError, match="unknown preprocessing keys: colour, resize"):
        PreprocessConfig.from_dict({"input_size": 224, "resize": 1, "colour": 2})
    with pytest.raises(ValueError, match="lacks input_size"):
        PreprocessConfig.from_dict({"crop_pct": 0.9})


def test_from_timm_reads_a_real_resolved_data_config() -> None:
    import timm
    from timm.data.config import resolve_data_config

    data_config = resolve_data_config({}, model=timm.create_model("resnet10t"))  # type: ignore[no-untyped-call]
    config = PreprocessConfig.from_timm(data_config)
    assert config.input_size == data_config["input_size"][1]
    assert config.crop_pct == data_config["crop_pct"]
    assert config.interpolation == data_config["interpolation"]
    assert config.mean == tuple(data_config["mean"]) and config.std == tuple(data_config["std"])
    image = photo("chelsea")
    expected = timm_eval(
        image,
        **{k: v for k, v in data_config.items() if k not in ("mean", "std")},
    )
    assert mean_abs_diff(preprocess_array(image, config), expected) < 2.0
    for bad, message in (
        ({**data_config, "crop_mode": "squash"}, "crop_mode 'squash'"),
        ({**data_config, "input_size": (3, 224, 256)}, r"\(3, S, S\)"),
        ({**data_config, "input_size": (1, 224, 224)}, r"\(3, S, S\)"),
        ({**data_config, "interpolation": "random"}, "unknown interpolation"),
    ):
        with pytest.raises(ValueError, match=message):
            PreprocessConfig.from_timm(bad)


def test_the_module_never_imports_torch() -> None:
    code = (
        "import sys, sketchsearch.runtime.preprocess, sketchsearch.data.image_header; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
