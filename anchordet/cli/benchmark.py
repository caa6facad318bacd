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
                    "first call's peak memory; then the parameters, the device and the CPU flags.",
        epilog="example: anchordet benchmark -c retinanet_digits --precision fp32 bf16 --batch-size 1 16 --threads 1")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", "-c", metavar="PRESET_OR_YAML", help="a preset or YAML config (random weights)")
    source.add_argument("--weights", "-w", help="a weights file (.safetensors) or checkpoint (.pt)")
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
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures and the machine as JSON")
    add_device_argument(parser)
    return parser


def run(args) -> int:
    import torch

    from anchordet.runtime import benchmark as B
    from anchordet.devices import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
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

