"""``anchordet.load(weights) -> Predictor``: from a weights file to detections in a few lines.

A ``Predictor`` holds a detector in eval mode with what its weights file says about inference:
the eval resize (keep-ratio ``min_size``/``max_size`` or a fixed square), the class names and the
dataset's category ids. ``predict`` takes images in any of the usual forms, resizes each as the
model was evaluated, runs the model in batches and maps the boxes back to each image's own
pixels. ``anchordet predict`` and ``anchordet evaluate`` use this object too.

    import anchordet
    predictor = anchordet.load("runs/digits/model.safetensors")
    for p in predictor.predict("photos/", score_thresh=0.5):
        print(p.source, p.names, p.boxes)
"""
from __future__ import annotations

import dataclasses
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor

from anchordet.config.inference import InferenceSettings
from anchordet.data.image_io import as_image_tensor
from anchordet.errors import UserError
from anchordet.prediction import Prediction, Skipped
from anchordet.structures.targets import Detections, Targets

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# detections kept by the model's own post-processing before ``classes`` and class-agnostic NMS
# cut them down to ``max_detections`` (the candidates' top-k bounds the count anyway).
_UNCAPPED = 1_000_000


@dataclass(frozen=True)
class _Options:
    score_thresh: float | None
    classes: tuple[int, ...] | None
    nms_thresh: float | None
    max_detections: int | None
    class_agnostic_nms: bool


def load(path: str | Path, device: str | torch.device | None = None, *, min_size: int | None = None,
         max_size: int | None = None, precision: str = "fp32", channels_last: bool | str = "auto",
         fold_bn: bool | str = "auto", backend: str | None = None, threads: int | None = None) -> "Predictor":
    """A ``Predictor`` for a weights file (``.safetensors`` written by anchordet: a trained run's
    ``model.safetensors`` / ``best.safetensors``, or ``anchordet convert``'s output), a training
    checkpoint (``.pt``, read with ``weights_only=True``) or a file of ``anchordet export``
    (``.onnx``: onnxruntime, ``.xml``: OpenVINO IR; see ``anchordet.backends``), which carries the
    same eval resize, class names and post-processing settings in its metadata.

    Args:
        device: "cpu", "cuda", "cuda:N", a ``torch.device``; None or "auto": CUDA when available
            (exported files: the CPU).
        min_size, max_size: override the keep-ratio eval resize of the weights file (refused for
            fixed-size models such as SSD, whose input side is part of the architecture).
        precision: "fp32", "bf16" (CPUs with AVX512_BF16 / AMX, GPUs) or "fp16" (GPUs): the
            network's arithmetic; post-processing stays fp32. Falls back to fp32 with one line
            where the device lacks it (``anchordet.runtime.precision``). OpenVINO: fp32 or bf16
            (its inference precision hint); onnxruntime: the file's own.
        channels_last, fold_bn: "auto" (where measured faster), True or False
            (``anchordet.runtime.acceleration``); both change results by float rounding only.
        backend: None (by the suffix: .onnx onnxruntime, .xml OpenVINO) or "openvino" for an .onnx.
        threads: CPU threads of an exported file's runtime (None: the runtime's default).
    """
    from anchordet.backends import backend_for_file, open_exported

    if backend_for_file(path, backend) is not None:
        runner = open_exported(path, backend, precision=precision, threads=threads)
        return Predictor(runner, runner.info.settings, "cpu", min_size=min_size, max_size=max_size, source=str(path))
    from anchordet.runtime.acceleration import accelerate_for_inference
    from anchordet.devices import resolve_device
    from anchordet.weights_file import load_detector

    torch_device = resolve_device("auto" if device is None else str(device))
    model, read = load_detector(path, torch_device)
    accelerate_for_inference(model, torch_device, precision, channels_last, fold_bn)
    return Predictor(model, read.inference, torch_device, min_size=min_size, max_size=max_size, source=str(path),
                     num_classes=read.model_config.num_classes)


