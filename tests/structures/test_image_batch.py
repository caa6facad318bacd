import pytest
import torch

from anchordet.structures.image_batch import ImageBatch, normalize


def test_pads_to_multiple_and_keeps_sizes():
    a, b = torch.rand(3, 50, 70), torch.rand(3, 64, 30)
    batch = ImageBatch.from_images([a, b], size_divisible=32)
    assert batch.tensor.shape == (2, 3, 64, 96)
    assert batch.image_sizes == [(50, 70), (64, 30)]
    assert torch.equal(batch.tensor[0, :, :50, :70], a)
    assert batch.tensor[0, :, 50:].abs().sum() == 0 and batch.tensor[1, :, :, 30:].abs().sum() == 0


def test_tensor_input_already_aligned_is_not_copied():
    images = torch.rand(2, 3, 64, 64)
    batch = ImageBatch.from_images(images, 32)
    assert batch.tensor is images and batch.image_sizes == [(64, 64)] * 2


def test_repad_image_batch():
    batch = ImageBatch.from_images([torch.rand(3, 40, 40)], 8)
    assert batch.padded_size == (40, 40)
    repadded = ImageBatch.from_images(batch, 32)
    assert repadded.padded_size == (64, 64) and repadded.image_sizes == [(40, 40)]


@pytest.mark.parametrize("images,message", [
    (torch.rand(3, 32, 32), "expected a float tensor (B, 3, H, W)"),
    (torch.rand(2, 1, 32, 32), "shape (2, 1, 32, 32)"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "dtype torch.uint8"),
    ([torch.rand(4, 8, 8)], "image 0: expected a float tensor (3, H, W); got (4, 8, 8)"),
    ([torch.rand(3, 8, 8), torch.zeros(3, 8, 8, dtype=torch.int32)], "image 1"),
    ([], "expected"),
])
def test_bad_images_say_what_was_expected(images, message):
    with pytest.raises(ValueError) as err:
        ImageBatch.from_images(images)
    assert message in str(err.value)


def test_normalize():
    images = torch.full((1, 3, 2, 2), 0.5)
    out = normalize(images, torch.tensor([0.5, 0.25, 0.0]), torch.tensor([1.0, 0.5, 0.25]))
    assert out[0, :, 0, 0].tolist() == [0.0, 0.5, 2.0]
