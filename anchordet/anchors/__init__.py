from anchordet.anchors.grid import GridAnchorGenerator, anchors_inside, retinanet_anchor_sizes

__all__ = ["GridAnchorGenerator", "anchors_inside", "retinanet_anchor_sizes"]
