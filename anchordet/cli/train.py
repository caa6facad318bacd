"""``anchordet train``: train a detector from a preset or a YAML config (single process or torchrun)."""
from __future__ import annotations

import argparse

from anchordet.cli.common import (add_config_arguments, add_precision_argument, add_procs_argument,
                                  load_config_or_fail, resolve_procs)
from anchordet.cli.main import UserError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train", help="train a detector from a preset or YAML config",
        description="Train a detector. Writes to run.out_dir: config.yaml (the resolved config), "
                    "last.pt / best.pt (resumable checkpoints), model.safetensors and best.safetensors "
                    "(weights + model config, for predict/evaluate/export), metrics.jsonl, tensorboard/, "
                    "curves.png. Multi-process: --procs N, or torchrun --nproc_per_node N -m anchordet.cli.main "
                    "train ... (gloo on CPU, NCCL on GPUs). Ctrl-C or SIGTERM saves last.pt and exits 130 "
                    "(143 for SIGTERM); --resume continues exactly. A folder that holds another run is refused "
                    "(--resume it, or --overwrite), and locked while a run writes to it.",
        epilog="example: anchordet train --config retinanet_digits --set solver.epochs=2 --set run.out_dir=runs/try")
    add_config_arguments(parser, required=False)
    parser.add_argument("--resume", metavar="CHECKPOINT",
                        help="continue a run from its last.pt (its config is used; --set still applies), writing "
                             "beside it (also after the folder was moved), unless --set run.out_dir=... says otherwise")
    parser.add_argument("--weights", metavar="FILE_OR_NAME",
                        help="fine-tune: start a new run (fresh optimizer and schedule) from these weights: an "
                             "anchordet .safetensors / .pt, a torchvision retinanet_resnet50_fpn / ssd300_vgg16 "
                             "state dict (.pth) or weights name (RetinaNet_ResNet50_FPN_Weights.COCO_V1). Tensors "
                             "of the same shape load; classes whose names match keep their rows. Same as "
                             "--set model.init_weights=FILE")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous run in run.out_dir (its checkpoints, weights, metrics and "
                             "TensorBoard files are deleted when the new run starts); without it such a folder "
                             "is refused")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar or progress lines (logs still go to metrics.jsonl)")
    add_procs_argument(parser, default=1)
    add_precision_argument(parser, default=None)  # same as --set run.precision=...
    return parser


def run(args) -> int:
    from anchordet.engine.interrupt import exit_status
    from anchordet.engine.trainer import TrainingDiverged, train

    config = _config_for(args)
    if args.precision:
        config = _with_precision(config, args.precision)
    try:  # with --procs N too, train raises the first failing process's own exception
        outcome = train(config, resume=args.resume, progress=not args.no_progress,
                        processes=resolve_procs(args.procs, config.run.device), overwrite=args.overwrite)
    except TrainingDiverged as exc:
        raise UserError(str(exc)) from exc
    from anchordet import distributed

    if distributed.is_main_process():
        print(f"{outcome.status} after {outcome.iteration} iterations; outputs in {config.run.out_dir}"
              + (f"; best {config.run.metric} {outcome.best_metric:.4f}" if outcome.best_metric is not None else ""))
    distributed.cleanup()
    return exit_status(outcome.stop_signal) if outcome.status == "interrupted" else 0


def _config_for(args):
    if args.resume and args.weights:
        raise UserError("--weights starts a new run from other weights; --resume continues a run: give one of them")
    if args.resume:
        from anchordet.config.schema import ConfigError, ExperimentConfig, apply_overrides
        from anchordet.engine.checkpoint import load_checkpoint

        try:
            saved = ExperimentConfig.from_dict(load_checkpoint(args.resume)["config"], args.resume)
            return _resumed_beside(apply_overrides(saved, args.overrides), saved, args)
        except ConfigError as exc:
            raise UserError(str(exc)) from exc
    if not args.config:
        raise UserError("give --config PRESET_OR_YAML (see `anchordet presets`) or --resume CHECKPOINT")
    config = load_config_or_fail(args.config, args.overrides)
    if args.weights:
        import dataclasses

        config = dataclasses.replace(config, model=dataclasses.replace(config.model, init_weights=args.weights))
    return config


def _resumed_beside(config, saved, args):
    """A resumed run writes beside the checkpoint it resumes, wherever the run folder has been
    moved to and whatever the current folder (the checkpoint's run.out_dir is where it was
    written, relative to the folder it was started from), unless --set run.out_dir chooses
    another; when that is not the folder the checkpoint names, one line says so before anything
    is written."""
    import dataclasses
    import sys
    from pathlib import Path

    if any(item.split("=", 1)[0].strip() == "run.out_dir" for item in args.overrides):
        return config  # the user's choice
    beside = Path(args.resume).parent
    if beside.resolve() != Path(saved.run.out_dir).resolve():
        print(f"anchordet train: resuming {args.resume} in {beside}, the checkpoint's folder (it was written to "
              f"{saved.run.out_dir})", file=sys.stderr, flush=True)
    return dataclasses.replace(config, run=dataclasses.replace(config.run, out_dir=str(beside)))


def _with_precision(config, precision: str):
    import dataclasses

    return dataclasses.replace(config, run=dataclasses.replace(config.run, precision=precision))
