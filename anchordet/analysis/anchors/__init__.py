"""Anchor analysis (``anchordet anchors``, docs/anchors.md): which gt boxes can a detector's
anchors learn, with its own training matcher, and which sizes and ratios would fit better.

- ``model_anchors``: a detector's ``training_anchors`` per resized input size (and another
  generator on the same feature maps);
- ``coverage``: per gt box its best IoU and positive anchors (a sparse lattice search equal to
  the plain all-anchors matcher), over a dataset's boxes resized as training resizes them;
- ``suggest``: a coordinate search over anchor sizes and ratios, printed as ``--set`` overrides;
- ``plots``: best-IoU histograms and box shapes against anchor shapes.
"""
