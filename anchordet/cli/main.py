"""``anchordet`` command line: one module per subcommand, each a thin front-end.

Each subcommand module defines ``add_parser(subparsers) -> argparse.ArgumentParser`` and
``run(args) -> int``. Errors the user can fix print one clear line and exit 2, not a traceback:
``anchordet.errors.UserError`` (and its subclasses: ``ConfigError``, ``ImageReadError``) and
``OSError`` (a missing file, a read-only or full disk, a file where a folder should be: the line
names the path). Any other exception, a bare ``ValueError`` included, is a bug in anchordet and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand name -> module. Imported lazily so that `anchordet --help` and every command stay
# fast (torch-heavy modules load only for the command that needs them).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("anchordet.cli.demo", "train, evaluate and predict on the built-in digits dataset"),
    "train": ("anchordet.cli.train", "train a detector from a preset or YAML config"),
    "evaluate": ("anchordet.cli.evaluate", "evaluate a trained model on a dataset (COCO / VOC metrics)"),
    "predict": ("anchordet.cli.predict", "run a model on images and draw / save its detections"),
    "presets": ("anchordet.cli.presets", "list the configuration presets"),
    "score": ("anchordet.cli.score", "score a COCO results file against COCO ground truth"),
    "data": ("anchordet.cli.data", "write the digits dataset, or convert a dataset to another format"),
    "check-data": ("anchordet.cli.check_data", "check a dataset's annotations and images"),
    "anchors": ("anchordet.cli.anchors", "does a model's anchor configuration fit a dataset?"),
    "convert": ("anchordet.cli.convert", "convert torchvision weights to anchordet safetensors"),
    "export": ("anchordet.cli.export", "export a model to ONNX or TorchScript"),
    "benchmark": ("anchordet.cli.benchmark", "speed of a model per precision and batch size (images/s, GFLOP/s)"),
}


from anchordet.errors import UserError  # noqa: E402  (re-exported: cli modules import it from here)


def build_parser(names: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anchordet",
        description="Anchor-based object detection: RetinaNet, SSD and Faster R-CNN.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if names is not None and name not in names:
            subparsers.add_parser(name, help=help_text, add_help=False)
            continue
        module = importlib.import_module(module_name)
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = [a for a in argv[:1] if a in COMMANDS]
    parser = build_parser(chosen)  # only the chosen command module is imported
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    _one_line_skip_warnings(args.command)
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"anchordet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"anchordet {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"anchordet {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line_skip_warnings(command: str) -> None:
    """Print ``InputSkipped`` warnings (``data.skip_bad_annotations``) as one line each,
    ``anchordet train: skipped: FILE, image 3, annotation id 901: ...``, and any other warning
    (a library's: numpy, PIL, torch) as one line too, ``anchordet CMD: warning: TEXT
    (RuntimeWarning from numpy)``, instead of Python's two lines quoting a library's source."""
    import warnings

    from anchordet.errors import InputSkipped

    def show(message, category, filename, lineno, file=None, line=None):
        if isinstance(category, type) and issubclass(category, InputSkipped):
            print(f"anchordet {command}: {message}", file=file or sys.stderr, flush=True)
        else:
            text = " ".join(str(message).split())
            print(f"anchordet {command}: warning: {text} ({category.__name__} from {_package_of(filename)})",
                  file=file or sys.stderr, flush=True)

    if getattr(warnings.showwarning, "_anchordet", False):
        return
    show._anchordet = True
    warnings.showwarning = show


def _package_of(filename: str) -> str:
    """The package a warning came from (numpy, PIL, torch), from the file it names."""
    from pathlib import Path

    parts = Path(str(filename)).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1].removesuffix(".py")
    return "anchordet" if "anchordet" in parts else Path(str(filename)).name


def describe_os_error(exc: OSError) -> str:
    """One line naming the path: "out/results.json: No space left on device"."""
    if exc.filename is None:
        return str(exc)
    paths = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{paths}: {exc.strerror or exc}"


if __name__ == "__main__":
    sys.exit(main())
