"""An image that cannot be read in the middle of training (issue 28, item 2).

A dataset is checked when it is built, but a file can be truncated, replaced or deleted while a
run goes on (hours, on COCO). With ``data.skip_bad_annotations`` the dataset skips it and counts
it (``data.datasets.RecordDataset``); otherwise the loader raises a ``UserError`` naming the
annotation file, the image id and the file. ``until_input_fails`` turns that error into an
``InputFailed`` in place of the next batch; the trainer's per-step agreement
(``Trainer.agreed_stop``) tells every process, and ``stop_on_input`` saves ``last.pt`` at that
step, so the epoch is not lost, and raises the error as one line saying how to continue. A run
that has not finished a step writes nothing: the folder stays free for a re-run.
"""
from __future__ import annotations

from dataclasses import dataclass

from anchordet import distributed as dist_utils
from anchordet.errors import UserError


@dataclass
class InputFailed:
    """In place of the next batch: reading it failed; ``message``: the error's own text."""

    message: str


def until_input_fails(batches):
    """The batches; where fetching one raises a ``UserError``, an ``InputFailed``, then the end.
    DataLoader workers hand their exception back inside a traceback text, whose last line is
    ``module.ErrorClass: message``: the message is taken from there."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except UserError as exc:
            text = str(exc)
            if "Original Traceback" in text:  # torch.utils.data._utils.ExceptionWrapper
                text = [line for line in text.splitlines() if line.strip()][-1].split(": ", 1)[-1]
            yield InputFailed(text)
            return
        yield batch


def stop_on_input(trainer, failure: InputFailed | None) -> None:
    """Every process calls it when any process's next batch failed (``failure``: this process's,
    None on the others): rank 0 saves ``last.pt`` at this step when the run has finished a step,
    then every process raises the first failing process's message with what to do next.
    ``trainer``: the ``engine.trainer.Trainer`` (not imported here: it imports this module)."""
    messages = [m for m in dist_utils.all_gather_objects(failure.message if failure else None) if m]
    if trainer.iteration > (trainer.resumed_at or 0):
        path = trainer._save("last.pt")
        after = (f"; last.pt saved at iteration {trainer.iteration}: fix or remove the file (or set "
                 f"data.skip_bad_annotations=true) and continue with --resume {path}")
    else:
        after = "; no step had been trained, nothing was written"
    raise UserError(messages[0] + after)
