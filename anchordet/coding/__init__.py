from anchordet.coding.box_coder import DEFAULT_SCALE_CLAMP, SSD_BOX_CODER, BoxCoder

__all__ = ["BoxCoder", "SSD_BOX_CODER", "DEFAULT_SCALE_CLAMP"]
