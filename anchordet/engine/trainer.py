"""The training loop: SGD + warmup/schedule, AMP, DDP, NaN guard, evaluation, checkpoints, resume.

One ``Trainer`` per process. Under ``torchrun`` every process trains a shard of each global batch
(DistributedDataParallel); only rank 0 writes files. The loop fits on a screen: ``fit`` walks the
epochs, ``_train_epoch`` the batches, ``_step`` one optimizer step. Around it, in their own
modules: the budget (``engine.budget``), evaluation with early stopping and the best weights
(``engine.validation``), the checkpointed state and its restoring (``engine.training_state``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from anchordet import progress as progress_lines
from anchordet.config.inference import InferenceSettings
from anchordet.config.schema import ExperimentConfig
from anchordet.devices import resolve_device
from anchordet import distributed as dist_utils
from anchordet.engine import interrupt
from anchordet.runtime.acceleration import accelerate_for_training, configure_cuda, fixed_input_size
from anchordet.engine.budget import RunBudget
from anchordet.engine.data import EpochSampler, SeededItems, aspect_groups, build_dataset, make_loader
from anchordet.engine.early_stopping import EarlyStopping
from anchordet.engine.input_failure import InputFailed, stop_on_input, until_input_fails
from anchordet.engine.ema import ModelEMA
from anchordet.engine.logger import RunLogger, plot_curves
from anchordet.engine.optim import build_optimizer, build_scheduler
from anchordet.engine.run_folder import RunFolder
from anchordet.engine.sync_bn import convert_sync_batch_norm
from anchordet.engine.training_state import restore_training_state, save_training_state
from anchordet.engine.validation import evaluate_and_keep_best
from anchordet.errors import UserError
from anchordet.files import atomic_write_text
from anchordet.weights_file import save_weights


def _chunks(iterable, size: int):
    """Lists of ``size`` consecutive items (the last one may be shorter)."""
    iterator = iter(iterable)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the iteration and the images."""


@dataclass
class TrainOutcome:
    """How ``fit`` ended: "finished", "stopped" (budget / stop_after_iters) or "interrupted"
    (Ctrl-C or SIGTERM: ``stop_signal`` says which). ``early_stopped``: finished before
    ``solver.epochs`` by ``run.patience``."""

    status: str
    iteration: int
    last_checkpoint: Path | None
    best_metric: float | None
    early_stopped: bool = False
    stop_signal: int = 0