class Predictor:
    """A detector or exported file (``backend``: torch, onnxruntime, OpenVINO; ``anchordet.backends``)
    plus its eval resize and class names (see the module docstring)."""

    def __init__(self, model: "torch.nn.Module | Backend", settings: InferenceSettings = InferenceSettings(),
                 device: torch.device | str = "cpu", *,
                 min_size: int | None = None, max_size: int | None = None, source: str = "model",
                 num_classes: int | None = None):
        from anchordet.backends import Backend, TorchBackend

        self.backend = model if isinstance(model, Backend) else TorchBackend(model, device)
        self.model = self.backend.model if isinstance(self.backend, TorchBackend) else None  # None: an exported file
        self.device = torch.device(device)
        self.source = source
        self.settings = settings
        num_classes = int(num_classes if num_classes is not None else self.backend.num_classes)
        self.class_names = list(settings.class_names or [str(i) for i in range(num_classes)])
        self.category_ids = [int(c) for c in (settings.category_ids or range(num_classes))]
        self.transform = eval_transform(self.settings, min_size, max_size, source)

    @property
    def num_classes(self) -> int:
        return int(self.backend.num_classes)

    # ------------------------------------------------------------------------------- public API
    def predict(self, source: Any, score_thresh: float | None = None, classes: Sequence[int | str] | None = None,
                nms_thresh: float | None = None, max_detections: int | None = None,
                class_agnostic_nms: bool = False, batch_size: int = 8, tile: int | None = None,
                tile_overlap: float = 0.2, **tile_args) -> list[Prediction]:
        """Detect objects in ``source``; one ``Prediction`` per image, in input order.

        Args:
            source: an image file, a folder (its images, sorted), a glob pattern, a PIL image, a
                numpy (H, W, 3) uint8 RGB array, a (3, H, W) tensor (float in [0, 1] or uint8),
                or a list of any of these.
            score_thresh: keep detections scoring above this (default: the model's own).
            classes: keep only these classes (labels 0..K-1 or class names).
            nms_thresh: IoU of the per-class NMS (default: the model's own).
            max_detections: per image (default: the model's own).
            class_agnostic_nms: after the per-class NMS, also suppress overlapping boxes of
                different classes (one box per object).
            batch_size: images (tiles, with ``tile``) per forward pass.
            tile, tile_overlap, tile_args: predict on ``tile`` x ``tile`` windows at the image's own
                resolution, merged across tiles (``anchordet.tiling.tile_options``: ``tile_merge``,
                ``tile_metric``, ``tile_merge_thresh``, ``tile_full``); ``max_detections`` then
                caps the merged image. A TIFF is read window by window, at any size.
        Raises:
            UserError naming the input that cannot be read (``stream`` can skip those instead).
        """
        return [p for p in self.stream(source, score_thresh, classes, nms_thresh, max_detections, class_agnostic_nms,
                                       batch_size, tile=tile, tile_overlap=tile_overlap, **tile_args)]

    def stream(self, source: Any, score_thresh: float | None = None, classes: Sequence[int | str] | None = None,
               nms_thresh: float | None = None, max_detections: int | None = None,
               class_agnostic_nms: bool = False, batch_size: int = 8,
               skip_unreadable: bool = False, tile: int | None = None, tile_overlap: float = 0.2,
               **tile_args) -> Iterator[Prediction | Skipped]:
        """``predict`` as a generator: images are read ``batch_size`` at a time and each result
        is yielded as soon as its batch is done, so memory does not grow with the input count.
        ``skip_unreadable``: yield a ``Skipped`` for an unreadable image and go on."""
        options = self.options(score_thresh, classes, nms_thresh, max_detections, class_agnostic_nms)
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        if tile is not None:  # one image at a time, each in batches of windows
            from anchordet.tiling import stream_tiled, tile_options

            tiling = tile_options(tile, tile_overlap, batch_size, **tile_args)
            yield from stream_tiled(self, _expand_source(source), options, tiling, skip_unreadable)
            return
        batch: list[tuple[str, Tensor | None, str | None]] = []  # skipped inputs wait in place: input order
        for name, image, reason in _read_all(_expand_source(source), skip_unreadable):
            batch.append((name, image, reason))
            if sum(image is not None for _, image, _ in batch) == batch_size:
                yield from self._run_batch(batch, options)
                batch = []
        if batch:
            yield from self._run_batch(batch, options)

    def predict_tensors(self, images: Sequence[Tensor], score_thresh: float | None = None,
                        classes: Sequence[int | str] | None = None, nms_thresh: float | None = None,
                        max_detections: int | None = None, class_agnostic_nms: bool = False) -> list[Detections]:
        """(3, H_i, W_i) float images in [0, 1] -> their ``Detections`` in their own pixels (one batch)."""
        options = self.options(score_thresh, classes, nms_thresh, max_detections, class_agnostic_nms)
        return self.detect_batch(list(images), options)

    def predict_video(self, source: Any, out: str | Path | None = None, score_thresh: float | None = None,
                      classes: Sequence[int | str] | None = None, nms_thresh: float | None = None,
                      max_detections: int | None = None, class_agnostic_nms: bool = False,
                      batch_size: int = 8, draw: bool = True, on_bad_frame=None,
                      progress: bool = True, tile: int | None = None, tile_overlap: float = 0.2,
                      **tile_args) -> Iterator[Prediction]:
        """Detect objects in every frame of a video, streaming (see ``anchordet.video``).

        Args:
            source: a video file, a URL FFmpeg opens (rtsp://, http://, file:), a capture device
                (/dev/video0), or an iterable of frames (tensors, arrays, PIL images).
            out: if given (and ``draw``), write the annotated video there (.mp4, .mkv, .mov: H.264;
                .webm: VP9); small videos are enlarged to about 400 px as pictures are.
            on_bad_frame: called with the ``FrameError`` of a frame that cannot be decoded, which
                is then skipped (default: the error is raised).
            progress: frames and frames/s on stderr (a bar on a terminal, lines in a log).
            tile, tile_overlap, tile_args: each frame predicted tiled, as ``predict`` does.
        Yields:
            one ``Prediction`` per frame (``frame`` = its number, from 0), as frames are decoded.
        Raises:
            UserError naming the video when it cannot be opened; ``anchordet.video.FrameError``
            subclasses it for a frame that cannot be decoded (with its number).
        """
        from anchordet.tiling import tile_options

        options = self.options(score_thresh, classes, nms_thresh, max_detections, class_agnostic_nms)
        return predict_frames(self, source, options, out=out, batch_size=batch_size, draw=draw, on_bad_frame=on_bad_frame,
                              progress=progress, tiling=tile_options(tile, tile_overlap, batch_size, **tile_args))

    # ---------------------------------------------------------------------------------- helpers
    def options(self, score_thresh=None, classes=None, nms_thresh=None, max_detections=None,
                class_agnostic_nms=False) -> _Options:
        """Checked prediction options (classes as label indices)."""
        for name, value, low, high in (("score_thresh", score_thresh, 0.0, 1.0), ("nms_thresh", nms_thresh, 0.0, 1.0)):
            if value is not None and not (low <= float(value) <= high):  # also refuses nan
                raise UserError(f"{name} must be in [{low:g}, {high:g}], got {value}")
        if max_detections is not None and int(max_detections) < 1:
            raise UserError(f"max_detections must be >= 1, got {max_detections}")
        labels = None if classes is None else tuple(self._label_of(c) for c in classes)
        options = _Options(None if score_thresh is None else float(score_thresh), labels,
                           None if nms_thresh is None else float(nms_thresh),
                           None if max_detections is None else int(max_detections), bool(class_agnostic_nms))
        self.backend.check_postprocess(self._postprocess(options))  # an exported graph with NMS inside
        return options

    def _label_of(self, value: int | str) -> int:
        if isinstance(value, str) and value in self.class_names:
            return self.class_names.index(value)
        try:
            label = int(value)
        except (TypeError, ValueError):
            raise UserError(f"class {value!r} is not a class of {self.source}; its classes: "
                            f"{', '.join(self.class_names)}") from None
        if not 0 <= label < self.num_classes:
            raise UserError(f"class {label} outside 0..{self.num_classes - 1} ({self.source} has "
                            f"{self.num_classes} classes)")
        return label

    def _run_batch(self, batch: list[tuple[str, Tensor | None, str | None]],
                   options: _Options) -> Iterator[Prediction | Skipped]:
        images = [image for _, image, _ in batch if image is not None]
        detections = iter(self.detect_batch(images, options) if images else [])
        for name, image, reason in batch:
            if image is None:
                yield Skipped(name, reason)
            else:
                yield Prediction(next(detections), self.class_names, self.category_ids, name,
                                 (int(image.shape[-2]), int(image.shape[-1])))

    @torch.inference_mode()
    def detect_batch(self, originals: list[Tensor], options: _Options) -> list[Detections]:
        """(3, H_i, W_i) float images in [0, 1] (images, frames, tiles) -> ``Detections`` in their own
        pixels: resize as evaluated, ``backend.predict`` the batch, map back, ``options``' filters."""
        from anchordet.postprocess.rescale import rescale_detections

        resized = [self.transform(image, Targets())[0] if self.transform else image for image in originals]
        raw = self.backend.predict(resized, self._postprocess(options))
        out = []
        for det, image, original in zip(raw, resized, originals):
            det = rescale_detections(det.to("cpu"), tuple(image.shape[-2:]), tuple(original.shape[-2:]))
            out.append(_filter(det, options, self._max_detections(options)))
        return out

    def _postprocess(self, options: _Options):
        """The model's post-processing with this call's thresholds (None: the model's own)."""
        post = self.backend.postprocess
        changes = {}
        if options.score_thresh is not None:
            changes["score_thresh"] = options.score_thresh
        if options.nms_thresh is not None:
            changes["nms_thresh"] = options.nms_thresh
        if options.classes is not None or options.class_agnostic_nms or options.max_detections is not None:
            changes["max_detections"] = _UNCAPPED  # cut after the class filter and agnostic NMS
        if not changes:
            return None
        return dataclasses.replace(post, **changes)

    def _max_detections(self, options: _Options) -> int:
        if options.max_detections is not None:
            return options.max_detections
        return int(getattr(self.backend.postprocess, "max_detections", _UNCAPPED))


