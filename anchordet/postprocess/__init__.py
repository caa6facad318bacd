from anchordet.postprocess.dense import DensePostprocess
from anchordet.postprocess.rescale import rescale_detections

__all__ = ["DensePostprocess", "rescale_detections"]
