"""Image files as people have them (caffe_port/image_file.py through preprocess.load_image):
upright by EXIF, every common container, and sizes refused or reduced before decoding.

The oracle for orientation is Pillow's ImageOps.exif_transpose, which is what viewers do; for
pixel values a lossless encode of a known picture (a lossy one is compared within its error)."""
import io
import struct
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from caffe_port import image_file, memory
from caffe_port.memory import MemoryLimitError
from caffe_port.preprocess import load_image
from caffe_port.pycaffe import io as caffe_io

# a 30×50 picture whose corners say which way up it is: red top-left, blue bottom-right
PICTURE = np.full((30, 50, 3), 90, np.uint8)
PICTURE[:10, :20] = (255, 0, 0)
PICTURE[20:, 40:] = (0, 0, 255)


def saved(tmp_path, name, image, **options):
    path = tmp_path / name
    image.save(path, **options)
    return path


def exif_jpeg(tmp_path, orientation):
    exif = Image.Exif()
    exif[image_file.ORIENTATION_TAG] = orientation
    return saved(tmp_path, f"o{orientation}.jpg", Image.fromarray(PICTURE), exif=exif, quality=95)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_shown_upright_as_viewers_do(tmp_path, orientation):
    path = exif_jpeg(tmp_path, orientation)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    ours = load_image(path)
    assert ours.shape == upright.shape == ((30, 50, 3) if orientation < 5 else (50, 30, 3))
    # both decode the same JPEG with libjpeg: the same pixels, turned the same way
    assert np.abs(ours.astype(int) - upright).max() <= 2


def test_portrait_photo_gives_a_portrait_map(tmp_path):
    """The issue's case: a camera's landscape sensor pixels tagged 'rotate 90° clockwise' are a
    portrait photograph, and its map comes back portrait (in the upright pixels)."""
    from caffe_port.preprocess import preset
    path = exif_jpeg(tmp_path, 6)
    photo = load_image(path)
    p = preset("torchvision")
    saliency_map = np.ones((224, 224), np.float32)
    assert p.to_original(saliency_map, photo.shape[:2]).shape == (50, 30)
    assert photo[:18, -8:, 0].min() > 200           # the red corner turned to the top right (JPEG edges blur)


def test_pycaffe_load_image_keeps_caffes_sensor_orientation(tmp_path):
    """caffe.io.load_image read pixels as stored (scikit-image ignored EXIF): so does the port."""
    path = exif_jpeg(tmp_path, 6)
    assert caffe_io.load_image(str(path)).shape == (30, 50, 3)


def test_damaged_or_out_of_range_orientation_is_ignored(tmp_path):
    for value in (0, 9):
        assert load_image(exif_jpeg(tmp_path, value)).shape == (30, 50, 3)


def lossless_formats(tmp_path):
    """(what, path, exact): files of each kind the docs table lists, decoded exactly."""
    picture = Image.fromarray(PICTURE)
    sixteen = (PICTURE.astype(np.uint16) * 257)[..., ::-1]
    png16, tiff16 = tmp_path / "16.png", tmp_path / "16.tiff"
    cv2.imwrite(str(png16), sixteen)
    cv2.imwrite(str(tiff16), sixteen)
    frames = [picture, Image.fromarray(255 - PICTURE)]
    gif = tmp_path / "animated.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], loop=0)
    return [("16-bit PNG", png16), ("16-bit TIFF", tiff16),
            ("RGBA PNG", saved(tmp_path, "rgba.png", picture.convert("RGBA"))),
            ("palette PNG with transparency", saved(tmp_path, "p.png", picture.convert("P"),
                                                    transparency=0)),
            ("animated GIF, first frame", gif),
            ("lossless WebP", saved(tmp_path, "w.webp", picture, lossless=True)),
            ("BMP", saved(tmp_path, "b.bmp", picture)), ("TIFF", saved(tmp_path, "t.tiff", picture))]


def test_lossless_formats_decode_exactly(tmp_path):
    for what, path in lossless_formats(tmp_path):
        photo = load_image(path)
        assert photo.shape == (30, 50, 3), what
        # Pillow's reading of the same file (a palette holds its quantised colours)
        expected = PICTURE if "16-bit" in what else np.asarray(Image.open(path).convert("RGB"))
        np.testing.assert_allclose(photo, expected, atol=1e-3, err_msg=what)


@pytest.mark.parametrize("mode, options, tolerance", [
    ("CMYK", {}, 40), ("RGB", {"progressive": True, "quality": 95}, 40), ("L", {}, 3)])
def test_lossy_jpeg_kinds(tmp_path, mode, options, tolerance):
    picture = Image.fromarray(PICTURE).convert(mode)
    path = saved(tmp_path, f"{mode}.jpg", picture, **options)
    photo = load_image(path)
    expected = np.asarray(Image.open(path).convert("RGB"))      # libjpeg's own reading
    assert photo.shape == (30, 50, 3)
    assert np.abs(photo.astype(int) - expected).max() <= tolerance


