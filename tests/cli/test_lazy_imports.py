"""The torch-free commands stay torch-free: ``score``, ``check-data`` and ``--help`` run in a fresh
interpreter and must not import torch / torchvision (2-3 s of start-up); ``--help`` not even
matplotlib. Each check runs the real command in a subprocess and reads ``sys.modules`` at exit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "matplotlib")
# Runs the CLI in-process, then prints which heavy modules it left in sys.modules.
DRIVER = ("import json, sys\n"
          "from anchordet.cli.main import main\n"
          "try:\n"
          "    rc = main(sys.argv[1:])\n"
          "except SystemExit as exc:\n"
          "    rc = exc.code\n"
          f"print('LOADED=' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
          "sys.exit(rc)\n")


def _run(*argv: str, code: str = DRIVER) -> tuple[int, list[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("LOADED=")]
    assert line, proc.stdout + proc.stderr
    return proc.returncode, json.loads(line[-1][len("LOADED="):]), proc.stdout


@pytest.fixture
def coco_files(tmp_path):
    gt = {"images": [{"id": 1, "file_name": "1.png", "width": 40, "height": 30},
                     {"id": 2, "file_name": "2.png", "width": 40, "height": 30}],
          "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 12], "area": 120,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 2, "category_id": 2, "bbox": [20, 5, 15, 20], "area": 300,
                           "iscrowd": 0}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 12], "score": 0.9},
            {"image_id": 2, "category_id": 1, "bbox": [20, 5, 15, 20], "score": 0.5}]
    for i in (1, 2):
        pixels = np.random.default_rng(i).integers(0, 255, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    return tmp_path / "gt.json", tmp_path / "dets.json"


def test_score_does_not_import_torch(coco_files):
    rc, loaded, out = _run("score", str(coco_files[0]), str(coco_files[1]), "--json")
    assert rc == 0 and json.loads(out.splitlines()[0])["AP50"] == pytest.approx(0.5)  # a: hit (1.0); b: missed (0.0)
    assert loaded == []


def test_check_data_decodes_without_torch(coco_files, tmp_path):
    (tmp_path / "2.png").write_bytes((tmp_path / "2.png").read_bytes()[:60])  # truncated: a decode problem
    rc, loaded, out = _run("check-data", str(coco_files[0]))
    assert rc == 1 and "[unreadable-image]" in out and "2.png" in out  # images were really decoded
    assert loaded == []


def test_check_data_yaml_readers_without_torch(tmp_path):
    """The YAML reader and the VOC / YOLO record readers import no torch either."""
    code = ("import json, sys\n"
            "import anchordet.data.spec, anchordet.data.voc, anchordet.data.yolo, anchordet.data.validate\n"
            "import anchordet.data, anchordet.evaluation, anchordet\n"
            f"print('LOADED=' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    rc, loaded, _ = _run(code=code)
    assert rc == 0 and loaded == []


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["check-data", "--help"]])
def test_help_imports_nothing_heavy(argv):
    rc, loaded, out = _run(*argv)
    assert rc == 0 and "usage: anchordet" in out
    assert loaded == []


def test_lazy_names_still_resolve():
    """``from anchordet import retinanet_resnet50_fpn, Targets`` and the dataset classes of
    ``anchordet.data`` keep working (they import torch on first use, as they must)."""
    code = ("import json, sys\n"
            "from anchordet import retinanet_resnet50_fpn, Targets, RetinaNet\n"
            "from anchordet.data import CocoDataset, RecordDataset\n"
            "from anchordet.data import VocDataset, YoloDataset\n"
            "import anchordet\n"
            "assert 'retinanet_resnet50_fpn' in dir(anchordet)\n"
            "assert issubclass(CocoDataset, RecordDataset) and Targets.__module__ == 'anchordet.structures.targets'\n"
            f"print('LOADED=' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    rc, loaded, _ = _run(code=code)
    assert rc == 0 and "torch" in loaded
