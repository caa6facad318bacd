"""Every preset, written out in full: one dict, no inheritance.

Names say detector, backbone and dataset. The COCO presets read ``coco.yaml``, the VOC ones
``voc0712.yaml`` (07+12 trainval, tested on 07 test) or ``voc07.yaml`` (Faster R-CNN VGG16, 07
trainval): templates of the VOC files are in docs/datasets/. The papers' schedules are given for their batch sizes;
``solver.base_batch_size`` keeps the learning rate right when ``solver.batch_size`` changes
(linear scaling rule).
"""
from __future__ import annotations

from anchordet.config.schema import DataConfig, DigitsOptions, ExperimentConfig, ModelConfig, RunConfig, SolverConfig

# The digits presets train with run.precision "auto": bf16 autocast where the CPU (AVX512_BF16 /
# AMX) or GPU computes it natively, else fp32. On the Intel Xeon (AMX) of 2026-12-01 bf16 made
# their training iterations 1.4-2.1x faster at the same test AP50 (BENCHMARKS.md "Digits presets").

# RetinaNet for the built-in digits dataset, trained from scratch on a CPU: ResNet-18 at quarter
# width, BN trained (no pretrained statistics to freeze), a light FPN / head (32 channels, 2 convs),
# AdamW (from scratch it converges several times faster than SGD here: AP50 0.15 vs 0.13 after 2
# epochs), batch 32 with lr 0.0045 (0.003 at batch 16 scaled by sqrt(2), the usual rule for Adam).
# The 128 px scenes are upsampled to 256: digits are 10..56 px, and at 128 px P3's stride of 8
# leaves a thin "1" a cell or two (AP50 0.83 at 128 px, 0.92 at 256, BENCHMARKS.md). Anchors from
# 32 px at that scale (docs/anchors.md), taller than wide as digits are (h/w 1, 1.6, 3).
# 20 epochs take 8.5 minutes on 2 CPU cores (AMD EPYC Zen 5) with `--procs 2` in fp32: test AP50
# 0.921; in bf16 on an Intel Xeon with AMX (2026-12-01, He init) about 8 minutes: 0.907.
RETINANET_DIGITS = ExperimentConfig(
    model=ModelConfig("retinanet_resnet_fpn", dict(
        depth=18, num_classes=10, frozen_bn=False, trainable_layers=5, backbone_width=16,
        fpn_channels=32, head_channels=32, head_num_convs=2,
        anchor_base_sizes=[32, 64, 128, 256, 512], anchor_aspect_ratios=[1.0, 1.6, 3.0], box_loss="l1",
        max_detections=300)),
    data=DataConfig(dataset="digits", digits=DigitsOptions(num_train=2000, num_val=300),
                    train_transform="resize", eval_transform="resize", min_size=256, max_size=256,
                    hflip=False, num_workers=0),  # a flipped digit is not a digit; scenes take 2-5 ms each
    solver=SolverConfig(epochs=20, batch_size=32, base_lr=0.0045, base_batch_size=32, weight_decay=0.05,
                        warmup_iters=100, warmup_factor=0.01, schedule="cosine", clip_grad_norm=10.0,
                        optimizer="adamw"),
    run=RunConfig(out_dir="runs/retinanet_digits", eval_every=5, log_every=20, precision="auto"),
)

# The same RetinaNet at the scenes' own 128 px (a quarter of the pixels, anchors from 16 px):
# `anchordet demo` trains it (as many of its 28 epochs as fit 6 minutes), and the tests. 28
# epochs: AP50 0.835 in 4 minutes on the Zen 5 machine (13 on the Zen 3 one of 2026-11-23).
RETINANET_DIGITS_FAST = ExperimentConfig(
    model=ModelConfig("retinanet_resnet_fpn", dict(
        depth=18, num_classes=10, frozen_bn=False, trainable_layers=5, backbone_width=16,
        fpn_channels=32, head_channels=32, head_num_convs=2,
        anchor_base_sizes=[16, 32, 64, 128, 256], anchor_aspect_ratios=[1.0, 1.6, 3.0], box_loss="l1",
        max_detections=300)),
    data=DataConfig(dataset="digits", digits=DigitsOptions(num_train=2000, num_val=300),
                    train_transform="resize", eval_transform="resize", min_size=128, max_size=128,
                    hflip=False, num_workers=0),
    solver=SolverConfig(epochs=28, batch_size=32, base_lr=0.0045, base_batch_size=32, weight_decay=0.05,
                        warmup_iters=100, warmup_factor=0.01, schedule="cosine", clip_grad_norm=10.0,
                        optimizer="adamw"),
    run=RunConfig(out_dir="runs/retinanet_digits_fast", eval_every=7, log_every=20, precision="auto"),
)

