"""Settings of the training-health checks (kept free of torch: the config loader imports it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hf_itt.errors import ConfigError

COLLAPSE_ACTIONS = ("warn", "stop", "restart")
DIVERGENCE_ACTIONS = ("stop", "restart")


@dataclass
class HealthConfig:
    """Training-health checks of a stage or target run: collapse alarm and divergence guard."""

    enabled: bool = field(default=True, metadata={"help": "Attach the collapse alarm and divergence guard."})
    on_collapse: str = field(
        default="warn",
        metadata={
            "help": "What a collapse does: 'warn' (log and go on), 'stop' (end the stage, marked stopped) or "
            "'restart' (end it and rerun it from its source with seed+1, up to max_restarts)."
        },
    )
    collapse_threshold: float = field(
        default=0.95,
        metadata={
            "help": "Collapse when at least this share of dev predictions is one class (QA: empty, or one "
            "start position, or one answer text)."
        },
    )
    collapse_margin: float = field(
        default=0.1, metadata={"help": "... and that share exceeds the gold majority share by at least this much."}
    )
    collapse_patience: int = field(
        default=1, metadata={"help": "Act only after this many consecutive collapsed evaluations."}
    )
    collapse_max_examples: int = field(
        default=256,
        metadata={"help": "Dev examples per task the alarm predicts on at each evaluation (a fixed random subset)."},
    )
    collapse_min_examples: int = field(
        default=20,
        metadata={"help": "Judge a task only with at least this many predictions (tagging: labelled tokens)."},
    )
    max_restarts: int = field(
        default=2,
        metadata={"help": "Most reruns of one stage with a new seed ('restart' actions); then the stage is stopped."},
    )
    on_divergence: str = field(
        default="stop",
        metadata={"help": "What a divergence does: 'stop' or 'restart' (rerun from the source with seed+1)."},
    )
    divergence_factor: float = field(
        default=3.0,
        metadata={"help": "A logged loss above this multiple of the running median of recent logged losses diverged."},
    )
    divergence_min_increase: float = field(
        default=1.0, metadata={"help": "... and above that median by at least this much (small late losses are noisy)."}
    )
    window: int = field(default=20, metadata={"help": "Logged losses in the running median."})
    min_logs: int = field(default=5, metadata={"help": "Logged losses (per task) before spikes are judged."})
    weight_check_steps: int = field(
        default=1,
        metadata={
            "help": "Check the weights for NaN/inf every N optimizer steps (0: only before a checkpoint is "
            "saved, which is always checked)."
        },
    )

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if self.on_collapse not in COLLAPSE_ACTIONS:
            raise ConfigError(f"health.on_collapse is {self.on_collapse!r}; use one of {', '.join(COLLAPSE_ACTIONS)}")
        if self.on_divergence not in DIVERGENCE_ACTIONS:
            raise ConfigError(
                f"health.on_divergence is {self.on_divergence!r}; use one of {', '.join(DIVERGENCE_ACTIONS)}"
            )
        for name in ("collapse_threshold", "collapse_margin"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"health.{name} is {getattr(self, name)}; use a share between 0 and 1")
        if self.divergence_factor <= 1.0:
            raise ConfigError(f"health.divergence_factor is {self.divergence_factor}; use a number above 1 (e.g. 3)")
        for name in ("collapse_patience", "collapse_max_examples", "window", "min_logs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"health.{name} is {getattr(self, name)}; use an integer >= 1")
        for name in ("max_restarts", "weight_check_steps", "collapse_min_examples"):
            if getattr(self, name) < 0:
                raise ConfigError(f"health.{name} is {getattr(self, name)}; use an integer >= 0")
