"""`anchordet benchmark` on a tiny config: the rows it reports, its FLOP and parameter counts
against independent counts, the precision fallback, weights files (no timing assertions)."""
import json

import pytest
import torch
from torch import nn

from anchordet.cli.main import main
from anchordet.config.load import load_config
from anchordet.runtime import benchmark as B
from anchordet.runtime import precision as precision_module

TINY = ["model.backbone_width=8", "model.fpn_channels=16", "model.head_channels=16", "model.head_num_convs=1"]


def _overrides(items):
    return [arg for item in items for arg in ("--set", item)]


def conv_flops(model: nn.Module, images: torch.Tensor) -> int:
    """2 x multiply-adds of every Conv2d call, from the layers' own shapes (forward hooks)."""
    total = []

    def count(conv, args, out):
        kh, kw = conv.kernel_size
        total.append(2 * out.numel() * (conv.in_channels // conv.groups) * kh * kw)

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    return sum(total)


def test_benchmark_rows_counts_and_fallback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    out = tmp_path / "bench.json"
    assert main(["benchmark", "-c", "retinanet_digits_fast", *_overrides(TINY), "--size", "64", "96",
                 "--batch-size", "1", "2", "--mode", "infer", "train", "--precision", "fp32", "bf16", "fp16",
                 "--repeats", "1", "--threads", "1", "--device", "cpu", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    fallback = [line for line in captured.err.splitlines() if "precision fp16" in line]
    assert len(fallback) == 1 and "running in fp32" in fallback[0]  # said once, not per mode and batch
    report = json.loads(out.read_text())
    rows = report["rows"]
    # fp16 fell back to fp32, which is already there: 2 precisions x 2 batch sizes x 2 modes
    assert sorted((r["mode"], r["precision"], r["batch_size"]) for r in rows) == sorted(
        (m, p, b) for m in ("infer", "train") for p in ("fp32", "bf16") for b in (1, 2))
    assert all(r["channels_last"] for r in rows if r["mode"] == "infer")  # RetinaNet's measured CPU default
    # width 8: layer2's 1x1 stride-2 downsample would crash oneDNN's NHWC weight gradient (acceleration.py)
    assert not any(r["channels_last"] for r in rows if r["mode"] == "train")
    assert all(r["fold_bn"] for r in rows if r["mode"] == "infer")  # eval-mode BN folds for inference
    assert not any(r["fold_bn"] for r in rows if r["mode"] == "train")  # trainable BN cannot
    model = load_config("retinanet_digits_fast", TINY).model.build().eval()
    expected = conv_flops(model, torch.rand(1, 3, 64, 96)) / 1e9
    for r in rows:
        per_image = r["gflop_per_image"]
        if r["mode"] == "infer":
            assert per_image == pytest.approx(expected, rel=1e-6)
        else:  # backward: the weight gradients of every conv and the input gradients of all but the first
            assert 2 * expected < per_image < 3 * expected
        assert r["images_per_s"] == pytest.approx(r["batch_size"] / r["median_s"])
        assert 0 < r["network_share"] <= 1 and r["peak_gflop_per_s"] > 0
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
    assert report["size"] == [64, 96] and report["machine"]["threads"] == 1
    assert "| infer | fp32, channels_last, BN folded | 1 |" in captured.out
    assert "| train | bf16, NCHW | 2 |" in captured.out


def test_benchmark_a_weights_file_at_its_own_size(tmp_path, capsys):
    from anchordet.config.schema import ModelConfig
    from anchordet.weights_file import save_weights

    config = ModelConfig("ssd_vgg16", dict(num_classes=3, image_size=96, width=8,
                                            extra_layers=[[256, 512, 3, 2, 1], [128, 256, 3, 2, 1]],
                                            steps=[8, 16, 32, 48], min_sizes=[16, 28, 44, 60],
                                            max_sizes=[28, 44, 60, 80], aspect_ratios=[[2], [2], [2], [2]]))
    save_weights(tmp_path / "ssd.safetensors", config.build(), config)
    assert main(["benchmark", "-w", str(tmp_path / "ssd.safetensors"), "--precision", "fp32", "--batch-size", "2",
                 "--repeats", "1", "--channels-last", "on", "off", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "input 96x96" in out  # SSD's one size
    assert "| infer | fp32, channels_last | 2 |" in out and "| infer | fp32, NCHW | 2 |" in out


def test_benchmark_bad_input_is_one_line(tmp_path, capsys):
    assert main(["benchmark", "-c", "retinanet_digits_fast", "--set", "model.depth=deep"]) == 2
    assert "model.depth" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["benchmark", "-c", "retinanet_digits_fast", "--batch-size", "0"])


def test_matmul_peak_and_machine_info():
    assert B.matmul_peak_gflops(precision_module.Precision(), torch.device("cpu"), size=128, repeats=1) > 0
    info = B.machine_info(torch.device("cpu"))
    assert info["cpu"] and set(info["cpu_flags"]) <= set(B.SHOWN_CPU_FLAGS)
