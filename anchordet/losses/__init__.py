from anchordet.losses.box import box_regression_loss, smooth_l1
from anchordet.losses.dense_targets import DenseTargetBuilder, DenseTargets, ignore_regions
from anchordet.losses.fast_rcnn import fast_rcnn_loss
from anchordet.losses.focal import dense_focal_loss, sigmoid_focal_loss
from anchordet.losses.multibox import multibox_loss
from anchordet.losses.roi_targets import RoITargetBuilder, RoITargets

__all__ = ["DenseTargetBuilder", "DenseTargets", "RoITargetBuilder", "RoITargets", "box_regression_loss",
           "dense_focal_loss", "fast_rcnn_loss", "ignore_regions", "multibox_loss", "sigmoid_focal_loss", "smooth_l1"]