# RetinaNet trained from ONE large annotated image (issue 25): a 2048 px digits scene with 400
# digits on the train photos, cut into random 256 px windows at its own resolution (64 per epoch),
# the model of retinanet_digits_fast (digits 20..56 px, anchors from 16 px) with up to 1000
# detections per image. Windows only, no scale nor colour jitter: at this preset's 3840 windows
# they lowered test AP50 on the unseen photos from 0.099 to 0.071 and F1 @ IoU 0.4 from 0.216 to
# 0.179 (benchmarks/digits_large_image.py, BENCHMARKS.md "One large image"; the model had not yet
# memorised its image, train AP50 0.17). No flips nor quarter turns: a turned 6 is a 9 (aerial
# imagery: data.vflip, data.rotate90). The resize keeps the 256 px windows as they are: predict
# and evaluate large images at their own resolution (in 256 px tiles, or whole).
RETINANET_DIGITS_LARGE = ExperimentConfig(
    model=ModelConfig("retinanet_resnet_fpn", dict(
        depth=18, num_classes=10, frozen_bn=False, trainable_layers=5, backbone_width=16,
        fpn_channels=32, head_channels=32, head_num_convs=2,
        anchor_base_sizes=[16, 32, 64, 128, 256], anchor_aspect_ratios=[1.0, 1.6, 3.0], box_loss="l1",
        max_detections=1000)),
    data=DataConfig(dataset="digits", digits=DigitsOptions(num_train=1, num_val=2, canvas_size=2048,
                                                           digits_per_image=(400, 400), fixed_train=True),
                    train_transform="resize", eval_transform="resize", min_size=256, max_size=256,
                    hflip=False, num_workers=0, random_window=256, windows_per_image=64),
    solver=SolverConfig(epochs=60, batch_size=16, base_lr=0.003, base_batch_size=16, weight_decay=0.05,
                        warmup_iters=50, warmup_factor=0.01, schedule="cosine", clip_grad_norm=10.0,
                        optimizer="adamw"),
    run=RunConfig(out_dir="runs/retinanet_digits_large", eval_every=0, log_every=20, precision="auto"),
)

# Detectron2's 1x COCO recipes train at a shorter side drawn from 640..800 (step 32) and test at
# 800 (MIN_SIZE_TRAIN / MIN_SIZE_TEST of its Base-RetinaNet and Base-RCNN configs; the papers'
# own 1x runs were single-scale 800, Detectron1).
COCO_MULTI_SCALE = (640, 672, 704, 736, 768, 800)
# Detectron2's PascalVOC-Detection configs: 480..800 (step 32), test 800, longer side <= 1333.
VOC_MULTI_SCALE = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)

# RetinaNet R50-FPN 1x (Lin et al. 2017; Detectron2): 90k iterations at batch 16 on COCO is 12
# epochs, lr 0.01, steps at 60k/80k (epochs 8 and 11), multi-scale 640..800, test at 800.
RETINANET_R50_COCO = ExperimentConfig(
    model=ModelConfig("retinanet_resnet_fpn", dict(depth=50, num_classes=80, backbone_weights="imagenet")),
    data=DataConfig(dataset="coco.yaml", train_transform="resize", eval_transform="resize",
                    min_size=COCO_MULTI_SCALE, max_size=1333, hflip=True, num_workers=4),
    solver=SolverConfig(epochs=12, batch_size=16, base_lr=0.01, base_batch_size=16, weight_decay=1e-4,
                        warmup_iters=500, warmup_factor=0.001, schedule="step", steps=(8, 11)),
    run=RunConfig(out_dir="runs/retinanet_r50_coco", metric="coco"),
)

