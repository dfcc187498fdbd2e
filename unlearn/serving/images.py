"""Turn any uploaded file into a safe RGB image, or one clear :class:`UsageError` saying why it cannot be used.

Browsers send PNG (alpha, palette, 16-bit, grayscale), JPEG (CMYK, EXIF-rotated), GIF/WebP/APNG (animated), BMP,
TIFF... The conversion below handles each of them the same way:

- only the first frame of an animated image is used;
- JPEGs are decoded at a reduced scale (``draft``), so a huge photo never exists in memory at full size;
- anything still above ``MAX_DECODE_PIXELS`` is refused *before* decoding, with a message;
- EXIF orientation is applied, transparency is composited on white, 16-bit and float images are rescaled to 8 bit
  (``v8 = 255 * (v - min) / (max - min)``), every other mode (1-bit, L, P, CMYK, YCbCr...) is converted to RGB;
- the long side is cropped around the centre to at most ``MAX_ASPECT`` times the short side (processors resize the
  short side and centre-crop, so this drops nothing they would keep) and the image is shrunk to ``MAX_SIDE`` px.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from unlearn.errors import UsageError

MAX_SIDE = 1024
MAX_ASPECT = 4.0
MAX_DECODE_PIXELS = 40_000_000
BACKGROUND = (255, 255, 255)
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
NOT_AN_IMAGE = "the file is not an image that can be read (use PNG, JPEG, GIF, WebP, BMP or TIFF)"
DAMAGED = "the image cannot be read: the file is damaged or truncated, or its colour format is not supported"


def load_image(source: str | Path | bytes) -> Image.Image:
    """An RGB image (long side <= ``MAX_SIDE``) from a file path or the file's bytes; bad files raise UsageError."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream) as image:
            return to_rgb(image)
    except UsageError:
        raise
    except UnidentifiedImageError as exc:
        raise UsageError(NOT_AN_IMAGE) from exc
    except Image.DecompressionBombError as exc:
        raise UsageError(f"the image is too large to decode (limit: {MAX_DECODE_PIXELS:,} pixels)") from exc
    except Exception as exc:  # PIL's decoders raise many types (OSError, SyntaxError, ValueError...) on bad bytes
        raise UsageError(DAMAGED) from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """Decode an opened image (first frame) within the pixel limit and convert it as the module docstring says."""
    if image.format == "JPEG":
        image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode at 1/2, 1/4 or 1/8 scale, never below MAX_SIDE
    width, height = image.size
    if width * height > MAX_DECODE_PIXELS:
        raise UsageError(f"the image is too large ({width}x{height} pixels); the limit is {MAX_DECODE_PIXELS:,} pixels")
    if width == 0 or height == 0:
        raise UsageError("the image is empty (0 pixels)")
    image.load()
    image = _upright(image)
    image = _flatten(image)
    image = crop_aspect(image, MAX_ASPECT)
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return image


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block leaves the image as it is."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF data raises from deep inside PIL; orientation is optional
        return image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB: transparency composited on white, high-depth values rescaled to 0-255, other modes converted."""
    if image.mode in _HIGH_DEPTH_MODES:
        image = rescale_to_8bit(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")


def rescale_to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit or float image as 8-bit grayscale: ``v8 = round(255 * (v - min) / (max - min))`` (0 if flat)."""
    values = np.asarray(image, dtype=np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    scaled = np.zeros_like(values) if high == low else 255.0 * (values - low) / (high - low)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


def crop_aspect(image: Image.Image, max_aspect: float) -> Image.Image:
    """Centre-crop the long side to at most ``max_aspect`` times the short side."""
    width, height = image.size
    if width > max_aspect * height:
        new_width = int(max_aspect * height)
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    if height > max_aspect * width:
        new_height = int(max_aspect * width)
        top = (height - new_height) // 2
        return image.crop((0, top, width, top + new_height))
    return image
