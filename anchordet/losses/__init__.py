from anchordet.losses.box import box_regression_loss, smooth_l1
from anchordet.losses.dense_targets import DenseTargetBuilder, DenseTargets
from anchordet.losses.focal import dense_focal_loss, sigmoid_focal_loss

__all__ = ["DenseTargetBuilder", "DenseTargets", "box_regression_loss", "smooth_l1",
           "dense_focal_loss", "sigmoid_focal_loss"]
