"""Task samplers (one small class per strategy, in the spirit of jiant's ``task_sampler.py``) turn task
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

The one registry of strategies: the YAML's ``sampling.strategy``, ``MultiTaskTrainingArguments.task_sampling``
and ``MultiTaskTrainer(sampler=...)`` all accept exactly the names of ``SAMPLERS`` (numpy only, so config
validation imports it without torch).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np

from hf_itt.errors import ConfigError, DataError, did_you_mean


class TaskSampler:
    """Probabilities over tasks; ``epoch``/``num_epochs`` only matter to time-dependent strategies."""

    name = "base"

    def __init__(self, task_sizes: Mapping[str, int]):
        if not task_sizes:
            raise ConfigError("a joint stage needs at least one task; got none")
        for task, size in task_sizes.items():
            if not isinstance(size, (int, np.integer)) or size <= 0:
                raise DataError(
                    f"task {task!r} has {size} training examples; every task needs at least one "
                    "(check its data files or max_train_examples)"
                )
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
            raise ConfigError(
                f"strategy 'weights' needs one weight per task: tasks {sorted(task_sizes)}, "
                f"weights given for {sorted(weights)}"
            )
        bad = {task: w for task, w in weights.items() if w is None or not w > 0}
        if bad:
            raise ConfigError(f"sampling weights must be > 0; got {bad} (drop a task instead of weighting it 0)")
        self.user_weights = {task: float(weights[task]) for task in task_sizes}

    def weights(self, epoch, num_epochs):
        return np.array(list(self.user_weights.values()))

    def config(self):
        return {**super().config(), "weights": self.user_weights}


SAMPLERS = {
    cls.name: cls
    for cls in (
        UniformSampler,
        ProportionalSampler,
        TemperatureSampler,
        CappedSampler,
        AnnealedSampler,
        WeightedSampler,
    )
}
OPTIONS = {
    "temperature": "temperature",
    "cap": "cap",
    "alpha_end": "alpha_end",
    "anneal_alpha_end": "alpha_end",
    "weights": "weights",
}


def make_sampler(strategy: str | TaskSampler, task_sizes: Mapping[str, int], **options) -> TaskSampler:
    """Build a sampler by name. Options a strategy does not use (e.g. ``temperature`` for 'uniform') are
    ignored, so a whole sampling config can be passed; unknown option names raise ConfigError."""
    if isinstance(strategy, TaskSampler):
        return strategy
    if strategy not in SAMPLERS:
        raise ConfigError(
            f"sampling strategy {strategy!r} is unknown{did_you_mean(strategy, SAMPLERS)} "
            f"(valid: {', '.join(SAMPLERS)})"
        )
    unknown = set(options) - set(OPTIONS) - {"strategy"}
    if unknown:
        raise ConfigError(f"unknown sampling option(s) {sorted(unknown)}; valid: {sorted(OPTIONS)}")
    cls = SAMPLERS[strategy]
    wanted = inspect.signature(cls).parameters
    kwargs = {
        OPTIONS[key]: value
        for key, value in options.items()
        if key in OPTIONS and OPTIONS[key] in wanted and value is not None
    }
    return cls(task_sizes, **kwargs)
