"""Which task each training step uses, and which examples it reads.

Task samplers turn task sizes into probabilities (``hf_itt.task_samplers``: the strategies and their
formulas). ``LockstepBatchSampler`` turns probabilities into task-homogeneous batches of indices into a
``MultiTaskDataset``. The task of micro-step ``s`` of epoch ``e`` is a pure function of
(seed, e, s), so every rank agrees on it without communicating. accelerate hands a batch sampler's
batches to ranks round-robin (batch b -> rank b % world_size), so the sampler emits ``world_size``
consecutive batches of the same task per micro-step, each holding different examples of that task.

With gradient accumulation G, one optimizer step is G consecutive micro-steps. By default
(``same_task_per_update=True``, as in jiant) all G micro-steps of an update share one task, so an
update is a single-task gradient over B * world_size * G examples. With ``False`` each micro-step
draws its own task and an update averages the losses of up to G tasks.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from hf_itt.errors import ConfigError
from hf_itt.task_samplers import OPTIONS, SAMPLERS, TaskSampler, make_sampler

__all__ = ["OPTIONS", "SAMPLERS", "TaskSampler", "make_sampler", "MultiTaskDataset", "LockstepBatchSampler"]

# ---------------------------------------------------------------- datasets and batches


class MultiTaskDataset(torch.utils.data.Dataset):
    """All tasks' tokenized datasets in one index space (task after task).

    Items carry ``task_ids`` and ``example_index`` (their global index: seeds MLM masks reproducibly).
    """

    def __init__(self, datasets: Mapping[str, Sequence], task_ids: Mapping[str, int]):
        self.datasets = dict(datasets)
        self.task_ids = dict(task_ids)
        sizes = [len(ds) for ds in self.datasets.values()]
        self.offsets = [0, *np.cumsum(sizes).tolist()]

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[str, int]:
        position = bisect.bisect_right(self.offsets, index) - 1
        return list(self.datasets)[position], index - self.offsets[position]

    def __getitem__(self, index: int) -> dict:
        task, local = self.locate(int(index))
        return {**self.datasets[task][local], "task_ids": self.task_ids[task], "example_index": int(index)}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """One columnar read per batch (batches are single-task) instead of one read per example."""
        located = [self.locate(int(i)) for i in indices]
        task = located[0][0]
        if any(t != task for t, _ in located) or not hasattr(self.datasets[task], "column_names"):
            return [self[i] for i in indices]
        columns = self.datasets[task][[local for _, local in located]]
        return [
            {
                **{k: v[row] for k, v in columns.items()},
                "task_ids": self.task_ids[task],
                "example_index": int(indices[row]),
            }
            for row in range(len(indices))
        ]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


class LockstepBatchSampler(torch.utils.data.Sampler):
    """Task-homogeneous batches over a ``MultiTaskDataset``, identical on every rank.

    One epoch is ``steps_per_epoch`` micro-steps per rank (``len(self)`` = steps * world_size global
    batches). Micro-step s: task = schedule(epoch)[s]; the next ``batch_size * world_size`` examples of
    that task's shuffled stream are split into ``world_size`` consecutive batches (one per rank after
    accelerate's round-robin sharding). A task's stream is a fresh permutation seeded by (seed, epoch,
    task), reshuffled when exhausted, so an epoch's batches depend on (seed, epoch) only: Trainer's
    resume (skip the first k batches of epoch e) lands exactly where the interrupted run stopped.
    With ``lengths``, each stream is cut into chunks of ``length_chunk`` steps sorted by length
    (less padding, still random across chunks).
    """

    def __init__(
        self,
        sampler: TaskSampler,
        batch_size: int,
        world_size: int = 1,
        seed: int = 0,
        steps_per_epoch: int | None = None,
        num_epochs: int = 1,
        accumulation_steps: int = 1,
        same_task_per_update: bool = True,
        lengths: Mapping[str, Sequence[int]] | None = None,
        length_chunk: int = 50,
    ):
        if batch_size < 1 or world_size < 1 or accumulation_steps < 1:
            raise ConfigError(
                f"batch_size, world_size and accumulation_steps must be >= 1; got "
                f"{batch_size}, {world_size}, {accumulation_steps}"
            )
        self.task_sampler, self.batch_size, self.world_size = sampler, int(batch_size), int(world_size)
        self.seed, self.num_epochs = int(seed), max(1, int(num_epochs))
        self.accumulation_steps = int(accumulation_steps)
        self.same_task_per_update, self.lengths, self.length_chunk = same_task_per_update, lengths, length_chunk
        self.drop_last = False  # every batch is full: accelerate never pads or loops around
        sizes = list(sampler.task_sizes.values())
        self.offsets = [0, *np.cumsum(sizes).tolist()]
        if steps_per_epoch is None:  # about one pass over all examples per epoch
            updates = math.ceil(sum(sizes) / (self.batch_size * self.world_size * self.accumulation_steps))
            steps_per_epoch = max(1, updates) * self.accumulation_steps
        if steps_per_epoch < 1 or steps_per_epoch % self.accumulation_steps:
            raise ConfigError(
                f"steps_per_epoch ({steps_per_epoch}) must be a positive multiple of "
                f"gradient_accumulation_steps ({self.accumulation_steps})"
            )
        self.steps_per_epoch = int(steps_per_epoch)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch * self.world_size

    def schedule(self, epoch: int | None = None) -> np.ndarray:
        """Task index of every micro-step of ``epoch``: a pure function of (seed, epoch, step)."""
        epoch = self.epoch if epoch is None else epoch
        probs = np.array(list(self.task_sampler.probabilities(epoch, self.num_epochs).values()))
        group = self.accumulation_steps if self.same_task_per_update else 1
        draws = _rng(self.seed, epoch, 0).choice(len(probs), size=self.steps_per_epoch // group, p=probs)
        return np.repeat(draws, group)

    def _stream(self, epoch: int, task: int):
        """Endless shuffled local indices of one task (with length-sorted chunks when lengths are given)."""
        size = self.offsets[task + 1] - self.offsets[task]
        rng = _rng(self.seed, epoch, 1, task)
        lengths = None if self.lengths is None else np.asarray(self.lengths[self.task_sampler.task_names[task]])
        chunk = self.batch_size * self.world_size * self.length_chunk
        while True:
            order = rng.permutation(size)
            if lengths is not None:
                order = np.concatenate(
                    [
                        part[np.argsort(-lengths[part], kind="stable")]
                        for part in np.array_split(order, max(1, math.ceil(size / chunk)))
                    ]
                )
            yield from order.tolist()

    def __iter__(self):
        epoch = self.epoch
        streams: dict[int, object] = {}
        for task in self.schedule(epoch).tolist():
            stream = streams.setdefault(task, self._stream(epoch, task))
            for _ in range(self.world_size):
                yield [self.offsets[task] + next(stream) for _ in range(self.batch_size)]

    def state(self) -> dict:
        """What makes the schedule reproducible; written next to Trainer checkpoints."""
        return {
            **self.task_sampler.config(),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "steps_per_epoch": self.steps_per_epoch,
            "num_epochs": self.num_epochs,
            "accumulation_steps": self.accumulation_steps,
            "same_task_per_update": self.same_task_per_update,
            "group_by_length": self.lengths is not None,
        }