# Pascal VOC 07+12 with the same recipe (mmdetection's retinanet_r50_fpn_voc0712: 4 epochs of the
# 3x-repeated set ~ 12 epochs, lr 0.01 at batch 16, shorter side 600 as the VOC convention).
RETINANET_R50_VOC = ExperimentConfig(
    model=ModelConfig("retinanet_resnet_fpn", dict(depth=50, num_classes=20, backbone_weights="imagenet")),
    data=DataConfig(dataset="voc0712.yaml", train_transform="resize", eval_transform="resize",
                    min_size=600, max_size=1000, hflip=True, num_workers=4),
    solver=SolverConfig(epochs=12, batch_size=16, base_lr=0.01, base_batch_size=16, weight_decay=1e-4,
                        warmup_iters=500, warmup_factor=0.001, schedule="step", steps=(9,)),
    run=RunConfig(out_dir="runs/retinanet_r50_voc", metric="voc07"),
)

# Faster R-CNN VGG16 on VOC07 (Ren et al. 2015, Sec. 4.1): lr 0.001 for one image per batch,
# 50k + 20k iterations over the flipped trainval (~10k images) -> epochs 10 and 14; shorter side
# 600, longer <= 1000. ``batch_norm=False`` is the paper's network; seed 003 uses VGG16-BN.
FASTER_RCNN_VGG16_VOC = ExperimentConfig(
    model=ModelConfig("faster_rcnn_vgg16", dict(num_classes=20, batch_norm=False, backbone_weights="imagenet")),
    data=DataConfig(dataset="voc07.yaml", train_transform="resize", eval_transform="resize",
                    min_size=600, max_size=1000, hflip=True, num_workers=4),
    solver=SolverConfig(epochs=14, batch_size=2, base_lr=0.001, base_batch_size=1, weight_decay=5e-4,
                        warmup_iters=0, schedule="step", steps=(10,)),
    run=RunConfig(out_dir="runs/faster_rcnn_vgg16_voc", metric="voc07"),
)

# Faster R-CNN R50-C4 1x (Detectron2): lr 0.02 at batch 16, 90k iterations = 12 COCO epochs,
# steps at 60k / 80k, multi-scale 640..800, test at 800.
FASTER_RCNN_R50_C4_COCO = ExperimentConfig(
    model=ModelConfig("faster_rcnn_resnet_c4", dict(depth=50, num_classes=80, backbone_weights="imagenet")),
    data=DataConfig(dataset="coco.yaml", train_transform="resize", eval_transform="resize",
                    min_size=COCO_MULTI_SCALE, max_size=1333, hflip=True, num_workers=4),
    solver=SolverConfig(epochs=12, batch_size=16, base_lr=0.02, base_batch_size=16, weight_decay=1e-4,
                        warmup_iters=500, warmup_factor=0.001, schedule="step", steps=(8, 11)),
    run=RunConfig(out_dir="runs/faster_rcnn_r50_c4_coco", metric="coco"),
)

# Faster R-CNN R50-C4 on VOC 07+12 with Detectron2's PascalVOC-Detection sizes (480..800, test 800).
FASTER_RCNN_R50_C4_VOC = ExperimentConfig(
    model=ModelConfig("faster_rcnn_resnet_c4", dict(depth=50, num_classes=20, backbone_weights="imagenet")),
    data=DataConfig(dataset="voc0712.yaml", train_transform="resize", eval_transform="resize",
                    min_size=VOC_MULTI_SCALE, max_size=1333, hflip=True, num_workers=4),
    solver=SolverConfig(epochs=12, batch_size=16, base_lr=0.02, base_batch_size=16, weight_decay=1e-4,
                        warmup_iters=500, warmup_factor=0.001, schedule="step", steps=(9,)),
    run=RunConfig(out_dir="runs/faster_rcnn_r50_c4_voc", metric="voc07"),
)