def _filter(det: Detections, options: _Options, max_detections: int) -> Detections:
    """``classes``, then class-agnostic NMS, then the best ``max_detections`` (scores stay sorted)."""
    if options.classes is not None:
        wanted = torch.tensor(options.classes, dtype=torch.int64)
        det = det.select(torch.isin(det.labels, wanted))
    if options.class_agnostic_nms and len(det):
        from anchordet.ops.nms import nms

        iou = options.nms_thresh if options.nms_thresh is not None else 0.5
        det = det.select(nms(det.boxes, det.scores, iou))
    if len(det) > max_detections:
        det = det.select(torch.arange(max_detections))
    return det


def eval_transform(settings: InferenceSettings, min_size: int | None = None, max_size: int | None = None,
                   source: str = "model"):
    """The deterministic resize a model was evaluated with (``build_transforms``; none if its
    weights do not say). ``min_size``/``max_size`` override a keep-ratio resize (or give one to
    weights without); a fixed-size model refuses them."""
    from anchordet.data.transforms import build_transforms

    kind = settings.eval_transform
    if (min_size is not None or max_size is not None) and kind == "fixed":
        raise UserError(f"{source}: this model takes fixed {settings.fixed_size} x {settings.fixed_size} inputs; "
                        f"min_size / max_size apply to keep-ratio models only")
    for name, value in (("min_size", min_size), ("max_size", max_size)):
        if value is not None and int(value) < 1:
            raise UserError(f"{name} must be >= 1, got {value}")
    if kind is None and min_size is None and max_size is not None:
        raise UserError(f"{source}: its weights name no eval resize; give min_size with max_size")
    if min_size is not None or max_size is not None:
        low = int(min_size if min_size is not None else settings.min_size)
        high = int(max_size if max_size is not None else settings.max_size or low)
        settings = dataclasses.replace(settings, eval_transform="resize", min_size=low, max_size=max(low, high))
    return build_transforms(settings, train=False)


