"""``anchordet benchmark``: images/s, latency, GFLOPs, parameters and peak memory of a detector in
each precision, memory format and batch size, against the machine's measured peak."""
from __future__ import annotations

import argparse

from anchordet.cli.common import add_device_argument, positive_int
from anchordet.cli.main import UserError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "benchmark", help="speed of a model per precision and batch size (images/s, latency, GFLOP/s, memory)",
        description="Time a detector (a preset or YAML config with random weights, or a weights file) on "
                    "synthetic images: every combination of --precision, --channels-last, --fold-bn and "
                    "--batch-size, interleaved round by round so that other load hits each alike. Prints per "
                    "variant the median latency, images/s, the share of the call inside the network (backbone, "
                    "FPN, heads), GFLOPs per image (torch.utils.flop_counter), the network's achieved GFLOP/s "
                    "and its fraction of the machine's peak (a large matmul in the same precision), and the "
                    "first call's peak memory; then the parameters, the device and the CPU flags. With an exported file "
                    "(.onnx: onnxruntime, .xml: OpenVINO) as --weights or in --compare: the backends side by side "
                    "(images/s and latency of the predict step, against torch fp32 of the same model).",
        epilog="examples:\n  anchordet benchmark -c retinanet_digits --precision fp32 bf16 --batch-size 1 16 --threads 1\n"
               "  anchordet benchmark -w model.safetensors --compare model.onnx model_int8.onnx model.xml model_int8.xml "
               "--threads 1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", "-c", metavar="PRESET_OR_YAML", help="a preset or YAML config (random weights)")
    source.add_argument("--weights", "-w", help="a weights file (.safetensors), checkpoint (.pt) or exported file "
                                                "(.onnx, .xml)")
    parser.add_argument("--compare", nargs="+", metavar="FILE", default=[],
                        help="exported files (.onnx: onnxruntime, .xml: OpenVINO; fp32 or int8) to time beside the model "
                             "of --weights, interleaved (OpenVINO once per --precision fp32 / bf16)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (with --config), e.g. --set model.depth=50")
    parser.add_argument("--mode", nargs="+", choices=("infer", "train"), default=["infer"],
                        help="infer: predict (default); train: loss + backward + SGD step")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16", "fp16"), default=None,
                        help="precisions to compare (default: fp32 and bf16; on CUDA also fp16); one that the "
                             "device lacks falls back to fp32 with one line and is not repeated")
    parser.add_argument("--channels-last", nargs="+", choices=("auto", "on", "off"), default=["auto"],
                        help="memory formats to compare (auto: the family's measured default)")
    parser.add_argument("--fold-bn", nargs="+", choices=("auto", "on", "off"), default=["auto"],
                        help="BN folding to compare (auto: on for inference where the backbone folds, off for training)")
    parser.add_argument("--batch-size", nargs="+", type=positive_int, default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--size", nargs=2, type=positive_int, metavar=("HEIGHT", "WIDTH"),
                        help="input size (default: the model's fixed size, or the config's min_size square)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed rounds after the warm-up (default 5)")
    parser.add_argument("--warmup", type=positive_int, default=1, help="untimed calls per variant first (default 1)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads of torch, onnxruntime and OpenVINO (0: each one's default)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures and the machine as JSON")
    add_device_argument(parser)
    return parser


def run(args) -> int:
    import torch

    from anchordet.runtime import benchmark as B
    from anchordet.devices import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compare or _exported(args.weights):
        return _run_backends(args)
    device = resolve_device(args.device)
    B.configure_cuda(device, fixed_size=True)  # one input size: cuDNN may tune its algorithms
    model, source, size = _model(args)
    model = model.to(device)
    precisions = args.precision or (["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32", "bf16"])
    info = B.machine_info(device)
    total, trainable = B.count_parameters(model)
    print(f"{source}: {type(model).__name__}, {total / 1e6:.2f} M parameters ({trainable / 1e6:.2f} M trainable), "
          f"input {size[0]}x{size[1]}")
    print(f"device {info.get('gpu', info['device'])}; CPU {info['cpu']} [{' '.join(info['cpu_flags'])}]; "
          f"{info['threads']} threads; torch {info['torch']}")
    peaks: dict[str, float] = {}
    rows, say = [], _once()
    for mode in args.mode:
        variants = B.make_variants(precisions, args.channels_last, args.fold_bn, args.batch_size, model, device, mode,
                                   say=say)
        rows += B.benchmark(model, variants, mode, size, device, args.repeats, args.warmup, peaks)
    print(table(rows))
    print("peak: " + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peaks.items())
          + " (a large matmul on this device)")
    if args.json:
        from anchordet.files import atomic_write_json

        atomic_write_json(args.json, {"source": source, "model": type(model).__name__, "size": list(size),
                                      "parameters": total, "trainable_parameters": trainable, "machine": info,
                                      "peak_gflop_per_s": peaks, "rows": B.rows_as_dicts(rows)})
        print(f"wrote {args.json}")
    return 0


def _exported(path: str | None) -> bool:
    from anchordet.backends import backend_for_file

    return path is not None and backend_for_file(path) is not None


