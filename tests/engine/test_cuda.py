"""CUDA paths (skipped without a GPU; benchmarks/gpu_check.sh runs them): bf16 / fp16 autocast
around the network with the losses in fp32, the fp16 grad scaler, channels_last on cuDNN, pinned
batches, and the collectives on CUDA tensors under an NCCL group."""
from __future__ import annotations

import copy

import pytest
import torch

from anchordet.cli.main import main
from anchordet.data.shapes import make_scenes
from anchordet.runtime.acceleration import use_channels_last
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.runtime.precision import apply_precision, resolve_precision

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = ["model.backbone_width=8", "model.fpn_channels=16", "model.head_channels=16", "model.head_num_convs=1",
        "data.digits.num_train=16", "data.digits.num_val=4", "data.digits.canvas_size=64",
        "data.min_size=64", "data.max_size=64", "data.num_workers=1", "solver.batch_size=4", "solver.warmup_iters=2",
        "run.log_every=1", "run.device=cuda"]


def tiny():
    from anchordet.detectors.retinanet import retinanet_resnet18_fpn

    torch.manual_seed(0)
    return retinanet_resnet18_fpn(3, backbone_width=16, fpn_channels=32, head_channels=32, head_num_convs=2,
                                  anchor_base_sizes=(16, 32, 64, 128, 256), trainable_layers=5, frozen_bn=False).cuda()


@pytest.mark.parametrize("name, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_network_in_low_precision_losses_in_fp32(name, dtype):
    precision = resolve_precision(name, "cuda", say=None)
    assert precision.name == name  # an H100 / H200 / A100 has both
    model = apply_precision(tiny(), precision)
    convs = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, a, out: convs.append(out.dtype))
    images, targets = make_scenes(2, 96)
    losses = model.loss([i.cuda() for i in images], [t.to("cuda") for t in targets])
    assert set(convs) == {dtype} and all(v.dtype == torch.float32 for v in losses.values())
    scaler = precision.grad_scaler()
    assert (scaler is not None) == (name == "fp16")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    total = sum(losses.values())
    if scaler is None:
        total.backward()
        optimizer.step()
    else:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_channels_last_on_cudnn_equals_nchw():
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 rounds differently per algorithm: compare in fp32
    try:
        model = tiny().eval()
        fast = use_channels_last(copy.deepcopy(model), True)
        images = torch.rand(2, 3, 96, 96, device="cuda")
        a, b = model(images), fast(images)
        torch.testing.assert_close(b.cls_logits, a.cls_logits, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(b.box_deltas, a.box_deltas, rtol=1e-4, atol=1e-4)
    finally:
        torch.backends.cudnn.allow_tf32 = old


def test_batches_are_pinned_for_the_gpu():
    from anchordet.data.collate import collate
    from anchordet.data.collate import Sample
    from anchordet.structures.targets import Targets

    batch = collate([Sample(torch.rand(3, 32, 32), Targets(), 0, (32, 32))])
    pinned = batch.pin_memory()
    assert pinned.images.tensor.is_pinned() and pinned.images.image_sizes == batch.images.image_sizes


def test_collectives_use_cuda_tensors_under_nccl(tmp_path):
    import torch.distributed as dist

    from anchordet import distributed as D

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group(D.process_group_backend(torch.device("cuda", 0)), store=store, rank=0, world_size=1)
    try:
        assert D.collective_device().type == "cuda"
        assert D.all_reduce_sums({"a": 1.5}) == {"a": 1.5}
        assert D.any_process(True) and not D.any_process(False) and D.min_over_processes(3) == 3
        assert D.all_gather_objects({"x": 1}) == [{"x": 1}]
        D.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_on_cuda_in_low_precision(tmp_path, precision):
    args = ["train", "--no-progress", "--config", "retinanet_digits", "--precision", precision]
    for item in TINY + [f"run.out_dir={tmp_path}", "solver.epochs=1", "run.eval_every=1"]:
        args += ["--set", item]
    assert main(args) == 0
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["config"]["run"]["precision"] == precision
    assert bool(state["scaler"]) == (precision == "fp16")  # the grad scaler's state is saved for a resume