# Faster R-CNN for the digits dataset from scratch on a CPU: ResNet-18-C4 at quarter width, the
# 128 px scenes upsampled to 256 (stride 16 is coarse for 10..56 px digits), anchors 24..96 at
# that scale and tall (digits are taller than wide), RPN positives at IoU >= 0.5 (at 0.7 a digit
# has 1.3 positive anchors on average, at 0.5 it has 7.9: `anchordet anchors -c faster_rcnn_digits`),
# fewer proposals and RoIs, RoIAlign 6x6, AdamW (no pretrained backbone). 16 epochs take 9
# minutes on 2 CPU cores (AMD EPYC Zen 5) with `--procs 2` in fp32 (56 img/s): AP50 0.946; in bf16 on
# an Intel Xeon with AMX (2026-12-01, He init) 10 min 44 s (48-53 img/s): AP50 0.938.
FASTER_RCNN_DIGITS = ExperimentConfig(
    model=ModelConfig("faster_rcnn_resnet_c4", dict(
        depth=18, num_classes=10, backbone_width=16, frozen_bn=False, trainable_layers=5,
        anchor_sizes=[24, 32, 48, 64, 96], anchor_aspect_ratios=[1.0, 1.6, 3.0], rpn_fg_iou_thresh=0.5,
        rpn_allowed_border=None, rpn_min_size=0.0,
        rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=256, rpn_pre_nms_top_n_test=1000,
        rpn_post_nms_top_n_test=100, roi_pool="align", roi_output_size=6, roi_batch_size_per_image=32)),
    data=DataConfig(dataset="digits", digits=DigitsOptions(num_train=2000, num_val=300),
                    train_transform="resize", eval_transform="resize", min_size=256, max_size=256,
                    hflip=False, num_workers=0),
    solver=SolverConfig(epochs=16, batch_size=8, base_lr=0.002, base_batch_size=8, weight_decay=1e-4,
                        warmup_iters=100, warmup_factor=0.01, schedule="cosine", clip_grad_norm=10.0,
                        optimizer="adamw"),
    run=RunConfig(out_dir="runs/faster_rcnn_digits", eval_every=4, log_every=20, precision="auto"),
)

# SSD300 on VOC07+12 (Liu et al. 2016, Sec. 3.1 / the Caffe ssd_pascal.py): lr 1e-3 at batch 32,
# 80k + 20k + 20k iterations (~120k over 16.5k images = 232 epochs), SSD augmentation, VOC box
# sizes (30..315 at 300), weight decay 5e-4, VGG16 from ImageNet.
SSD300_VOC = ExperimentConfig(
    model=ModelConfig("ssd_vgg16", dict(num_classes=20, image_size=300, backbone_weights="imagenet",
                                        min_sizes=[30.0, 60.0, 111.0, 162.0, 213.0, 264.0],
                                        max_sizes=[60.0, 111.0, 162.0, 213.0, 264.0, 315.0])),
    data=DataConfig(dataset="voc0712.yaml", train_transform="ssd", eval_transform="fixed", fixed_size=300,
                    hflip=True, num_workers=4),
    solver=SolverConfig(epochs=232, batch_size=32, base_lr=0.001, base_batch_size=32, weight_decay=5e-4,
                        warmup_iters=500, warmup_factor=0.001, schedule="step", steps=(155, 194)),
    run=RunConfig(out_dir="runs/ssd300_voc", metric="voc07", eval_every=10),
)

# SSD300 on COCO (Liu et al. 2016, Sec. 3.4): lr 1e-3 at batch 32, 400k iterations = ~110 epochs
# over 118k images, steps at 280k / 360k, COCO box sizes (21..315, as torchvision's ssd300_vgg16).
SSD300_COCO = ExperimentConfig(
    model=ModelConfig("ssd_vgg16", dict(num_classes=80, image_size=300, backbone_weights="imagenet")),
    data=DataConfig(dataset="coco.yaml", train_transform="ssd", eval_transform="fixed", fixed_size=300,
                    hflip=True, num_workers=4),
    solver=SolverConfig(epochs=110, batch_size=32, base_lr=0.001, base_batch_size=32, weight_decay=5e-4,
                        warmup_iters=500, warmup_factor=0.001, schedule="step", steps=(76, 96)),
    run=RunConfig(out_dir="runs/ssd300_coco", metric="coco", eval_every=10),
)

