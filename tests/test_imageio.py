import numpy as np
import pytest

from synface.errors import DataNotFoundError, ImageReadError
from synface.imageio import read_rgb, to_gray3, write_image


def test_corrupt_jpeg_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        read_rgb(bad)


def test_truncated_jpeg_is_an_error_not_a_grey_half_image(tmp_path):
    good = tmp_path / "good.jpg"
    rng = np.random.default_rng(0)
    write_image(good, rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:-400])
    with pytest.raises(ImageReadError, match="cut.jpg"):
        read_rgb(cut)


def test_missing_image_names_the_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="nope.png"):
        read_rgb(tmp_path / "nope.png")


def test_gray_images_become_three_equal_channels(tmp_path):
    from PIL import Image

    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "g.png")
    img = read_rgb(tmp_path / "g.png")
    assert img.shape == (8, 8, 3) and (img[..., 0] == img[..., 2]).all()
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[..., 0] = 255
    gray = to_gray3(colour)
    assert (gray == 76).all()  # 0.299 * 255, the BT.601 luma of pure red