def _run_backends(args) -> int:
    """The backends of --weights and --compare side by side (``runtime.backend_benchmark``)."""
    import copy

    import torch

    from anchordet.backends import TorchBackend, open_exported
    from anchordet.runtime import backend_benchmark as BB
    from anchordet.runtime.acceleration import accelerate_for_inference
    from anchordet.runtime.benchmark import machine_info
    from anchordet.runtime.precision import resolve_precision

    if args.config or "train" in args.mode:
        raise UserError("exported files are compared in --mode infer, with --weights (a weights file or an exported file)")
    if args.device not in ("cpu", "auto"):
        raise UserError("backends are compared on the CPU (exported files run there): leave --device out")
    files = [args.weights, *args.compare]
    weights = [f for f in files if not _exported(f)]
    if len(weights) > 1:
        raise UserError(f"one weights file at a time ({' '.join(weights)}); the others must be exported files")
    threads = args.threads or None
    exported = [open_exported(f, precision="fp32", threads=threads) for f in files if _exported(f)]
    model, source, settings = _torch_model(weights[0] if weights else None, exported[0] if exported else None)
    size = tuple(args.size) if args.size else _size(model, settings)
    precisions = args.precision or ["fp32", "bf16"]
    say = _once()
    rows_of: list[tuple[str, object]] = []
    for name in dict.fromkeys(resolve_precision(p, "cpu", say=say).name for p in precisions):
        runner = accelerate_for_inference(copy.deepcopy(model), torch.device("cpu"), name)
        rows_of.append((f"torch {name}", TorchBackend(runner, "cpu", name)))
    for path, backend in zip([f for f in files if _exported(f)], exported):
        rows_of.append((f"{backend.name} {backend.precision} ({path})", backend))
        if backend.name == "openvino" and "bf16" in precisions:
            try:
                bf16 = open_exported(path, precision="bf16", threads=threads)
            except UserError as exc:  # a CPU without bf16: said once, the fp32 row stays
                say(str(exc))
            else:
                rows_of.append((f"{bf16.name} {bf16.precision} ({path})", bf16))
    info = machine_info(torch.device("cpu"))
    print(f"{source}: {type(model).__name__}, input {size[0]}x{size[1]}; CPU {info['cpu']} "
          f"[{' '.join(info['cpu_flags'])}]; {args.threads or 'default'} threads; torch {info['torch']}")
    rows = BB.benchmark_backends(rows_of, args.batch_size, size, args.repeats, args.warmup)
    reference = next((label for label, _ in rows_of if label == "torch fp32"), None)
    print(BB.speed_table(rows, reference))
    if args.json:
        from anchordet.files import atomic_write_json

        atomic_write_json(args.json, {"source": source, "model": type(model).__name__, "size": list(size),
                                      "machine": info, "threads": args.threads, "rows": BB.rows_as_dicts(rows)})
        print(f"wrote {args.json}")
    return 0


def _torch_model(weights: str | None, exported):
    """(eager model, what it is, its settings as a dict) of the weights file, or else of the
    exported file's model config with random weights (speed does not depend on the weights)."""
    from anchordet.config.schema import ModelConfig

    if weights is not None:
        from anchordet.weights_file import load_detector

        model, read = load_detector(weights)
        settings, source = read.inference, weights
    else:
        config = exported.info.model_config
        model = ModelConfig(config.factory, {k: v for k, v in config.args.items() if k != "backbone_weights"}).build()
        settings, source = exported.info.settings, f"{exported.source} (torch rows: its model with random weights)"
    values = {"eval_transform": settings.eval_transform, "min_size": settings.min_size, "fixed_size": settings.fixed_size}
    return model.eval(), source, values


def _once():
    """A ``say`` that prints each fallback line once."""
    import sys

    said = set()

    def say(line: str) -> None:
        if line not in said:
            said.add(line)
            print(line, file=sys.stderr, flush=True)
    return say


def _model(args):
    """(model in eval mode, where it came from, input (H, W))."""
    if args.weights:
        if args.overrides:
            raise UserError("--set applies to --config (a weights file carries its own model)")
        from anchordet.weights_file import load_detector

        model, read = load_detector(args.weights)
        settings = read.inference.to_dict()
        return model, args.weights, tuple(args.size) if args.size else _size(model, settings)
    from anchordet.cli.common import load_config_or_fail
    from anchordet.config.schema import ModelConfig

    config = load_config_or_fail(args.config, args.overrides)
    # speed does not depend on the weights: a preset's pretrained backbone is not loaded
    model_args = {k: v for k, v in config.model.args.items() if k != "backbone_weights"}
    model = ModelConfig(config.model.factory, model_args).build().eval()
    data = config.data
    settings = {"eval_transform": data.eval_transform, "min_size": data.eval_min_size, "fixed_size": data.fixed_size}
    return model, f"{args.config} (random weights)", tuple(args.size) if args.size else _size(model, settings)


def _size(model, settings: dict) -> tuple[int, int]:
    if model.fixed_size is not None:  # SSD takes its one size
        return model.fixed_size, model.fixed_size
    if settings.get("eval_transform") == "fixed" and settings.get("fixed_size"):
        return int(settings["fixed_size"]), int(settings["fixed_size"])
    if settings.get("min_size"):
        return int(settings["min_size"]), int(settings["min_size"])
    raise UserError("the weights file does not say its input size: give --size HEIGHT WIDTH")


def table(rows) -> str:
    lines = ["| mode | variant | batch | latency ms (min-max) | images/s | in network | GFLOP/image "
             "| network GFLOP/s | of peak | peak MiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r.mode} | {r.label} | {r.batch_size} | {1000 * r.median_s:.1f} ({1000 * r.min_s:.1f}-"
                     f"{1000 * r.max_s:.1f}) | {r.images_per_s:.2f} | {100 * r.network_share:.0f}% "
                     f"| {r.gflop_per_image:.2f} | {r.network_gflop_per_s:.0f} | {100 * r.of_peak:.0f}% "
                     f"| {r.peak_memory_mib:.0f} |")
    return "\n".join(lines)

