"""Evaluation during training, early stopping (``run.patience``) and the best weights.

``evaluate_and_keep_best(trainer, epoch)`` evaluates the trainer's ``eval_model`` on its
validation set, logs the result, keeps the best metric, writes ``best.pt`` and
``best.safetensors`` when it improved, and counts the evaluation for early stopping. Every
process takes rank 0's answer, so all keep training or stop together."""
from __future__ import annotations

from anchordet import distributed as dist_utils
from anchordet import progress as progress_lines
from anchordet.engine.evaluate import EvaluationCancelled, evaluate_dataset
from anchordet.weights_file import save_weights


def evaluate_and_keep_best(trainer, epoch: int) -> bool:
    """Evaluate, log the result as that of ``epoch`` (epochs done) and keep the best model;
    False when a stop request cancelled it (every process agrees, batch by batch).
    ``trainer``: the ``engine.trainer.Trainer`` (not imported here: it imports this module)."""
    config = trainer.config
    try:
        result = evaluate_dataset(trainer.eval_model, trainer.val_set, config.run.metric, trainer.device,
                                  batch_size=max(1, config.solver.batch_size // trainer.world),
                                  should_stop=lambda: trainer.agreed_stop(budget=False) is not None,
                                  progress=trainer.progress)
    except EvaluationCancelled:
        return False
    improved = False
    if result is not None:
        trainer.logger.log("eval", trainer.iteration, {"epoch": epoch, **result.scalars()})
        improved = trainer.best_metric is None or result.headline > trainer.best_metric
        if improved:
            trainer.best_metric = result.headline
        if trainer.progress:
            progress_lines.write(f"epoch {epoch}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in result.scalars().items() if k in ("AP", "AP50", "AP75", "mAP")))
    improved = bool(dist_utils.all_gather_objects(improved)[0])
    if trainer.early_stopping.record(improved, epoch):
        _report_early_stop(trainer, epoch)
    if improved:
        trainer._save("best.pt")
        if trainer.is_main:
            save_weights(trainer.out_dir / "best.safetensors", trainer.eval_model, config.model,
                         trainer.inference_settings().to_metadata())
    return True


def _report_early_stop(trainer, epoch: int) -> None:
    stop = trainer.early_stopping
    trainer.logger.log("early_stop", trainer.iteration, {"epoch": epoch, "patience": stop.patience,
                                                         "best": trainer.best_metric, "best_epoch": stop.best_epoch})
    if trainer.is_main:
        metric = trainer.config.run.metric
        print(f"early stop after epoch {epoch}: no better {metric} {'AP' if metric == 'coco' else 'mAP'} in "
              f"{stop.patience} evaluations (best {trainer.best_metric:.4f} after epoch {stop.best_epoch})", flush=True)