# ------------------------------------------------------------------------------------- inputs
def _expand_source(source: Any) -> Iterator[tuple[str, Any]]:
    """(name, item) for every image of ``source``: a path item is a ``Path`` (read later), an
    in-memory image stays as it is."""
    items = source if isinstance(source, (list, tuple)) else [source]
    count = 0
    seen: set[Path] = set()
    for item in items:
        if isinstance(item, (str, Path)):
            for path in collect_images([str(item)]):
                if path not in seen:
                    seen.add(path)
                    yield str(path), path
        else:
            yield f"<image {count}>", item
        count += 1


def _read_all(items: Iterable[tuple[str, Any]], skip_unreadable: bool) -> Iterator[tuple[str, Tensor | None, str | None]]:
    """(name, image or None, why it could not be read or None)."""
    for name, item in items:
        try:
            yield name, as_image_tensor(item, name), None
        except (UserError, OSError) as exc:
            if not skip_unreadable:
                raise
            yield name, None, str(exc)


def collect_images(inputs: Sequence[str]) -> list[Path]:
    """Files, folders (their images, sorted, non-recursive) and globs, in order, without duplicates."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        elif any(ch in item for ch in "*?["):
            found += sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise UserError(f"no such image, folder or pattern: {item}")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UserError(f"no images found in {' '.join(inputs)} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return unique


# --------------------------------------------------------------------------------------- video
def predict_frames(predictor, source: Any, options, out: str | Path | None = None, batch_size: int = 8,
                   draw: bool = True, on_bad_frame: Callable | None = None,
                   progress: bool = True, tiling=None) -> Iterator:
    """``Predictor.predict_video``'s generator: one ``Prediction`` per frame, as decoded.

    The annotated video (``out``) is committed when the generator ends, also when it is closed
    early or an error stops it (the frames done so far are kept). ``tiling``: ``TileOptions``.
    """
    from anchordet.tiling import detect_frames
    from anchordet.video import FrameProgress, VideoWriter, frames_of
    from anchordet.visualize import draw_detections, readable_scale

    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    frames, fps, total, name = frames_of(source, on_bad_frame)
    writer = VideoWriter(out, fps) if out is not None and draw else None
    meter = FrameProgress(name, total, enabled=progress)
    failed = False
    try:
        batch: list[tuple[int, Tensor]] = []
        for item in _with_flush(frames, batch_size):
            if item is not None:
                batch.append(item)
                if len(batch) < batch_size:
                    continue
            if not batch:
                continue
            detections = detect_frames(predictor, [image for _, image in batch], options, tiling)
            for (index, image), det in zip(batch, detections):
                size = (int(image.shape[-2]), int(image.shape[-1]))
                if writer is not None:
                    writer.write(draw_detections(image, det, predictor.class_names, scale=readable_scale(*size)))
                yield Prediction(det, predictor.class_names, predictor.category_ids, f"{name}#frame {index}",
                                 size, index)
            meter.update(len(batch))
            batch = []
    except BaseException:
        failed = True
        raise
    finally:
        meter.close()
        if writer is not None:
            try:
                writer.close()  # keeps the frames written so far, also after an error
            except Exception:
                if not failed:
                    raise


def _with_flush(frames: Iterator, batch_size: int) -> Iterator:
    """The frames, then None: the signal to run the last, partial batch."""
    yield from frames
    yield None
