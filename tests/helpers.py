"""Helpers shared by several test files (not collected: the name does not start with test_)."""
from __future__ import annotations

import torch

from anchordet.data.shapes import all_found


def assert_detections_equal(flat: list[torch.Tensor], expected: list, box_tol=1e-4, score_tol=1e-5, min_count=20):
    """Flat exported detections (boxes, scores, labels, batch_index) == ``predict``'s per image:
    each of predict's detections pairs with one exported detection of the same image and label,
    score within ``score_tol`` and box within ``box_tol``. Order is not compared: scores that
    are equal (sigmoid saturates at 1.0) or 1e-7 apart may come out in either order."""
    boxes, scores, labels, batch_index = flat
    assert len(boxes) == sum(len(d.boxes) for d in expected)
    free = torch.ones(len(boxes), dtype=torch.bool)
    for b, det in enumerate(expected):
        assert int((batch_index == b).sum()) == len(det.boxes) >= min_count  # enough to mean something
        for box, score, label in zip(det.boxes, det.scores, det.labels):
            close = (free & (batch_index == b) & (labels == label) & ((scores - score).abs() <= score_tol)
                     & ((boxes - box).abs().amax(dim=1) <= box_tol))
            assert close.any(), f"image {b}: no exported match for {label.item()} {box.tolist()} {score.item():.6f}"
            free[torch.nonzero(close)[0, 0]] = False


def assert_overfits(model, images, targets, max_steps: int, check_every: int, **loss_options) -> None:
    """Adam at 2e-3 on ``model.loss`` until ``predict`` finds every box (``all_found``), checked
    every ``check_every`` steps; fails after ``max_steps``."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    found = False
    for step in range(max_steps):
        model.train()
        loss = sum(model.loss(images, targets, **loss_options).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % check_every == check_every - 1:
            found = all_found(model.eval().predict(images), targets)
            if found:
                break
    assert found, f"not every box found after {step + 1} steps (loss {loss.item():.4f})"


def collectives_in_a_process_group() -> dict:
    """Run in each process of a 2-process gloo group (``anchordet.engine.launch.run_processes``):
    every collective of ``anchordet.engine.distributed`` with values that differ by rank; returns
    what each rank got (gathered), so the parent checks both."""
    from anchordet.engine import distributed as D

    D.init_from_environment(torch.device("cpu"))
    rank = D.rank()
    got = {
        "device": str(D.collective_device()),
        "sums": D.all_reduce_sums({"a": rank + 1.0, "b": 2.5}),
        "any": [D.any_process(rank == 1), D.any_process(False)],
        "all": [D.all_processes(rank == 0), D.all_processes(True)],
        "min": D.min_over_processes(10 - 3 * rank),
        "mean": float(D.reduce_mean(torch.tensor(float(rank)))),
    }
    D.barrier()
    return D.all_gather_objects(got)
