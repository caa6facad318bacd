"""`anchordet convert` and `anchordet export`, run in-process: torchvision weights file ->
safetensors -> detections equal torchvision's; back to a torchvision state dict; export to ONNX
(with post-processing) and TorchScript, checked against eager by onnxruntime / torch.jit."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torchvision.models import resnet18
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNet as TVRetinaNet
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from anchordet.cli.main import main
from anchordet.weights_file import load_detector, read_inference_settings
from anchordet.interop.torchvision import UNUSED_LOGIT_BIAS, coco_categories
from helpers import assert_detections_equal

# torch.jit.load warns that TorchScript is deprecated (torch 2.14); loading it is the point here.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

COCO_IDS, COCO_NAMES = coco_categories()
SIDE = 128


@pytest.fixture(scope="module")
def tv_model() -> TVRetinaNet:
    """A torchvision RetinaNet (ResNet-18, 16-channel FPN, 91 COCO logits) with random weights
    that score above 0.05 often; the unused COCO ids never score (ours has no logit for them)."""
    torch.manual_seed(0)
    body = resnet18(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"}, [128, 256, 512], 16,
                               extra_blocks=LastLevelP6P7(16, 16))
    model = TVRetinaNet(backbone, 91, min_size=SIDE, max_size=SIDE).eval()
    unused = [i for i in range(91) if i not in COCO_IDS]
    with torch.no_grad():
        # torchvision's N(0, 0.01) subnet convs shrink 16-channel features ~10x each: scores would
        # not depend on the image (all ties); 0.05 keeps them varied and unsaturated (0.05..0.72).
        for subnet in (model.head.classification_head.conv, model.head.regression_head.conv):
            for block in subnet:
                block[0].weight.normal_(0, 0.05)
        cls_logits = model.head.classification_head.cls_logits
        cls_logits.weight.normal_(0, 0.3)
        cls_logits.bias.normal_(-3, 1)
        cls_logits.weight.view(9, 91, -1)[:, unused] = 0
        cls_logits.bias.view(9, 91)[:, unused] = UNUSED_LOGIT_BIAS
        model.head.regression_head.bbox_reg.bias.normal_(0, 0.2)
    return model


@pytest.fixture(scope="module")
def converted_file(tv_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("convert")
    torch.save(tv_model.state_dict(), folder / "retinanet_tv.pth")
    out = folder / "retinanet.safetensors"
    # bn_eps 1e-5: this model was built with FrozenBatchNorm2d's default, not the COCO file's 0.
    assert main(["convert", str(folder / "retinanet_tv.pth"), "--arch", "retinanet_resnet50_fpn", "--bn-eps", "1e-5",
                 "--out", str(out)]) == 0
    return out


def test_convert_writes_weights_that_predict_like_torchvision(converted_file, tv_model, capsys):
    settings = read_inference_settings(converted_file)
    assert list(settings.category_ids) == COCO_IDS and list(settings.class_names) == COCO_NAMES
    assert settings.eval_transform == "resize" and settings.max_size == 1333  # torchvision's defaults
    model, read = load_detector(converted_file)
    config = read.model_config
    assert config.factory == "retinanet_resnet_fpn" and config.args["depth"] == 18 and config.num_classes == 80
    image = torch.rand(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = tv_model(list(image))[0]
    ours = model.predict(image)[0]
    assert len(ours.boxes) == len(theirs["boxes"]) >= 20
    assert torch.equal(torch.tensor(COCO_IDS)[ours.labels], theirs["labels"])
    assert (ours.boxes - theirs["boxes"]).abs().max() <= 1e-4
    assert (ours.scores - theirs["scores"]).abs().max() <= 1e-5


def test_convert_back_to_torchvision(converted_file, tv_model, tmp_path, capsys):
    back = tmp_path / "back.pth"
    assert main(["convert", str(converted_file), "--to", "torchvision", "--out", str(back)]) == 0
    assert "num_classes=91" in capsys.readouterr().out
    state = torch.load(back, weights_only=True)
    for key, value in tv_model.state_dict().items():
        assert torch.allclose(state[key], value, rtol=1e-6, atol=0), key


def test_export_onnx_with_postprocess_and_check(converted_file, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", "--weights", str(converted_file), "--format", "onnx", "--postprocess", "--dynamic",
                 "--size", str(SIDE), str(SIDE), "--out", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "detections" in printed and "(ok)" in printed
    model, _ = load_detector(converted_file)
    image = torch.rand(2, 3, 96, 160)  # another batch size and shape than exported
    sizes = np.array([[96, 160]] * 2, dtype=np.int64)
    boxes, scores, labels, batch_index = (torch.from_numpy(np.asarray(v)) for v in ort.InferenceSession(str(out)).run(
        None, {"images": image.numpy(), "image_sizes": sizes}))
    assert_detections_equal([boxes, scores, labels, batch_index], model.predict(image))


def test_export_torchscript_with_check(converted_file, tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert main(["export", "--weights", str(converted_file), "--format", "torchscript", "--size", "64", "96",
                 "--out", str(out), "--check"]) == 0
    assert "(ok)" in capsys.readouterr().out
    assert torch.jit.load(str(out))(torch.rand(1, 3, 64, 64))[0].shape[-1] == 80


def test_user_errors_exit_2_with_one_line(converted_file, tv_model, tmp_path, capsys):
    wrong = tmp_path / "retinanet_tv.pth"
    torch.save(tv_model.state_dict(), wrong)
    assert main(["convert", str(wrong), "--arch", "ssd300_vgg16", "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "nothing was converted" in err and "missing" in err and "retinanet_resnet50_fpn" in err
    assert main(["convert", str(wrong), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "--arch is required" in capsys.readouterr().err
    assert main(["export", "--weights", str(converted_file), "--format", "onnx", "--size", "100", "128",
                 "--out", str(tmp_path / "m.onnx")]) == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert main(["export", "--weights", str(tmp_path / "missing.safetensors"), "--format", "onnx",
                 "--out", str(tmp_path / "m.onnx")]) == 2
    assert "not found" in capsys.readouterr().err


def test_convert_a_truncated_safetensors_is_one_line(tv_model, tmp_path, capsys):
    from safetensors.torch import save_file

    source = tmp_path / "retinanet_tv.safetensors"
    save_file({k: v.contiguous() for k, v in tv_model.state_dict().items()}, str(source))
    source.write_bytes(source.read_bytes()[:100_000])
    assert main(["convert", str(source), "--arch", "retinanet_resnet50_fpn", "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{source}: not a readable safetensors file, truncated or damaged" in err, err
    assert not (tmp_path / "x.safetensors").exists()
