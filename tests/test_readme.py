"""The README's Python examples run as written (each ```python block, in order, in a folder that
holds the files they name: a weights file, photos, a video)."""
import re
from pathlib import Path

import pytest

from helpers import digit_scene_files, write_tiny_weights

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_examples():
    blocks = python_blocks()
    assert len(blocks) >= 2 and any("anchordet.load(" in block for block in blocks)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch, capsys):
    import av
    import numpy as np

    write_tiny_weights(tmp_path / "runs" / "digits" / "model.safetensors")
    digit_scene_files(tmp_path / "photos", count=2)
    [street] = digit_scene_files(tmp_path, count=1, prefix="street")
    street.rename(tmp_path / "street.jpg")  # a PNG under a .jpg name: PIL reads it by content
    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_blocks()[index], f"README.md python block {index}", "exec"), namespace)
    if "frames" in namespace:
        assert len(namespace["frames"]) == 3 and (tmp_path / "clip_boxes.mp4").is_file()
