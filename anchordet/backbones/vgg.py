"""VGG16 (Simonyan and Zisserman 2015, configuration D), with or without batch norm, as the
Faster R-CNN backbone (seed 003).

Module names are those of ``torchvision.models.vgg``: ``features.N`` for the convolutional part
and ``classifier.0`` / ``classifier.3`` for fc6 / fc7, so torchvision's ImageNet state dicts
(``vgg16`` and ``vgg16_bn``) load with ``load_torchvision_weights(model, path,
ignore_prefixes=VGG_IGNORED_PREFIXES)``: only fc8 (``classifier.6``, the 1000 ImageNet
classes) is left out.

The last max pool (pool5) is removed, so ``forward`` returns conv5_3 (after its ReLU) at
stride 16 (Ren et al. 2015, Sec. 3.1; seed 003). Removing the last entry of ``features`` keeps
every other index, hence every key, unchanged. fc6 expects the 7x7 RoI-pooled conv5_3
(512 * 7 * 7 = 25088 inputs); ``pop_classifier`` hands fc6-fc7 to the RoI head.
"""
from __future__ import annotations

from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

# Configuration D of Simonyan and Zisserman 2015, Table 1, in units of the first stage's width:
# conv1_x .. conv5_x, "M" = 2x2 max pool. pool5 is dropped (see the module docstring).
VGG16_STAGES: tuple[tuple[int, int], ...] = ((1, 2), (2, 2), (4, 3), (8, 3), (8, 3))  # (width multiple, convs)
VGG_IGNORED_PREFIXES = ("classifier.6.",)
STRIDE = 16


def vgg16_features(batch_norm: bool, width: int = 64, frozen_bn: bool = True) -> nn.Sequential:
    """conv1_1 .. conv5_3 + ReLU with max pools after stages 1-4, torchvision's indices."""
    layers: list[nn.Module] = []
    in_channels = 3
    for stage, (multiple, num_convs) in enumerate(VGG16_STAGES):
        channels = width * multiple
        for _ in range(num_convs):
            layers.append(nn.Conv2d(in_channels, channels, 3, padding=1))
            if batch_norm:
                # Frozen by default: detection batches of 1-2 images give useless batch statistics
                # (same reasoning as the ResNet backbone); frozen_bn=False trains BN as seed 003.
                layers.append(FrozenBatchNorm2d(channels) if frozen_bn else nn.BatchNorm2d(channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
        if stage < len(VGG16_STAGES) - 1:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg_fc_layers(in_features: int, channels: int = 4096, dropout: float = 0.5) -> nn.Sequential:
    """fc6, ReLU, Dropout, fc7, ReLU, Dropout: torchvision's ``classifier[:6]``."""
    return nn.Sequential(
        nn.Linear(in_features, channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(channels, channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
    )


class VGG16(nn.Module):
    """Args:
        batch_norm: VGG16-BN (torchvision ``vgg16_bn``, seed 003) or plain VGG16.
        width: channels of conv1 (64 in the paper); smaller values make tiny test models.
        frozen_bn: FrozenBatchNorm2d instead of BatchNorm2d (only with ``batch_norm``).
        trainable_stages: how many conv stages, counted from conv5 backwards, get gradients
            (0..5). Ren et al. 2015 (Sec. 4.1) fine-tune conv3_1 and up: 3.
        fc_channels / dropout: fc6-fc7 width (4096) and dropout (0.5), as torchvision.
        pool_size: the RoI pooling size fc6 is built for (7).
    """

    def __init__(self, batch_norm: bool = True, width: int = 64, frozen_bn: bool = True,
                 trainable_stages: int = 5, fc_channels: int = 4096, dropout: float = 0.5, pool_size: int = 7):
        super().__init__()
        if not 0 <= trainable_stages <= 5:
            raise ValueError(f"trainable_stages must be in 0..5, got {trainable_stages}")
        self.features = vgg16_features(batch_norm, width, frozen_bn)
        self.out_channels = width * VGG16_STAGES[-1][0]
        self.stride = STRIDE
        self.classifier = vgg_fc_layers(self.out_channels * pool_size * pool_size, fc_channels, dropout)
        self.fc_channels = fc_channels
        self._freeze(5 - trainable_stages)

    def _freeze(self, frozen_stages: int) -> None:
        stage = 0
        for module in self.features:
            if isinstance(module, nn.MaxPool2d):
                stage += 1
            elif stage < frozen_stages:
                for param in module.parameters():
                    param.requires_grad_(False)

    def pop_classifier(self) -> nn.Sequential:
        """Remove fc6-fc7 from the backbone and return them (for the RoI head), so that the
        detector owns each parameter once. Load ImageNet weights before calling this."""
        classifier = self.classifier
        del self.classifier
        return classifier

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) normalized images -> [conv5_3 (B, 8 * width, H // 16, W // 16)]
        (the pools round down; detectors pad inputs to a multiple of 16)."""
        return [self.features(x)]
