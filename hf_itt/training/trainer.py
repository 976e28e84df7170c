"""MultiTaskTrainer: the HF Trainer with one shared encoder, a head per task and one task per step.

It overrides only public hooks: ``get_train_dataloader`` (the lockstep batch sampler of
``hf_itt.training.sampling``), ``compute_loss`` (records each task's loss; logged as ``loss_<task>``,
averaged over the logging interval and over ranks), ``evaluate`` / ``predict`` (one pass per task with
that task's head, ``compute_metrics`` and ``label_names`` -> ``eval_<task>_<metric>``, plus ``eval_loss``
and ``eval_average`` over tasks for ``metric_for_best_model``), ``log`` and ``train`` (checks a resumed
checkpoint's sampler state).

Used as a ``Trainer`` is (datasets: ``hf_itt.training.task_datasets``; columns: docs/columns.md)::

    model = MultiTaskModel.from_encoder("xlm-roberta-large", {"mnli": {"type": "classification",
                                        "labels": ["entailment", "neutral", "contradiction"]},
                                        "squad": {"type": "extractive_qa"}})
    args = MultiTaskTrainingArguments("out", task_sampling="temperature", sampling_temperature=2)
    trainer = MultiTaskTrainer(model, args, train_dataset={"mnli": mnli, "squad": squad},
                               eval_dataset={"mnli": mnli_dev}, processing_class=tokenizer)
    trainer.train()
    trainer.evaluate()                     # eval_mnli_loss, eval_mnli_<metric>, eval_loss, eval_average
    trainer.predict(squad_dev, task="squad")

Callbacks: ``on_evaluate`` fires once per ``evaluate()`` call, after the last task, with every task's
metrics and the averages; ``on_predict`` once per ``predict()`` (one task).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from hf_itt.errors import CheckpointError, ConfigError, DataError
from hf_itt.fileio import atomic_write_text
from hf_itt.task_types import get_type
from hf_itt.task_types.collators import MultiTaskCollator
from hf_itt.training.arguments import sampling_settings
from hf_itt.training.sampling import (
    LockstepBatchSampler,
    MultiTaskDataset,
    TaskSampler,
    make_sampler,
)
from hf_itt.training.task_datasets import as_task_datasets, one_task

logger = logging.getLogger(__name__)

SAMPLER_STATE_NAME = "sampler_state.json"
# Keys of Trainer.evaluate's output that are bookkeeping, not metrics of the task.
NON_METRICS = (
    "loss",
    "runtime",
    "samples_per_second",
    "steps_per_second",
    "epoch",
    "model_preparation_time",
    "jit_compilation_time",
)


class SamplerStateCallback(TrainerCallback):
    """Writes the sampler state into each checkpoint and tells the batch sampler which epoch starts."""

    def __init__(self):
        self.batch_sampler: LockstepBatchSampler | None = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        # Not every accelerate wrapper forwards set_epoch (a resumed multi-rank run skips through two
        # wrappers); the epoch index is global_step // updates-per-epoch at the start of any epoch.
        if self.batch_sampler is not None:
            updates = self.batch_sampler.steps_per_epoch // self.batch_sampler.accumulation_steps
            self.batch_sampler.set_epoch(state.global_step // updates)

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if self.batch_sampler is None or not state.is_world_process_zero or not folder.is_dir():
            return
        record = {"schedule": self.batch_sampler.state(), "global_step": state.global_step, "epoch": state.epoch}
        atomic_write_text(folder / SAMPLER_STATE_NAME, json.dumps(record, indent=2, sort_keys=True))


def _set_ddp_unused_parameter_search(args, model, train_datasets) -> None:
    """DDP must look for unused parameters when several heads train (each step leaves the other heads idle);
    with one head and no pooler everything is used, and looking only makes DDP warn that it found none.
    An explicit ``ddp_find_unused_parameters`` is kept."""
    if args is None or args.ddp_find_unused_parameters is not None:
        return
    idle_pooler = getattr(model.encoder, "pooler", None) is not None
    args.ddp_find_unused_parameters = len(train_datasets) > 1 or idle_pooler


def _hold_back(args, state, control, metrics=None, **kwargs):
    return control


def _one_of(dataset, datasets, what: str, task_names: list[str]) -> dict[str, object]:
    if dataset is not None and datasets is not None:
        raise ConfigError(f"pass {what}= or {what}s=, not both ({what}s= is the older name of the dict form)")
    hint = (
        f"pass {what}={{'<head>': dataset, ...}} (one tokenized dataset per head) or add a 'task' column "
        "naming each row's head"
    )
    return as_task_datasets(dataset if dataset is not None else datasets, task_names, what, hint)


def _task_dataset_sizes(datasets: Mapping[str, object], what: str) -> None:
    for task, dataset in datasets.items():
        if dataset is None or len(dataset) == 0:
            raise DataError(
                f"{what} dataset of task {task!r} is empty; check its data files, split or max_train_examples"
            )


class MultiTaskTrainer(Trainer):
    def __init__(
        self,
        model=None,
        args=None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *,
        train_datasets: Mapping[str, object] | None = None,
        eval_datasets: Mapping[str, object] | None = None,
        sampler: str | TaskSampler | None = None,
        sampler_kwargs: Mapping | None = None,
        compute_metrics_per_task: Mapping[str, Callable] | None = None,
        main_metrics: Mapping[str, str] | None = None,
        steps_per_epoch: int | None = None,
        same_task_per_update: bool | None = None,
        **kwargs,
    ):
        """The ``Trainer`` arguments, with datasets that say which head they train.

        train_dataset / eval_dataset: task -> tokenized dataset, one dataset with a ``task`` column, or
            one dataset for a single-head model (``hf_itt.training.task_datasets``). ``train_datasets`` /
            ``eval_datasets`` are the older names of the dict form.
        sampler: a strategy name of ``hf_itt.training.sampling`` (options in ``sampler_kwargs``) or a
            TaskSampler; default: ``args.task_sampling`` of ``MultiTaskTrainingArguments``, else proportional.
        compute_metrics_per_task: task -> ``compute_metrics`` function (``compute_metrics=`` is the fallback).
        main_metrics: task -> metric name averaged into ``eval_average`` (default: the first metric returned).
        steps_per_epoch, same_task_per_update: as the fields of ``MultiTaskTrainingArguments`` (which they
            override); updates per epoch, and one task for all accumulation micro-steps of an update.
        """
        if model is None or not hasattr(getattr(model, "config", None), "tasks"):
            raise ConfigError(
                "MultiTaskTrainer needs a MultiTaskModel (model=...), built with "
                "MultiTaskModel.from_encoder(encoder, tasks) or from_pretrained(checkpoint)"
            )
        self.task_ids = {name: index for index, name in enumerate(model.config.task_names)}
        self.train_datasets = _one_of(train_dataset, train_datasets, "train_dataset", self.task_names)
        self.eval_datasets = _one_of(eval_dataset, eval_datasets, "eval_dataset", self.task_names)
        for what, datasets in (("training", self.train_datasets), ("evaluation", self.eval_datasets)):
            missing = sorted(set(datasets) - set(self.task_ids))
            if missing:
                raise ConfigError(
                    f"{what} datasets for {missing} but the model has heads only for "
                    f"{sorted(self.task_ids)}; add them with model.add_task(...)"
                )
            _task_dataset_sizes(datasets, what)
        settings = sampling_settings(args, sampler, sampler_kwargs, steps_per_epoch, same_task_per_update)
        self.task_sampler = (
            make_sampler(settings.strategy, {t: len(d) for t, d in self.train_datasets.items()}, **settings.options)
            if self.train_datasets
            else None
        )
        self.compute_metrics_per_task = dict(compute_metrics_per_task or {})
        self.main_metrics = dict(main_metrics or {})
        self.steps_per_epoch, self.same_task_per_update = settings.steps_per_epoch, settings.same_task_per_update
        _set_ddp_unused_parameter_search(args, model, self.train_datasets)
        if args is not None and args.dataloader_pin_memory and args.device.type == "cpu":
            args.dataloader_pin_memory = False  # nothing to pin for; torch warns at every dataloader otherwise
        if data_collator is None:
            data_collator = MultiTaskCollator(
                processing_class, [s["type"] for s in model.config.tasks.values()], seed=getattr(args, "seed", 0)
            )
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            processing_class=processing_class,
            train_dataset=self._wrap(self.train_datasets) if self.train_datasets else None,
            eval_dataset={t: self._wrap({t: d}) for t, d in self.eval_datasets.items()} or None,
            **kwargs,
        )
        self._check_best_metric()
        self.sampler_state = SamplerStateCallback()
        self.add_callback(self.sampler_state)
        self._task_loss: torch.Tensor | None = None  # [num_tasks, 2]: loss sum, micro-batch count
        self._held_logs: dict | None = None  # per-task evaluation logs, merged into one (see evaluate)

    @property
    def task_names(self) -> list[str]:
        return list(self.task_ids)

    def _wrap(self, datasets: Mapping[str, object]) -> MultiTaskDataset:
        return MultiTaskDataset(datasets, {task: self.task_ids[task] for task in datasets})

    def _check_best_metric(self) -> None:
        best = (self.args.metric_for_best_model or "").removeprefix("eval_")
        fallback = self.compute_metrics is not None
        if best == "average" and not all(t in self.compute_metrics_per_task or fallback for t in self.eval_datasets):
            raise ConfigError(
                "metric_for_best_model='average' needs a compute_metrics function for every "
                f"evaluation task ({sorted(self.eval_datasets)}); pass compute_metrics_per_task "
                "or use metric_for_best_model='loss'"
            )

    # ---- training data --------------------------------------------------------------------------
    def build_batch_sampler(self) -> LockstepBatchSampler:
        args = self.args
        lengths = None
        if args.train_sampling_strategy == "group_by_length":
            lengths = {task: _lengths(data, args.length_column_name) for task, data in self.train_datasets.items()}
        accumulation = args.gradient_accumulation_steps
        batch_sampler = LockstepBatchSampler(
            self.task_sampler,
            batch_size=self._train_batch_size,
            world_size=max(1, args.world_size),
            seed=args.data_seed if args.data_seed is not None else args.seed,
            steps_per_epoch=None if self.steps_per_epoch is None else self.steps_per_epoch * accumulation,
            accumulation_steps=args.gradient_accumulation_steps,
            same_task_per_update=self.same_task_per_update,
            lengths=lengths,
        )
        updates_per_epoch = batch_sampler.steps_per_epoch // args.gradient_accumulation_steps
        batch_sampler.num_epochs = (
            math.ceil(args.max_steps / updates_per_epoch) if args.max_steps > 0 else math.ceil(args.num_train_epochs)
        )
        return batch_sampler

    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ConfigError("nothing to train: pass train_dataset= to MultiTaskTrainer")
        batch_sampler = self.build_batch_sampler()
        self.sampler_state.batch_sampler = batch_sampler
        workers = self.args.dataloader_num_workers
        extra = (
            {
                "prefetch_factor": self.args.dataloader_prefetch_factor,
                "persistent_workers": self.args.dataloader_persistent_workers,
            }
            if workers > 0
            else {}
        )
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=batch_sampler,
            collate_fn=self.data_collator,
            num_workers=workers,
            pin_memory=self.args.dataloader_pin_memory,
            **extra,
        )
        return self.accelerator.prepare(loader)

    # ---- loss and logs --------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        task_id = int(inputs["task_ids"][0])
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            if self._task_loss is None:
                self._task_loss = torch.zeros(len(self.task_ids), 2, device=loss.device)
            self._task_loss[task_id, 0] += loss.detach().float().mean()
            self._task_loss[task_id, 1] += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._held_logs is not None:  # inside evaluating_task: evaluate() logs every task at once
            self._held_logs.update(logs)
            return
        if "loss" in logs and self._task_loss is not None:  # training logs: called on every rank at once
            totals = self.accelerator.reduce(self._task_loss.clone(), reduction="sum").tolist()
            for task, (loss_sum, count) in zip(self.task_ids, totals):
                if count > 0:
                    logs[f"loss_{task}"] = loss_sum / count
            self._task_loss.zero_()
        super().log(logs, start_time)

    # ---- evaluation -----------------------------------------------------------------------------
    @contextmanager
    def evaluating_task(self, task: str):
        """One task's ``compute_metrics`` and ``label_names`` for the ``Trainer`` calls in this block.

        The parent ``evaluate``'s own ``log`` and ``on_evaluate`` are held back while it runs (the
        caller reports every task at once), so callbacks never see a partial set of metrics.
        """
        saved = (self.compute_metrics, self.label_names, self._held_logs)
        self.compute_metrics = self.compute_metrics_per_task.get(task, saved[0])
        if self.args.label_names is None:
            self.label_names = list(get_type(self.model.config.tasks[task]["type"]).label_names)
        self._held_logs = {}
        self.callback_handler.on_evaluate = _hold_back  # instance attribute: shadows the method
        try:
            yield
        finally:
            del self.callback_handler.on_evaluate
            self.compute_metrics, self.label_names, self._held_logs = saved

    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", task: str | None = None
    ) -> dict[str, float]:
        """Evaluate every task's dev set, or ``eval_dataset``: a task name, a task -> dataset dict, one
        dataset with a ``task`` column, or one dataset of ``task`` (or of the only head).

        Returns ``<prefix>_<task>_<metric>`` for every task, ``<prefix>_loss`` (mean over tasks) and
        ``<prefix>_average`` (mean of each task's main metric). Callbacks get ONE ``on_evaluate`` per
        call, after the last task, with all of these metrics (EarlyStoppingCallback and
        ``metric_for_best_model`` read ``eval_average`` or any per-task key from it).
        """
        datasets = self._evaluation_datasets(eval_dataset, task)
        metrics, losses, mains = {}, [], []
        for name, dataset in datasets.items():
            prefix = f"{metric_key_prefix}_{name}"
            with self.evaluating_task(name):
                task_metrics = super().evaluate(self._wrap({name: dataset}), ignore_keys, prefix)
            metrics.update(task_metrics)
            if f"{prefix}_loss" in task_metrics:
                losses.append(task_metrics[f"{prefix}_loss"])
            mains.append(self._main_metric(name, prefix, task_metrics))
        if losses:
            metrics[f"{metric_key_prefix}_loss"] = sum(losses) / len(losses)
        if mains and all(value is not None for value in mains):
            metrics[f"{metric_key_prefix}_average"] = sum(mains) / len(mains)
        self.log(dict(metrics))
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _evaluation_datasets(self, eval_dataset, task: str | None) -> dict[str, object]:
        if isinstance(eval_dataset, str):
            task, eval_dataset = eval_dataset, None
        if eval_dataset is None:
            if task is None:
                datasets = self.eval_datasets
            elif task in self.eval_datasets:
                datasets = {task: self.eval_datasets[task]}
            else:
                raise ConfigError(
                    f"no eval_dataset for task {task!r} (tasks with one: "
                    f"{', '.join(self.eval_datasets) or 'none'}); pass trainer.evaluate(ds, task={task!r})"
                )
        elif task is not None:
            datasets = dict([one_task(eval_dataset, self.task_names, task, "eval_dataset", "")])
        else:
            datasets = as_task_datasets(
                eval_dataset,
                self.task_names,
                "eval_dataset",
                "pass trainer.evaluate(eval_dataset=ds, task='<head>'), a dict "
                "{'<head>': ds, ...}, or add a 'task' column naming each row's head",
            )
        if not datasets:
            raise ConfigError("nothing to evaluate: pass eval_dataset= to MultiTaskTrainer or to evaluate()")
        return datasets

    def _main_metric(self, task: str, prefix: str, task_metrics: dict) -> float | None:
        if task in self.main_metrics:
            key = f"{prefix}_{self.main_metrics[task]}"
            if key not in task_metrics:
                raise ConfigError(
                    f"main metric {self.main_metrics[task]!r} of task {task!r} is not among its "
                    f"metrics {sorted(task_metrics)}"
                )
            return task_metrics[key]
        names = [k for k in task_metrics if k.removeprefix(prefix + "_") not in NON_METRICS]
        return task_metrics[names[0]] if names else None

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix: str = "test", task: str | None = None):
        """``Trainer.predict`` with the head of ``task``, or of the dataset's ``task`` column, or of the only
        head; metrics are named ``<prefix>_<task>_<metric>``."""
        hint = (
            "call trainer.predict(ds, task='<head>') once per task (the heads predict different shapes), "
            "or add a 'task' column naming each row's head"
        )
        task, dataset = one_task(test_dataset, self.task_names, task, "test_dataset", hint)
        with self.evaluating_task(task):
            return super().predict(self._wrap({task: dataset}), ignore_keys, f"{metric_key_prefix}_{task}")

    def predict_task(self, task: str, dataset, ignore_keys=None, metric_key_prefix: str = "test"):
        """``predict(dataset, task=task)`` (the older spelling)."""
        return self.predict(dataset, ignore_keys, metric_key_prefix, task=task)

    # ---- resume ---------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, ignore_keys_for_eval=None):
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            checkpoint = get_last_checkpoint(self.args.output_dir)
        if checkpoint:
            logger.info("resuming from %s", checkpoint)
            if self.task_sampler is not None:
                self._check_sampler_state(Path(checkpoint))
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval
        )

    def _check_sampler_state(self, checkpoint: Path) -> None:
        path = checkpoint / SAMPLER_STATE_NAME
        if not path.is_file():
            logger.warning(
                "%s has no %s: cannot check that the resumed task schedule is the same", checkpoint, SAMPLER_STATE_NAME
            )
            return
        saved = json.loads(path.read_text())["schedule"]
        current = json.loads(json.dumps(self.build_batch_sampler().state()))
        changed = sorted(key for key in set(saved) | set(current) if saved.get(key) != current.get(key))
        if changed:
            details = "; ".join(f"{key}: {saved.get(key)} -> {current.get(key)}" for key in changed)
            raise CheckpointError(
                f"cannot resume {checkpoint} exactly: the task schedule changed ({details}). "
                "Resume with the same tasks, data, sampling, seed, batch size, number of "
                "processes and gradient accumulation, or start a new run in a fresh output_dir"
            )


def _lengths(dataset, length_column: str) -> list[int]:
    """Token counts per example (multiple choice: all choices together) for length-grouped batches."""
    if hasattr(dataset, "column_names") and length_column in dataset.column_names:
        return list(dataset[length_column])
    ids = dataset["input_ids"] if hasattr(dataset, "column_names") else [row["input_ids"] for row in dataset]
    return [sum(map(len, row)) if row and isinstance(row[0], list) else len(row) for row in ids]


__all__ = ["MultiTaskTrainer", "SamplerStateCallback", "SAMPLER_STATE_NAME"]