SSD512_COCO = ExperimentConfig(
    model=ModelConfig("ssd_vgg16", dict(num_classes=80, image_size=512, backbone_weights="imagenet")),
    data=DataConfig(dataset="coco.yaml", train_transform="ssd", eval_transform="fixed", fixed_size=512,
                    hflip=True, num_workers=4),
    solver=SolverConfig(epochs=110, batch_size=32, base_lr=0.001, base_batch_size=32, weight_decay=5e-4,
                        warmup_iters=500, warmup_factor=0.001, schedule="step", steps=(76, 96)),
    run=RunConfig(out_dir="runs/ssd512_coco", metric="coco", eval_every=10),
)

# SSD for the digits dataset from scratch on a CPU: VGG16 at quarter width with BN, 128 px input
# (128 x 128 scenes; tight digit boxes 3..42 px wide, 12..42 px high, width / height 0.46..1.18 for
# 90% of them), four source maps of 16, 8, 4 and 2 cells (steps 8..64) from two extra layers,
# boxes 18..96 px. The sizes and the ratios 1.5 / 2.5 (each a wide and a tall box) were chosen with
# the coverage analysis (`anchordet anchors`) on 300 train scenes: 90% of the digits reach
# IoU >= 0.5 with some default box, 4.6 such boxes per digit on average. BatchNorm in the VGG
# part: from scratch, at the same CPU budget (420 CPU s = 1 thread, ~6.7k scenes, batch 16, AdamW
# 1e-3, warmup + cosine), AP50 on 300 test scenes was 0.43 with it and 0.38 without; with AdamW
# 3e-3 it was 0.59, and 0.70 after 600 CPU s (11k scenes). AdamW 3e-3.
# No SSD augmentation: the scenes are already random crops, and a flipped digit is not a digit.
# 20 epochs take 9 minutes on 2 CPU cores (AMD EPYC Zen 5) with `--procs 2` in fp32 (75 img/s): AP50
# 0.946; in bf16 on an Intel Xeon with AMX (2026-12-01) 7 min 44 s (88-94 img/s): AP50 0.952.
SSD_DIGITS = ExperimentConfig(
    model=ModelConfig("ssd_vgg16", dict(
        num_classes=10, image_size=128, width=16, batch_norm=True,
        extra_layers=[[256, 512, 3, 2, 1], [128, 256, 3, 2, 1]], steps=[8, 16, 32, 64],
        min_sizes=[18, 30, 46, 66], max_sizes=[30, 46, 66, 96], aspect_ratios=[[1.5, 2.5]] * 4)),
    data=DataConfig(dataset="digits", digits=DigitsOptions(num_train=2000, num_val=300),
                    train_transform="fixed", eval_transform="fixed", fixed_size=128, hflip=False, num_workers=0),
    solver=SolverConfig(epochs=20, batch_size=16, base_lr=0.003, base_batch_size=16, weight_decay=0.05,
                        warmup_iters=100, warmup_factor=0.01, schedule="cosine", clip_grad_norm=10.0,
                        optimizer="adamw"),
    run=RunConfig(out_dir="runs/ssd_digits", eval_every=5, log_every=20, precision="auto"),
)

PRESETS: dict[str, ExperimentConfig] = {
    "retinanet_digits": RETINANET_DIGITS,
    "retinanet_digits_fast": RETINANET_DIGITS_FAST,
    "retinanet_digits_large": RETINANET_DIGITS_LARGE,
    "retinanet_r50_coco": RETINANET_R50_COCO,
    "retinanet_r50_voc": RETINANET_R50_VOC,
    "ssd_digits": SSD_DIGITS,
    "ssd300_voc": SSD300_VOC,
    "ssd300_coco": SSD300_COCO,
    "ssd512_coco": SSD512_COCO,
    "faster_rcnn_digits": FASTER_RCNN_DIGITS,
    "faster_rcnn_vgg16_voc": FASTER_RCNN_VGG16_VOC,
    "faster_rcnn_r50_c4_voc": FASTER_RCNN_R50_C4_VOC,
    "faster_rcnn_r50_c4_coco": FASTER_RCNN_R50_C4_COCO,
}
