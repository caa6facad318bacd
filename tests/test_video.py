"""Video through PyAV: frames in, detections and an annotated video out, streaming; broken input."""
import json
import os
import stat

import av
import numpy as np
import pytest
import torch

import anchordet
from anchordet.cli.main import main
from anchordet.config.schema import DigitsOptions
from anchordet.data.digits import DigitsDataset
from anchordet.errors import UserError
from anchordet.video import FrameError, VideoError, read_frames
from helpers import write_tiny_weights

FRAMES = 6


def scene_frames(count=FRAMES, side=64):
    """(H, W, 3) uint8 frames: digits test scenes."""
    scenes = DigitsDataset("test", DigitsOptions(num_val=count, canvas_size=side))
    return [(scenes[i].image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy() for i in range(count)]


def encode(path, frames, codec="ffv1", pix_fmt="bgr0", rate=10):
    """Encode frames with PyAV (ffv1 is lossless: decoded frames equal the arrays)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    write_tiny_weights(root / "w.safetensors")
    frames = scene_frames()
    return root, frames, encode(root / "clip.mkv", frames)


def test_cli_predict_on_a_video_writes_the_annotated_video_and_per_frame_results(clip, tmp_path, capsys):
    root, frames, path = clip
    assert main(["predict", "--weights", str(root / "w.safetensors"), str(path), "--out", str(tmp_path / "out"),
                 "--score-thresh", "0.0", "--device", "cpu", "--batch-size", "4"]) == 0
    images = json.loads((tmp_path / "out" / "images.json").read_text())
    assert [im["frame"] for im in images] == list(range(FRAMES)) and images[0]["file_name"] == str(path)
    results = json.loads((tmp_path / "out" / "detections.json").read_text())
    # each frame's results are the Predictor's on that (losslessly decoded) frame
    predictor = anchordet.load(root / "w.safetensors", "cpu")
    for i, array in enumerate(frames):
        [expected] = predictor.predict(array, score_thresh=0.0)
        mine = [r for r in results if r["image_id"] == i]
        assert len(mine) == len(expected) > 0
        torch.testing.assert_close(torch.tensor([r["score"] for r in mine]), expected.scores, atol=1e-5, rtol=0)
    with av.open(str(tmp_path / "out" / "clip.mp4")) as written:
        decoded = [f.to_ndarray(format="rgb24") for f in written.decode(video=0)]
    assert len(decoded) == FRAMES and decoded[0].shape == (448, 448, 3)  # 64 px frames drawn at x7
    assert "frames/s" in capsys.readouterr().err


def test_predict_video_streams_frames_from_an_iterator(clip):
    """Frames are pulled as results are consumed: never more than one batch ahead."""
    root, frames, _ = clip
    pulled = []

    def source():
        for i in range(40):
            pulled.append(i)
            yield frames[i % FRAMES]

    predictor = anchordet.load(root / "w.safetensors", "cpu")
    count = 0
    for k, prediction in enumerate(predictor.predict_video(source(), batch_size=4, progress=False)):
        assert prediction.frame == k
        assert len(pulled) <= (k // 4 + 1) * 4  # only the current batch has been read
        count += 1
    assert count == 40


def test_a_file_url_goes_through_the_same_reader(clip):
    _, frames, path = clip
    decoded = list(read_frames(f"file:{path}"))
    assert [i for i, _ in decoded] == list(range(FRAMES))
    np.testing.assert_array_equal((decoded[2][1] * 255).round().byte().permute(1, 2, 0).numpy(), frames[2])


def test_a_corrupt_frame_is_named_with_its_number_and_skipped(tmp_path, capsys):
    write_tiny_weights(tmp_path / "w.safetensors")
    path = encode(tmp_path / "png.avi", scene_frames(), codec="png", pix_fmt="rgb24")
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 4) if data[i:i + 4] == b"\x89PNG"]
    idat = data.index(b"IDAT", starts[3])
    data[idat + 4:idat + 400] = b"\xff" * 396  # frame 3's compressed pixels
    path.write_bytes(bytes(data))
    with pytest.raises(FrameError, match="png.avi: frame 3"):
        list(read_frames(path))
    assert main(["predict", "--weights", str(tmp_path / "w.safetensors"), str(path), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-draw"]) == 1
    captured = capsys.readouterr()
    assert [line for line in captured.err.splitlines() if "skipped" in line] == [
        line for line in captured.err.splitlines() if "frame 3" in line]
    assert "skipped 1 unreadable" in captured.out
    frames = [im["frame"] for im in json.loads((tmp_path / "out" / "images.json").read_text())]
    assert frames == [0, 1, 2, 4, 5]


def test_a_video_that_cannot_be_opened_is_skipped_with_one_line_and_the_next_input_read(clip, tmp_path, capsys):
    """Issue 28, item 3: `predict garbage.mp4 good.mkv` stopped (exit 2) at the first and never
    read the second; now it is skipped like an unreadable image (exit 1)."""
    root, _, good = clip
    (tmp_path / "bad.mp4").write_text("not a video")
    assert main(["predict", "--weights", str(root / "w.safetensors"), str(tmp_path / "bad.mp4"), str(good),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--no-draw"]) == 1
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and skipped[0].startswith("anchordet predict: skipped ") and \
        "bad.mp4: cannot open the video" in skipped[0]
    assert f"{good}: {FRAMES} frames" in captured.out and "skipped 1 unreadable" in captured.out
    images = json.loads((tmp_path / "out" / "images.json").read_text())
    assert [im["frame"] for im in images] == list(range(FRAMES)) and {im["file_name"] for im in images} == {str(good)}
    assert main(["predict", "--weights", str(root / "w.safetensors"), str(tmp_path / "missing.mp4"),
                 "--out", str(tmp_path / "out2"), "--device", "cpu"]) == 2
    assert "no such video file: " in capsys.readouterr().err and not (tmp_path / "out2").exists()
    with pytest.raises(VideoError, match="no such video file"):
        list(anchordet.load(root / "w.safetensors", "cpu").predict_video(tmp_path / "missing.mp4"))
    assert issubclass(VideoError, UserError)


def test_the_written_video_gets_the_umask_permissions(tmp_path):
    """mkstemp makes its file 0o600; the video must get what open() would give (issue 19 item 5)."""
    from PIL import Image

    from anchordet.video import VideoWriter

    previous = os.umask(0o022)
    try:
        writer = VideoWriter(tmp_path / "out.mp4")
        for _ in range(2):
            writer.write(Image.new("RGB", (32, 32)))
        path = writer.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def zero_frame_video(path):
    """An AVI whose video stream has no frame (the probe's "0-frame video"): opens and decodes
    to nothing, without an error."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "rgb24"
        container.start_encoding()
    with av.open(str(path)) as check:
        assert len(check.streams.video) == 1 and not list(check.decode(video=0))
    return path


def test_a_video_of_0_frames_is_one_line_and_no_file(clip, tmp_path, capsys):
    """Issue 28, item 9: it returned 0 and wrote a 0-byte MP4."""
    root, _, good = clip
    empty = zero_frame_video(tmp_path / "empty.avi")
    assert main(["predict", "--weights", str(root / "w.safetensors"), str(empty), str(good),
                 "--out", str(tmp_path / "out"), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert [line for line in captured.err.splitlines() if "skipped" in line] == [
        f"anchordet predict: skipped {empty}: no frame decoded (nothing written)"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "detections.json", "images.json"]
    predictor = anchordet.load(root / "w.safetensors", "cpu")
    assert list(predictor.predict_video([], out=tmp_path / "none.mp4")) == []
    assert list(predictor.predict_video(empty, out=tmp_path / "none.mp4")) == []
    assert not list(tmp_path.glob("*none*")) and not list(tmp_path.glob(".none*"))