def png_claiming(width, height):
    """A valid 4×4 PNG whose IHDR (with its CRC made right) claims another size."""
    import zlib
    png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    ihdr = bytearray(png[8:33])
    ihdr[8:16] = struct.pack(">II", width, height)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
    return png[:8] + bytes(ihdr) + png[33:]


def test_header_beyond_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    """A 20,000 × 20,000 PNG (1.2 GB decoded) where 1 GiB is free, as a header: refused with the
    estimate, nothing allocated for it. (Under the issue's 6 GiB it fits, is decoded and reduced.)"""
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(20_000, 20_000))
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 30)
    with pytest.raises(MemoryLimitError, match=r"huge.png: decoding its 20000×20000 pixels needs "
                                               r"about 2\.2 GiB but only 1\.0 GiB") as caught:
        load_image(path)
    assert "\n" not in str(caught.value)


def test_header_size_is_read_past_pillows_bomb_limit():
    header = image_file.read_header(png_claiming(30_000, 30_000))
    assert (header.width, header.height, header.format) == (30_000, 30_000, "PNG")
    assert image_file.read_header(b"not an image") is None


def test_large_jpeg_is_decoded_reduced(tmp_path):
    """Above max_pixels a JPEG is decoded by libjpeg at 1/2, 1/4 or 1/8 (the smallest reduction
    that fits): the full image is never in memory. Shown here with a small limit."""
    path = saved(tmp_path, "big.jpg", Image.fromarray(np.repeat(np.repeat(PICTURE, 4, 0), 4, 1)),
                 quality=95)                                   # 120 × 200
    with pytest.warns(UserWarning, match=r"200×120 pixels is more than max_pixels \(2,000\): decoded at 1/4 scale, "
                                         r"50×30"):
        photo = load_image(path, max_pixels=2000)
    assert photo.shape == (30, 50, 3)
    assert np.abs(photo.astype(int) - PICTURE).max() <= 40


def test_large_png_is_area_reduced_within_memory(tmp_path):
    path = saved(tmp_path, "big.png", Image.fromarray(np.repeat(np.repeat(PICTURE, 4, 0), 4, 1)))
    with pytest.warns(UserWarning, match=r"200×120 pixels .* reduced to 50×30"):
        photo = load_image(path, max_pixels=1500)
    assert photo.shape == (30, 50, 3)
    np.testing.assert_array_equal(photo, PICTURE)      # 4×4 blocks of one colour average exactly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(path, max_pixels=None).shape == (120, 200, 3)


def test_bytes_and_unreadable_files(tmp_path):
    data = cv2.imencode(".png", PICTURE)[1].tobytes()
    assert image_file.decode(data).shape == (30, 50, 3)
    from caffe_port.errors import InputError
    with pytest.raises(InputError, match="x.png: not an image file"):
        image_file.decode(data[:40], "x.png")
    empty = png_claiming(0, 5)
    with pytest.raises(InputError, match="empty"):
        image_file.decode(empty, "empty.png")


def test_sixteen_bit_rgb_png_counts_two_bytes_per_sample():
    png = cv2.imencode(".png", (PICTURE.astype(np.uint16) * 257))[1].tobytes()
    header = image_file.read_header(png)
    assert header.sample_bytes == 2
    assert image_file.read_header(cv2.imencode(".png", PICTURE)[1].tobytes()).sample_bytes == 1
    buffer = io.BytesIO()
    Image.fromarray(PICTURE).save(buffer, "JPEG")
    assert image_file.read_header(buffer.getvalue()).format == "JPEG"


def test_a_file_larger_than_memory_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "photo.jpg"
    path.write_bytes(bytes(4096))
    monkeypatch.setattr(memory, "available_memory", lambda: 1024)
    with pytest.raises(MemoryLimitError, match=r"photo.jpg: reading the file needs about 0\.0 GiB"):
        load_image(path)


def test_pycaffe_counts_its_float64_copies(tmp_path, monkeypatch):
    """caffe.io.load_image works in float64 as scikit-image did (60 bytes per pixel, against
    pre-processing's 12): the same header can fit one and not the other."""
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming(12_000, 12_000))     # 0.6 GB decoded + 0.8 or 4.0 GB copies
    monkeypatch.setattr(memory, "available_memory", lambda: 2 << 30)
    from caffe_port.errors import InputError
    with pytest.raises(InputError, match="not an image file"):      # checked, then truncated
        load_image(path)
    with pytest.raises(MemoryLimitError, match=r"decoding its 12000×12000 pixels needs about 4\.3 GiB"):
        caffe_io.load_image(str(path))