class LossModule(nn.Module):
    """DDP hooks ``__call__`` only: this wrapper makes ``model.loss`` the wrapped forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images, targets):
        return self.model.loss(images, targets)


class Trainer:
    """``overwrite``: a new run may replace a previous run in ``run.out_dir`` (see
    ``engine.run_folder``); call ``close`` when done with the trainer (it unlocks the folder)."""

    def __init__(self, config: ExperimentConfig, resume: str | Path | None = None, progress: bool = True,
                 overwrite: bool = False):
        self.config = config
        run, solver = config.run, config.solver
        self.device = resolve_device(run.device)
        dist_utils.init_from_environment(self.device)
        configure_cuda(self.device, fixed_input_size(config.data))
        self.world = dist_utils.world_size()
        if solver.batch_size % self.world:
            raise UserError(f"solver.batch_size={solver.batch_size} must be divisible by the number of "
                            f"processes ({self.world})")
        if run.threads:
            torch.set_num_threads(run.threads)
        self.out_dir = Path(run.out_dir)
        self.is_main = dist_utils.is_main_process()
        self.progress = progress and self.is_main
        self.run_folder = RunFolder(self.out_dir, resume=resume, overwrite=overwrite) if self.is_main else None
        if self.run_folder is not None:
            self.run_folder.claim()  # before the slow part: a refused folder fails fast
        try:
            self._set_up(resume)
        except BaseException:
            self.close()
            raise

    def _set_up(self, resume: str | Path | None) -> None:
        config, run, solver = self.config, self.config.run, self.config.solver
        init = None
        if config.model.init_weights and not resume:  # fine-tuning: fit the options the weights determine
            from anchordet.engine.init_weights import fit_to_source, read_source

            source = read_source(config.model.init_weights)
            model_config, fitted = fit_to_source(config.model, source)
            self.config = config = dataclasses.replace(config, model=model_config)
            init = (source, fitted)
        torch.manual_seed(run.seed)  # the model's initialisation
        self.model = config.model.build().to(self.device)
        if config.model.sync_batch_norm and self.world > 1:
            convert_sync_batch_norm(self.model)
        # channels_last and the network's precision (fp32 / bf16 / fp16 autocast, losses in fp32)
        self.precision = accelerate_for_training(self.model, self.device, run.precision, run.channels_last,
                                                 say=self._say)
        self.train_set = SeededItems(build_dataset(config.data, "train"), run.seed)
        self.val_set = build_dataset(config.data, "val", train=False)
        if init is not None:  # fine-tuning: before the optimizer sees the weights
            from anchordet.engine.init_weights import initialise_from

            summary = initialise_from(self.model, init[0], list(self.val_set.class_names), config.model, init[1])
            if self.is_main:
                print(summary.line(), flush=True)
        self.train_groups = aspect_groups(config.data, self.train_set)
        self.iters_per_epoch = len(self.train_set) // solver.effective_batch_size  # optimizer steps
        if self.iters_per_epoch == 0:
            raise UserError(f"the training set has {len(self.train_set)} images, fewer than one batch "
                            f"(solver.batch_size={solver.batch_size} x solver.accumulate_steps="
                            f"{solver.accumulate_steps})")
        self.optimizer = build_optimizer(self.model, solver)
        self.ema = ModelEMA(self.model, solver.ema_decay) if solver.ema_decay else None
        # reads self.config at each step: run.fit_epochs_to_budget may shorten solver.epochs once
        self.scheduler = build_scheduler(self.optimizer, lambda: self.config.solver, self.iters_per_epoch)
        self.scaler = self.precision.grad_scaler()  # fp16 on CUDA only
        self.wrapped = LossModule(self.model)
        if self.world > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(self.wrapped, device_ids=device_ids)
        self.epoch, self.iteration, self.batch_in_epoch, self.best_metric = 0, 0, 0, None
        self.early_stopping = EarlyStopping(run.patience)
        self.resumed_at, self.stop_signal, self._logger = None, 0, None
        if resume:
            restore_training_state(self, resume)
            self.resumed_at = self.iteration

    def close(self) -> None:
        """Unlock the run folder (the trainer writes nothing more)."""
        if self.run_folder is not None:
            self.run_folder.release()

    @property
    def logger(self) -> RunLogger:
        self.start_writing()
        return self._logger

    def start_writing(self) -> None:
        """Before this run's first write (its first log line or checkpoint, after its first step
        or a stop before it): tidy the folder, write config.yaml, open the logs. Until then a run
        that fails (a bad option, dataset or image) leaves the folder as it found it."""
        if self._logger is not None:
            return
        if self.is_main:
            self.run_folder.prepare()
            atomic_write_text(self.out_dir / "config.yaml", self.config.to_yaml())
        self._logger = RunLogger(self.out_dir, enabled=self.is_main, resumed_at=self.resumed_at)

    # ----------------------------------------------------------------------------------- set-up
    def _say(self, line: str) -> None:
        """One line on the main process's stderr (e.g. a precision fallback)."""
        if self.is_main:
            import sys

            print(line, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------------------------ loop
    def fit(self) -> TrainOutcome:
        """Train to the end, a budget or a stop request. Ctrl-C and SIGTERM only set a flag here
        (``engine.interrupt``) that every process reads at the same point of each iteration."""
        self.budget = RunBudget(self.config.run)
        try:
            with interrupt.stop_requests():
                while self.epoch < self.config.solver.epochs and not self.early_stopping.due:
                    stop = self._train_epoch() or self._end_of_epoch()
                    if stop:
                        return self._stop(stop)
                return self._finish()
        except KeyboardInterrupt:  # raised by code, or signals not handled here (fit outside the main thread)
            self.stop_signal = self.stop_signal or int(signal.SIGINT)
            return self._stop("interrupted")
        finally:
            if self._logger is not None:
                self._logger.close()

    def _train_epoch(self) -> str | None:
        """Train the rest of the current epoch; "stopped" (a budget) or "interrupted" (a stop
        request) when it ended midway, None at the end of the epoch."""
        solver, run = self.config.solver, self.config.run
        self.train_set.set_epoch(self.epoch)
        steps = solver.accumulate_steps  # loader batches per optimizer step; batch_in_epoch counts steps
        sampler = EpochSampler(len(self.train_set), solver.batch_size, seed=run.seed, epoch=self.epoch,
                               shuffle=True, rank=dist_utils.rank(), world_size=self.world,
                               start_batch=self.batch_in_epoch * steps, num_batches=self.iters_per_epoch * steps,
                               groups=self.train_groups, batch_numbers=True)
        loader = make_loader(self.train_set, sampler, solver.batch_size // self.world, self.config.data.num_workers,
                             self._size_divisible(), run.seed, self.epoch, pin_memory=self.device.type == "cuda")
        bar = progress_lines.Progress(self.iters_per_epoch, f"epoch {self.epoch + 1}/{self.config.solver.epochs}",
                                      initial=self.batch_in_epoch, every=run.log_every, enabled=self.progress)
        window_start, window_images = time.monotonic(), 0
        self.model.train()
        try:
            for batch in until_input_fails(_chunks(loader, steps)):
                failed = isinstance(batch, InputFailed)
                stop = self.agreed_stop(input_failed=failed)
                if stop == "input-failed":  # raises, after saving last.pt at this step
                    stop_on_input(self, batch if failed else None)
                if stop:
                    return stop
                losses = self._step(batch)
                self.batch_in_epoch += 1
                self.iteration += 1
                self.budget.count_iteration()
                self._maybe_fit_epochs_to_budget()
                window_images += sum(len(b) for b in batch) * self.world
                speed = window_images / max(time.monotonic() - window_start, 1e-9)
                self._log_step(losses, speed, bar)
        finally:
            bar.close()
        return None

    def _step(self, batches: list) -> dict[str, float]:
        """One optimizer step on ``solver.accumulate_steps`` loader batches: each batch's loss
        divided by their number is backpropagated and the gradients add up (under DDP they are
        all-reduced with the last batch only). Returns the losses averaged over the batches."""
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for k, batch in enumerate(batches):
            with self._gradient_sync(k == len(batches) - 1):
                losses, total = self._forward(batch)
                share = total / len(batches)  # exact for one batch: x / 1 == x
                (self.scaler.scale(share) if self.scaler is not None else share).backward()
            for key, value in [*losses.items(), ("loss", total)]:
                sums[key] = sums.get(key, 0.0) + float(value.detach())
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.config.solver.clip_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.solver.clip_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {k: v / len(batches) for k, v in sums.items()}

    def _forward(self, batch) -> tuple[dict, torch.Tensor]:
        """The losses of one loader batch and their sum, checked finite."""
        images = batch.images.to(self.device, non_blocking=True)
        targets = [t.to(self.device) for t in batch.targets]
        losses = self.wrapped(images, targets)  # the network parts run in self.precision (their hooks)
        total = sum(losses.values())
        self._check_finite(total, losses, batch)
        return losses, total

    def _gradient_sync(self, last: bool):
        """DDP all-reduces gradients in the backward of the last accumulated batch only."""
        if self.world > 1 and not last:
            return self.wrapped.no_sync()
        return contextlib.nullcontext()

    def _check_finite(self, total: torch.Tensor, losses: dict, batch) -> None:
        """Stop before a non-finite loss reaches the weights: the last checkpoint stays the last good one."""
        if dist_utils.all_processes(bool(torch.isfinite(total.detach()))):  # every process stops together
            return
        parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        last = self.out_dir / "last.pt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint had been written yet"
        raise TrainingDiverged(
            f"loss is not finite at iteration {self.iteration + 1} (epoch {self.epoch + 1}, batch "
            f"{self.batch_in_epoch + 1}): {parts}; images of the batch: {list(batch.image_ids)}; {kept}. "
            f"Lower solver.base_lr, raise solver.warmup_iters, or set solver.clip_grad_norm.")

    # ------------------------------------------------------------------------- logging, budget
    def _log_step(self, losses: dict[str, float], images_per_s: float, bar: progress_lines.Progress) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        bar.update(1, loss=f"{losses['loss']:.3f}", lr=f"{lr:.2g}", img_s=f"{images_per_s:.1f}")
        if self.iteration % self.config.run.log_every == 0 or self.iteration == 1:
            reduced = dist_utils.all_reduce_sums(losses)
            averaged = {k: v / self.world for k, v in reduced.items()}
            self.logger.log("train", self.iteration, {"epoch": self.epoch + 1, "lr": lr,
                                                      "images_per_s": images_per_s,
                                                      "precision": self.precision.name, **averaged})

    def agreed_stop(self, budget: bool = True, input_failed: bool = False) -> str | None:
        """Stop before the next batch? The same answer in every process: "input-failed" when the
        next batch of any of them could not be read (``input_failed``), "interrupted" when a stop
        request (Ctrl-C, SIGTERM) reached any of them, "stopped" when a budget is spent (with
        ``budget``), else None. One all-reduce of the flags, at the same point of each
        iteration, so all processes stop after the same step."""
        signum, spent, failed = dist_utils.all_reduce_max([interrupt.requested(), budget and self.budget.spent(),
                                                           input_failed])
        if failed:
            return "input-failed"
        if signum:
            self.stop_signal = int(signum)
            return "interrupted"
        return "stopped" if spent else None

    def _maybe_fit_epochs_to_budget(self) -> None:
        """``run.fit_epochs_to_budget``: once the budget has timed its iterations, shorten
        ``solver.epochs`` to what fits ``run.max_minutes`` (``engine.budget``). Every process takes
        the smallest count any of them computed, so all stop together."""
        fitted = self.budget.fitted_epochs(self.iteration, self.epoch, self.iters_per_epoch, self.config.solver.epochs)
        if fitted is None:
            return
        epochs, per_iter = fitted
        epochs = dist_utils.min_over_processes(epochs)
        run = self.config.run
        self.config = dataclasses.replace(
            self.config, solver=dataclasses.replace(self.config.solver, epochs=epochs),
            run=dataclasses.replace(run, fit_epochs_to_budget=False))
        self.start_writing()
        if self.is_main:
            atomic_write_text(self.out_dir / "config.yaml", self.config.to_yaml())
        if self.progress:
            progress_lines.write(f"{per_iter:.3f} s per iteration: {epochs} epochs fit the {run.max_minutes:g}-minute budget")

    @property
    def eval_model(self) -> nn.Module:
        """What evaluation and the weights files use: the EMA of the weights (``solver.ema_decay``) or the model."""
        return self.ema.module if self.ema is not None else self.model

    def _size_divisible(self) -> int:
        return self.model.size_divisible  # the detector's own: 1 for a fixed-size SSD (no padding)

    # ---------------------------------------------------------------------- epochs, checkpoints
    def _end_of_epoch(self) -> str | None:
        """Evaluate the epoch just trained (when due), then count it and save last.pt. The epoch is
        counted only after its evaluation: a stop request during the evaluation cancels it
        ("interrupted") and the checkpoint holds the epoch as trained but not counted, so the
        resumed run trains nothing more of it and evaluates it first."""
        done = self.epoch + 1
        every = self.config.run.eval_every
        if done == self.config.solver.epochs or (every and done % every == 0):
            if not self._evaluate(done):
                return "interrupted"
        self.epoch, self.batch_in_epoch = done, 0
        self._save("last.pt")
        return None

    def _evaluate(self, epoch: int) -> bool:
        """Evaluate after ``epoch`` epochs, keep the best weights, count it for early stopping
        (``engine.validation``); False when a stop request cancelled it."""
        return evaluate_and_keep_best(self, epoch)

    def _save(self, name: str) -> Path:
        """``last.pt`` / ``best.pt`` (``engine.training_state``)."""
        return save_training_state(self, name)

    def inference_settings(self) -> InferenceSettings:
        """What `predict` needs besides the weights: the eval resize and the class names / ids."""
        return InferenceSettings.from_training(self.config.data, self.val_set.class_names, self.val_set.category_ids)

    def _stop(self, status: str) -> TrainOutcome:
        path = self._save("last.pt")
        if self.progress:
            print(f"\n{status} at iteration {self.iteration}; resume with: anchordet train --resume {path}", flush=True)
        return TrainOutcome(status, self.iteration, path, self.best_metric,
                            stop_signal=self.stop_signal if status == "interrupted" else 0)

    def finish_early(self) -> TrainOutcome:
        """After a budget stop: evaluate, write the weights and curves as a finished run would
        (the checkpoint stays resumable). Status "stopped" with the best metric, or "interrupted"
        when a stop request cancelled the evaluation."""
        with interrupt.stop_requests():
            evaluated = self._evaluate(self.epoch)
        last = self.out_dir / "last.pt"
        if not evaluated:
            return TrainOutcome("interrupted", self.iteration, last, self.best_metric, stop_signal=self.stop_signal)
        self._finish()
        return TrainOutcome("stopped", self.iteration, last, self.best_metric)

    def _finish(self) -> TrainOutcome:
        self.start_writing()
        if self.is_main:
            save_weights(self.out_dir / "model.safetensors", self.eval_model, self.config.model,
                         self.inference_settings().to_metadata())
            plot_curves(self.logger.metrics_path, self.out_dir / "curves.png")
        return TrainOutcome("finished", self.iteration, self.out_dir / "last.pt", self.best_metric,
                            self.early_stopping.due)


def train(config: ExperimentConfig, resume: str | Path | None = None, progress: bool = True,
          processes: int = 1, finish_on_budget: bool = False, overwrite: bool = False) -> TrainOutcome:
    """Train in this process (``processes=1``, or under torchrun) or in ``processes`` local
    processes joined by DDP (see ``anchordet.engine.launch``). ``finish_on_budget``: when a time
    or iteration budget stops training, evaluate and write the weights as a finished run would
    (``Trainer.finish_early``; the outcome keeps status "stopped"). ``overwrite``: a new run
    replaces a previous run in ``run.out_dir`` instead of being refused. With several processes
    a failure raises the first failing process's own exception (a ``UserError`` stays one line),
    as one process would; ``ChildProcessFailed`` only when it could not be sent back."""
    if processes == 1:
        return _train_here(config.to_dict(), resume, progress, finish_on_budget, overwrite)
    from anchordet.engine.launch import ChildProcessFailed, run_processes, threads_per_process

    if not config.run.threads:  # share the cores out instead of every process taking them all
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, threads=threads_per_process(processes)))
    try:
        return run_processes(_train_here, processes, config.to_dict(), resume, progress, finish_on_budget, overwrite)
    except ChildProcessFailed as exc:
        if exc.exception is None:
            raise
        raise exc.exception from exc


def _train_here(config_dict: dict, resume, progress: bool, finish_on_budget: bool,
                overwrite: bool = False) -> TrainOutcome:
    """One process's part of ``train`` (module level: spawned processes unpickle it by name)."""
    trainer = Trainer(ExperimentConfig.from_dict(config_dict), resume=resume, progress=progress, overwrite=overwrite)
    try:
        outcome = trainer.fit()
        if outcome.status == "stopped" and finish_on_budget:
            outcome = trainer.finish_early()
        return outcome
    finally:
        trainer.close()
