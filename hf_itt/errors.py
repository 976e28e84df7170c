"""User-facing errors: one clear message that names the problem and the fix.

Every error a user can cause (bad config, bad data, Hub trouble) is an ``HfIttError``;
``run_itt.py`` prints its message without a traceback and exits non-zero.
"""


class HfIttError(Exception):
    """Base class for errors caused by user input or the environment, not by a bug."""


class ConfigError(HfIttError):
    """The experiment YAML or a command-line override is invalid."""


class TaskError(HfIttError):
    """A task spec is unknown or malformed."""


class DataError(HfIttError):
    """Task data is missing, malformed or does not match its spec."""


class HubError(HfIttError):
    """Reaching, pulling from or pushing to the Hugging Face Hub failed."""


class CheckpointError(HfIttError):
    """A checkpoint is missing, corrupt, partial or does not fit the model."""


class TrainingHealthError(HfIttError):
    """A stage collapsed or diverged and the health check stopped it (see docs/health.md)."""


class LockError(HfIttError):
    """Another hf_itt process holds the run folder or the stage this one needs (see docs/troubleshooting.md)."""
