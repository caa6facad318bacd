"""The suggestion search: smaller anchors for tiny boxes, overrides that rebuild the same anchors."""
import math

import pytest
import torch
import yaml

from anchordet.analysis.anchors.coverage import AnnotatedImage, analyze_coverage
from anchordet.anchors.grid import GridAnchorGenerator, retinanet_anchor_sizes
from anchordet.anchors.ssd import SSDDefaultBoxes
from anchordet.analysis.anchors.suggest import AnchorChoice, make_generator, overrides, sample_images, suggest_anchors
from anchordet.matching.iou_matcher import IoUMatcher
from helpers import layout_anchors


def _retina(base=(32, 64, 128, 256, 512)):
    generator = GridAnchorGenerator(retinanet_anchor_sizes(base), (0.5, 1.0, 2.0), (8, 16, 32, 64, 128))
    return layout_anchors("retinanet", generator, IoUMatcher(0.5, 0.4, "ties"), generator.strides, 32)


def _tiny_box_images(count=12, side=10.0):
    """Squares of side 10 px on a 128 x 128 image: far below the 32 px smallest anchor
    (best IoU <= 100 / 1024 < 0.5), so none is learnable."""
    generator = torch.Generator().manual_seed(0)
    images = []
    for i in range(count):
        xy = torch.rand(3, 2, generator=generator) * 100
        images.append(AnnotatedImage(i, (128, 128), torch.cat([xy, xy + side], 1), torch.zeros(3, dtype=torch.int64)))
    return images


def test_tiny_boxes_get_smaller_anchors_and_more_coverage():
    anchors = _retina()
    images = _tiny_box_images()
    before = analyze_coverage(images, anchors.at).summary()
    assert before["confident"] == 0.0 and before["best_iou_mean"] <= 100 / 1024 + 1e-6
    suggestion = suggest_anchors(anchors, images)
    assert suggestion.generator.sizes_per_level[0][0] < 32 / 2  # at least halved
    after = analyze_coverage(images, anchors.with_generator(suggestion.generator).at).summary()
    # Not 100%: P3's lattice has a stride of 8, and a 10 px anchor 4 px off in x and y overlaps
    # a 10 px box by 6 * 6 / (200 - 36) = 0.22; only boxes near a lattice point reach 0.5.
    assert after["confident"] > 0.5 and suggestion.score[0] == after["confident"]
    assert suggestion.current_score == (0.0, before["best_iou_mean"])
    # the head's anchors per location stay 3 scales x 3 ratios
    assert suggestion.generator.num_anchors_per_location == 9


def test_well_fitting_anchors_are_kept():
    anchors = _retina()
    # boxes equal to two anchors: the current anchors are already perfect
    images = [AnnotatedImage(0, (128, 128), anchors.at((128, 128)).boxes[[400, 500]], torch.zeros(2, dtype=torch.int64))]
    suggestion = suggest_anchors(anchors, images, rounds=1)
    assert suggestion.current_score[0] == 1.0 and suggestion.generator is anchors.generator


def test_retinanet_overrides_rebuild_the_suggested_generator_through_the_config():
    from anchordet.config.load import load_config

    anchors = _retina((16, 32, 64, 128, 256))
    generator = make_generator(anchors, AnchorChoice(factor=0.5, spread=1.5, ratios=(0.4, 1.0, 2.5)))
    sets = overrides(anchors, generator)
    assert sets[0] == "model.anchor_base_sizes=[8, 16, 32, 64, 128]"
    model = load_config("retinanet_digits", sets).model.build()
    assert model.anchor_generator == generator
    assert generator.aspect_ratios == (0.4, 1.0, 2.5)
    # spread 1.5 octaves over 3 scales: 2^(0), 2^(0.5), 2^(1)
    assert generator.sizes_per_level[0] == pytest.approx((8.0, 8 * 1.4142, 16.0))


def test_ssd_and_rpn_overrides_are_factory_values():
    ssd = SSDDefaultBoxes((8, 16), (18, 30), (30, 46), ((1.5, 2.5), (2.0,)))
    anchors = layout_anchors("ssd", ssd, IoUMatcher(0.5, 0.5, "force"), ssd.steps, 1, 64)
    generator = make_generator(anchors, AnchorChoice(factor=2.0, ratios=0.5))
    assert generator.min_sizes == (36.0, 60.0) and generator.max_sizes == (60.0, 92.0)
    assert generator.aspect_ratios == ((1.5, 2.0), (1.5,))  # 1 + 0.5 i, the same count per level
    values = {s.split("=", 1)[0]: yaml.safe_load(s.split("=", 1)[1]) for s in overrides(anchors, generator)}
    assert values == {"model.min_sizes": [36, 60], "model.max_sizes": [60, 92], "model.aspect_ratios": [[1.5, 2], [1.5]]}
    rpn = GridAnchorGenerator(((128.0, 256.0, 512.0),), (0.5, 1.0, 2.0), (16,))
    anchors = layout_anchors("rpn", rpn, IoUMatcher(0.7, 0.3, "ties"), (16,), 16, None, 0.0)
    generator = make_generator(anchors, AnchorChoice(factor=0.25))
    assert overrides(anchors, generator) == ["model.anchor_sizes=[32, 64, 128]", "model.anchor_aspect_ratios=[0.5, 1, 2]"]


def test_sample_images_is_reproducible():
    images = _tiny_box_images(10)
    first = sample_images(images, 4)
    assert [i.image_id for i in first] == [i.image_id for i in sample_images(images, 4)]
    assert len(first) == 4 and len(sample_images(images, 50)) == 10
