from anchordet.ops.nms import batched_nms, nms, nms_reference

__all__ = ["nms", "batched_nms", "nms_reference"]
