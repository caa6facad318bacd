"""Tools that study a configured model against a dataset, above ``detectors/`` (they build
models and read datasets): ``analysis.anchors`` is the anchor analysis behind ``anchordet anchors``."""
