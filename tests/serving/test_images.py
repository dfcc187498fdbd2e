"""Every kind of image a browser can send becomes a safe RGB image, or one clear UsageError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from unlearn.errors import UsageError
from unlearn.serving.images import DAMAGED, MAX_SIDE, NOT_AN_IMAGE, crop_aspect, load_image, rescale_to_8bit

WHITE, RED, BLUE = (255, 255, 255), (255, 0, 0), (0, 0, 255)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_transparency_is_composited_on_white():
    image = Image.new("RGBA", (4, 2), (*RED, 0))
    image.putpixel((1, 0), (*BLUE, 255))
    image.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black over white: 255 * (1 - 128/255) = 127
    out = load_image(encoded(image, "PNG"))
    assert out.mode == "RGB" and out.size == (4, 2)
    assert out.getpixel((0, 0)) == WHITE
    assert out.getpixel((1, 0)) == BLUE
    assert out.getpixel((2, 0)) == (127, 127, 127)


def test_grayscale_with_alpha_and_webp_with_alpha():
    la = Image.new("LA", (3, 3), (10, 0))
    la.putpixel((0, 0), (10, 255))
    out = load_image(encoded(la, "PNG"))
    assert out.getpixel((0, 0)) == (10, 10, 10) and out.getpixel((1, 1)) == WHITE
    webp = Image.new("RGBA", (8, 8), (*RED, 0))
    assert load_image(encoded(webp, "WEBP", lossless=True)).getpixel((4, 4)) == WHITE


def test_palette_with_transparent_index_one_bit_and_grayscale():
    palette = Image.new("P", (2, 1))
    palette.putpalette([*RED, *BLUE] + [0] * 762)
    palette.putpixel((1, 0), 1)
    out = load_image(encoded(palette, "PNG", transparency=0))
    assert out.getpixel((0, 0)) == WHITE and out.getpixel((1, 0)) == BLUE
    bits = Image.new("1", (2, 1), 0)
    bits.putpixel((1, 0), 1)
    assert list(load_image(encoded(bits, "PNG")).getdata()) == [(0, 0, 0), WHITE]
    assert load_image(encoded(Image.new("L", (2, 2), 77), "PNG")).getpixel((0, 0)) == (77, 77, 77)


def test_cmyk_jpeg_becomes_rgb():
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    r, g, b = load_image(encoded(cyan, "JPEG", quality=100)).getpixel((8, 8))
    assert r < 10 and g > 245 and b > 245


def test_16_bit_and_float_images_are_rescaled_by_hand_computed_values():
    sixteen = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    # 255 * 32768 / 65535 = 127.502 -> 128
    assert [p[0] for p in load_image(encoded(sixteen, "PNG")).getdata()] == [0, 128, 255]
    floats = Image.fromarray(np.array([[-1.0, 0.0, 3.0]], dtype=np.float32))
    # (v + 1) / 4 * 255: 0, 63.75 -> 64, 255
    assert [p[0] for p in load_image(encoded(floats, "TIFF")).getdata()] == [0, 64, 255]
    assert list(rescale_to_8bit(Image.new("F", (2, 1), 5.0)).getdata()) == [0, 0], "a flat image is black"


def test_animated_images_use_their_first_frame():
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)]
    for fmt in ("GIF", "PNG", "WEBP"):
        data = encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
        r, g, b = load_image(data).getpixel((4, 4))
        assert r > 240 and b < 15, fmt


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), RED)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise
    assert load_image(encoded(image, "JPEG", exif=exif)).size == (20, 40)


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path):
    # 7000 x 7000 = 49 M pixels is above MAX_DECODE_PIXELS: it is accepted only because JPEG decodes at 1/4 scale.
    path = tmp_path / "huge.jpg"
    Image.new("L", (7000, 7000), 90).save(path, "JPEG")
    out = load_image(path)
    assert out.mode == "RGB" and max(out.size) == MAX_SIDE


def test_big_png_is_shrunk_and_one_above_the_limit_is_refused():
    out = load_image(encoded(Image.new("RGB", (3000, 1500), RED), "PNG"))
    assert out.size == (MAX_SIDE, MAX_SIDE // 2)
    with pytest.raises(UsageError, match="too large"):
        load_image(encoded(Image.new("1", (7000, 7000)), "PNG"))


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header (with a correct CRC) claims another size: a decompression bomb's header."""
    data = bytearray(encoded(Image.new("L", (1, 1)), "PNG"))
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def test_decompression_bomb_headers_are_refused_before_decoding():
    with pytest.raises(UsageError, match="too large"):
        load_image(png_claiming_size(30000, 30000))  # 900 M pixels: PIL's own bomb check
    with pytest.raises(UsageError, match="too large"):
        load_image(png_claiming_size(8000, 8000))  # 64 M pixels: our limit


def test_extreme_aspect_ratios_are_cropped_around_the_centre():
    assert load_image(encoded(Image.new("RGB", (1, 5000)), "PNG")).size == (1, 4)
    strip = Image.new("RGB", (10, 2))
    strip.putpixel((4, 0), RED)
    cropped = crop_aspect(strip, 4.0)  # width 10 -> 8, left = (10 - 8) // 2 = 1
    assert cropped.size == (8, 2) and cropped.getpixel((3, 0)) == RED


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, I am a text file", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"%PDF-1.4\n%\xe2\xe3"],
    ids=["empty", "text", "svg", "pdf"],
)
def test_files_that_are_not_images_get_one_clear_message(data):
    with pytest.raises(UsageError) as error:
        load_image(data)
    assert str(error.value) == NOT_AN_IMAGE


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_truncated_files_get_one_clear_message(fmt):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = encoded(noise.convert("P") if fmt == "GIF" else noise, fmt)
    with pytest.raises(UsageError) as error:
        load_image(data[: len(data) // 2])
    assert str(error.value) == DAMAGED


def test_a_path_and_bytes_give_the_same_image(tmp_path):
    image = Image.new("RGB", (5, 7), BLUE)
    image.save(tmp_path / "face.png")
    assert load_image(tmp_path / "face.png").tobytes() == load_image(encoded(image, "PNG")).tobytes()
