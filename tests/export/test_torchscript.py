"""TorchScript export: the traced and saved module equals eager ``forward`` at shapes other than
the traced example's (tracing must have recorded the size arithmetic, not constants)."""
from __future__ import annotations

import pytest
import torch

from anchordet.config.schema import ModelConfig
from anchordet.export.torchscript import export_torchscript
from helpers import preset_model


# torch.jit.load warns that TorchScript is deprecated (torch 2.14); loading it is the point here.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

@pytest.mark.parametrize("kind", ["retinanet", "ssd"])
def test_saved_trace_equals_eager_at_other_shapes(kind, tmp_path):
    torch.manual_seed(0)
    if kind == "retinanet":
        model = ModelConfig("retinanet_resnet_fpn", {"depth": 18, "num_classes": 3, "backbone_width": 8,
                                                     "fpn_channels": 16, "head_channels": 16}).build().eval()
        example, shapes = (64, 96), [(1, 3, 64, 96), (2, 3, 128, 64)]
    else:
        model = preset_model("ssd_digits", num_classes=3, width=8).eval()
        example, shapes = None, [(1, 3, 128, 128), (3, 3, 128, 128)]
    path = export_torchscript(model, tmp_path / "model.pt", example_size=example, batch_size=2)
    loaded = torch.jit.load(str(path))
    for shape in shapes:
        images = torch.rand(shape)
        with torch.no_grad():
            expected = model(images)
            got = loaded(images)
        assert len(got) == 3
        for value, reference in zip(got, expected[:3]):
            assert value.shape == reference.shape
            assert (value - reference).abs().max() <= 1e-4
