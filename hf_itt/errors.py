import difflib

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


def did_you_mean(word, choices, n: int = 3, cutoff: float = 0.5) -> str:
    """`` (did you mean 'x', 'y'?)`` for the choices closest to ``word``, or "" when none is close.

    The one suggestion helper of every "unknown ..." message.
    """

    close = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=n, cutoff=cutoff)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


class StageOrderError(HfIttError):
    """A stage was asked to run before the stage it starts from was finished (grid scheduling)."""


class LockError(HfIttError):
    """Another hf_itt process holds the run folder or the stage this one needs (see docs/troubleshooting.md)."""
