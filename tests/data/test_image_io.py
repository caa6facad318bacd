import numpy as np
import pytest
import torch
from PIL import Image

from anchordet.data.image_io import ImageReadError, image_size, list_images, load_image, raw_size


def _rgb_array(height=4, width=6):
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[0, 0] = (255, 0, 0)  # a red top-left pixel marks the orientation
    array[-1, -1] = (0, 0, 255)
    return array


def test_rgb_png_values_and_layout(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_rgb_array()).save(path)
    image = load_image(path)
    assert image.shape == (3, 4, 6) and image.dtype == torch.float32
    assert image[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and image[:, 3, 5].tolist() == [0.0, 0.0, 1.0]
    assert image_size(path) == (4, 6)


@pytest.mark.parametrize("orientation, corner", [(6, (0, 3)), (8, (5, 0)), (3, (3, 5))])
def test_exif_orientation_is_applied(tmp_path, orientation, corner):
    # Stored 4 rows x 6 columns with red at (0, 0). Orientation 6 = "rotate 90 CW to view":
    # the viewed image is 6 x 4 and the red pixel lands in row 0, column 3 (the last one).
    # 8 = rotate 90 CCW: red at row 5, column 0. 3 = rotate 180: red at (3, 5).
    path = tmp_path / "a.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_rgb_array()).save(path, exif=exif)
    image = load_image(path)
    expected_shape = (4, 6) if orientation == 3 else (6, 4)
    assert tuple(image.shape[1:]) == expected_shape
    assert image_size(path) == expected_shape and raw_size(path) == (4, 6)
    red = (image[0] == 1) & (image[1] == 0)
    assert torch.nonzero(red).tolist() == [list(corner)]


def test_modes_become_rgb(tmp_path):
    gray = np.array([[0, 51], [255, 102]], dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "l.png")
    assert torch.allclose(load_image(tmp_path / "l.png"), torch.tensor(gray / 255.0).float().expand(3, 2, 2))

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 1], rgba[..., 3] = 200, 0  # alpha dropped, colour kept (torchvision / ultralytics behaviour)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert torch.allclose(load_image(tmp_path / "rgba.png")[1], torch.full((2, 2), 200 / 255))

    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png")
    assert (load_image(tmp_path / "p.png")[:, 0, 1] * 255).round().tolist() == [10, 20, 30]

    sixteen = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "16.png")  # a 16-bit grayscale PNG
    loaded = load_image(tmp_path / "16.png")
    # Scaled by 65535, not clipped at 255 as Image.convert("RGB") would (1000 -> 1.0).
    assert torch.allclose(loaded[2], torch.tensor(sixteen / 65535.0).float())


def test_pixel_limit(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match=r"big.png: 30x20 = 600 pixels exceeds the limit of 599"):
        load_image(tmp_path / "big.png", max_pixels=599)
    assert load_image(tmp_path / "big.png", max_pixels=600).shape == (3, 20, 30)


def test_truncated_unreadable_missing(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.jpg: cannot decode the image, truncated"):
        load_image(tmp_path / "cut.jpg")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageReadError, match="text.png: not a readable image"):
        load_image(tmp_path / "text.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")
    assert [p.name for p in list_images(tmp_path)] == ["cut.jpg", "full.jpg", "text.png"]
