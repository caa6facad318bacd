"""``anchordet.load`` -> ``Predictor``: every input form, the eval resize, the options."""
import numpy as np
import pytest
import torch
from PIL import Image

import anchordet
from anchordet.data.image_io import load_image
from anchordet.errors import UserError
from anchordet.postprocess.rescale import rescale_detections
from anchordet.predictor import Skipped
from anchordet.structures.boxes import box_iou
from helpers import digit_scene_files, write_tiny_weights


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predictor")
    model = write_tiny_weights(root / "w.safetensors")
    paths = digit_scene_files(root / "images", count=3)
    return root, model, paths


def by_hand(model, image, size=96):
    """The detections the Predictor must give: resize to 96 x 96, predict, scale back."""
    resized = torch.nn.functional.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False,
                                              antialias=False)[0]
    return rescale_detections(model.predict([resized])[0], (size, size), tuple(image.shape[-2:]))


def test_every_input_form_gives_the_detections_of_the_resized_image_in_its_own_pixels(setup):
    root, model, paths = setup
    predictor = anchordet.load(root / "w.safetensors", device="cpu")
    assert predictor.class_names[3] == "digit3" and predictor.category_ids[3] == 103
    image = load_image(paths[0])
    expected = by_hand(model, image)
    assert len(expected) > 0
    uint8 = (image * 255).round().to(torch.uint8)
    forms = [str(paths[0]), paths[0], Image.open(paths[0]), uint8.permute(1, 2, 0).numpy(), image, uint8]
    for form in forms:
        [p] = anchordet.load(root / "w.safetensors", device="cpu").predict(form)
        assert p.image_size == (64, 64)
        torch.testing.assert_close(p.boxes, expected.boxes, atol=0.5, rtol=0)  # resize kernels differ slightly
        assert p.labels.tolist() == expected.labels.tolist()
        assert p.names == [f"digit{label}" for label in expected.labels.tolist()]


def test_folders_globs_and_lists_keep_order_and_drop_duplicates(setup):
    root, _, paths = setup
    predictor = anchordet.load(root / "w.safetensors", device="cpu")
    folder = [p.source for p in predictor.predict(root / "images", batch_size=2)]
    assert folder == [str(p.resolve()) for p in paths]
    globbed = [p.source for p in predictor.predict([str(root / "images" / "scene2.png"), str(root / "images" / "*.png")])]
    assert globbed == [str(paths[2].resolve()), str(paths[0].resolve()), str(paths[1].resolve())]
    # batching does not change the result
    one = predictor.predict(paths, batch_size=1)
    three = predictor.predict(paths, batch_size=3)
    for a, b in zip(one, three):
        torch.testing.assert_close(a.boxes, b.boxes, atol=1e-4, rtol=0)


def test_options_filter_as_defined(setup):
    root, _, paths = setup
    predictor = anchordet.load(root / "w.safetensors", device="cpu")
    [full] = predictor.predict(paths[0])  # the model's own post-processing: score > 0, 20 per image
    assert len(full) == 20
    [high] = predictor.predict(paths[0], score_thresh=float(full.scores[5]))
    assert high.scores.tolist() == full.scores[:5].tolist()  # strictly above the 6th score
    wanted = sorted(set(full.labels.tolist()))[:2]
    [only] = predictor.predict(paths[0], classes=[f"digit{wanted[0]}", wanted[1]])
    assert set(only.labels.tolist()) <= set(wanted) and len(only) > 0
    [few] = predictor.predict(paths[0], max_detections=3)
    assert few.scores.tolist() == full.scores[:3].tolist()
    [agnostic] = predictor.predict(paths[0], class_agnostic_nms=True, nms_thresh=0.3)
    iou = box_iou(agnostic.boxes, agnostic.boxes).fill_diagonal_(0)
    assert float(iou.max()) <= 0.3 + 1e-6  # no two kept boxes overlap more, whatever their class
    [loose] = predictor.predict(paths[0], nms_thresh=0.9, max_detections=1000)
    [tight] = predictor.predict(paths[0], nms_thresh=0.1, max_detections=1000)
    for label in tight.labels.unique():
        boxes = tight.boxes[tight.labels == label]
        assert float(box_iou(boxes, boxes).fill_diagonal_(0).max()) <= 0.1 + 1e-6
    assert len(loose) > len(tight)


@pytest.mark.parametrize("bad, message", [
    (dict(score_thresh=float("nan")), "score_thresh"), (dict(nms_thresh=1.5), "nms_thresh"),
    (dict(max_detections=0), "max_detections"), (dict(classes=["cat"]), "'cat' is not a class"),
    (dict(classes=[10]), "class 10 outside 0..9"), (dict(batch_size=0), "batch_size")])
def test_bad_options_are_one_clear_error(setup, bad, message):
    root, _, paths = setup
    with pytest.raises(UserError, match=message):
        anchordet.load(root / "w.safetensors", device="cpu").predict(paths[0], **bad)


def test_unreadable_inputs_are_named_or_skipped(setup, tmp_path):
    root, _, paths = setup
    predictor = anchordet.load(root / "w.safetensors", device="cpu")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UserError, match="broken.png"):
        predictor.predict([paths[0], broken])
    items = list(predictor.stream([paths[0], broken, paths[1]], skip_unreadable=True))
    assert [type(i).__name__ for i in items] == ["Prediction", "Skipped", "Prediction"]
    assert isinstance(items[1], Skipped) and items[1].source == str(broken.resolve())
    with pytest.raises(UserError, match=r"\(H, W, 3\) uint8"):
        predictor.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(UserError, match="no such image"):
        predictor.predict(tmp_path / "nope.jpg")


def test_fixed_size_models_refuse_min_and_max_size(tmp_path):
    write_tiny_weights(tmp_path / "ssd.safetensors", "ssd_vgg16")
    with pytest.raises(UserError, match="fixed 64 x 64 inputs"):
        anchordet.load(tmp_path / "ssd.safetensors", device="cpu", min_size=128)
    predictor = anchordet.load(tmp_path / "ssd.safetensors", device="cpu")
    [p] = predictor.predict(torch.rand(3, 50, 80))  # resized to 64 x 64, boxes back in 50 x 80
    assert p.image_size == (50, 80) and len(p) > 0
    assert float(p.boxes[:, 2].max()) <= 80 and float(p.boxes[:, 3].max()) <= 50


def test_min_size_override_is_honoured_for_keep_ratio_models(setup):
    root, model, paths = setup
    image = load_image(paths[0])
    [p] = anchordet.load(root / "w.safetensors", device="cpu", min_size=128, max_size=128).predict(image)
    expected = by_hand(model, image, size=128)
    torch.testing.assert_close(p.boxes, expected.boxes, atol=0.5, rtol=0)
