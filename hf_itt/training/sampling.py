"""Which task each training step uses, and which examples it reads.

Task samplers (one small class per strategy, in the spirit of jiant's ``task_sampler.py``) turn task
sizes ``n_t`` into probabilities:

uniform       p_t = 1 / K
proportional  p_t ∝ n_t
temperature   p_t ∝ n_t ** (1 / T)                     (T = 1: proportional; T -> inf: uniform)
capped        p_t ∝ min(n_t, cap)                      (jiant's "examples cap")
annealed      p_t ∝ n_t ** alpha(e), alpha(e) = 1 - (1 - alpha_end) * e / (E - 1)
              for epoch e = 0 .. E-1: proportional in the first epoch, close to uniform in the last.
              With alpha_end = 0.2 this is "annealed sampling" of Stickland & Murray 2019
              (BERT and PALs, arXiv 1902.02671, Sec. 4: alpha = 1 - 0.8 (e - 1) / (E - 1), e 1-based).
weights       p_t ∝ w_t (user weights, all > 0)

``LockstepBatchSampler`` turns probabilities into task-homogeneous batches of indices into a
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
import difflib
import inspect
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from hf_itt.errors import ConfigError, DataError

# ---------------------------------------------------------------- task samplers


class TaskSampler:
    """Probabilities over tasks; ``epoch``/``num_epochs`` only matter to time-dependent strategies."""

    name = "base"

    def __init__(self, task_sizes: Mapping[str, int]):
        if not task_sizes:
            raise ConfigError("a joint stage needs at least one task; got none")
        for task, size in task_sizes.items():
            if not isinstance(size, (int, np.integer)) or size <= 0:
                raise DataError(f"task {task!r} has {size} training examples; every task needs at least one "
                                "(check its data files or max_train_examples)")
        self.task_sizes = {task: int(size) for task, size in task_sizes.items()}

    @property
    def task_names(self) -> list[str]:
        return list(self.task_sizes)

    def sizes(self) -> np.ndarray:
        return np.array(list(self.task_sizes.values()), dtype=np.float64)

    def weights(self, epoch: int, num_epochs: int) -> np.ndarray:
        raise NotImplementedError

    def probabilities(self, epoch: int = 0, num_epochs: int = 1) -> dict[str, float]:
        weights = self.weights(epoch, num_epochs)
        return dict(zip(self.task_names, (weights / weights.sum()).tolist()))

    def config(self) -> dict:
        """What defines the strategy (saved with checkpoints to check that a resume is exact)."""
        return {"strategy": self.name, "task_sizes": self.task_sizes}


class UniformSampler(TaskSampler):
    name = "uniform"

    def weights(self, epoch, num_epochs):
        return np.ones(len(self.task_sizes))


class ProportionalSampler(TaskSampler):
    name = "proportional"

    def weights(self, epoch, num_epochs):
        return self.sizes()


class TemperatureSampler(TaskSampler):
    name = "temperature"

    def __init__(self, task_sizes, temperature: float = 2.0):
        super().__init__(task_sizes)
        if not temperature or temperature <= 0:
            raise ConfigError(f"sampling temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def weights(self, epoch, num_epochs):
        return self.sizes() ** (1.0 / self.temperature)

    def config(self):
        return {**super().config(), "temperature": self.temperature}


class CappedSampler(TaskSampler):
    name = "capped"

    def __init__(self, task_sizes, cap: int | None = None):
        super().__init__(task_sizes)
        if cap is None or cap <= 0:
            raise ConfigError(f"strategy 'capped' needs cap: a positive number of examples, got {cap}")
        self.cap = int(cap)

    def weights(self, epoch, num_epochs):
        return np.minimum(self.sizes(), self.cap)

    def config(self):
        return {**super().config(), "cap": self.cap}


class AnnealedSampler(TaskSampler):
    name = "annealed"

    def __init__(self, task_sizes, alpha_end: float = 0.2):
        super().__init__(task_sizes)
        if alpha_end is None or not 0 <= alpha_end <= 1:
            raise ConfigError(f"annealed sampling needs 0 <= alpha_end <= 1, got {alpha_end}")
        self.alpha_end = float(alpha_end)

    def alpha(self, epoch: int, num_epochs: int) -> float:
        if num_epochs <= 1:
            return 1.0
        return 1.0 - (1.0 - self.alpha_end) * min(epoch, num_epochs - 1) / (num_epochs - 1)

    def weights(self, epoch, num_epochs):
        return self.sizes() ** self.alpha(epoch, num_epochs)

    def config(self):
        return {**super().config(), "alpha_end": self.alpha_end}


class WeightedSampler(TaskSampler):
    name = "weights"

    def __init__(self, task_sizes, weights: Mapping[str, float] | None = None):
        super().__init__(task_sizes)
        weights = dict(weights or {})
        if set(weights) != set(task_sizes):
            raise ConfigError(f"strategy 'weights' needs one weight per task: tasks {sorted(task_sizes)}, "
                              f"weights given for {sorted(weights)}")
        bad = {task: w for task, w in weights.items() if w is None or not w > 0}
        if bad:
            raise ConfigError(f"sampling weights must be > 0; got {bad} (drop a task instead of weighting it 0)")
        self.user_weights = {task: float(weights[task]) for task in task_sizes}

    def weights(self, epoch, num_epochs):
        return np.array(list(self.user_weights.values()))

    def config(self):
        return {**super().config(), "weights": self.user_weights}


SAMPLERS = {cls.name: cls for cls in (UniformSampler, ProportionalSampler, TemperatureSampler, CappedSampler,
                                      AnnealedSampler, WeightedSampler)}
OPTIONS = {"temperature": "temperature", "cap": "cap", "alpha_end": "alpha_end", "anneal_alpha_end": "alpha_end",
           "weights": "weights"}


def make_sampler(strategy: str | TaskSampler, task_sizes: Mapping[str, int], **options) -> TaskSampler:
    """Build a sampler by name. Options a strategy does not use (e.g. ``temperature`` for 'uniform') are
    ignored, so a whole sampling config can be passed; unknown option names raise ConfigError."""
    if isinstance(strategy, TaskSampler):
        return strategy
    if strategy not in SAMPLERS:
        hint = difflib.get_close_matches(str(strategy), SAMPLERS, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(f"sampling strategy {strategy!r} is unknown{suggestion} (valid: {', '.join(SAMPLERS)})")
    unknown = set(options) - set(OPTIONS) - {"strategy"}
    if unknown:
        raise ConfigError(f"unknown sampling option(s) {sorted(unknown)}; valid: {sorted(OPTIONS)}")
    cls = SAMPLERS[strategy]
    wanted = inspect.signature(cls).parameters
    kwargs = {OPTIONS[key]: value for key, value in options.items()
              if key in OPTIONS and OPTIONS[key] in wanted and value is not None}
    return cls(task_sizes, **kwargs)


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
        return [{**{k: v[row] for k, v in columns.items()}, "task_ids": self.task_ids[task],
                 "example_index": int(indices[row])} for row in range(len(indices))]


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

    def __init__(self, sampler: TaskSampler, batch_size: int, world_size: int = 1, seed: int = 0,
                 steps_per_epoch: int | None = None, num_epochs: int = 1, accumulation_steps: int = 1,
                 same_task_per_update: bool = True, lengths: Mapping[str, Sequence[int]] | None = None,
                 length_chunk: int = 50):
        if batch_size < 1 or world_size < 1 or accumulation_steps < 1:
            raise ConfigError(f"batch_size, world_size and accumulation_steps must be >= 1; got "
                              f"{batch_size}, {world_size}, {accumulation_steps}")
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
            raise ConfigError(f"steps_per_epoch ({steps_per_epoch}) must be a positive multiple of "
                              f"gradient_accumulation_steps ({self.accumulation_steps})")
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
                order = np.concatenate([part[np.argsort(-lengths[part], kind="stable")]
                                        for part in np.array_split(order, max(1, math.ceil(size / chunk)))])
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
        return {**self.task_sampler.config(), "seed": self.seed, "batch_size": self.batch_size,
                "world_size": self.world_size, "steps_per_epoch": self.steps_per_epoch, "num_epochs": self.num_epochs,
                "accumulation_steps": self.accumulation_steps, "same_task_per_update": self.same_task_per_update,
                "group_by_length": self.lengths is not None}
