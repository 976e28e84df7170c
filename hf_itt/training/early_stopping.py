"""jiant's early stopping on the Trainer: ``EarlyStoppingCallback`` that survives a resume.

jiant (``no_improvements_for_n_evals``) stops once that many evaluations in a row brought no new best
score; transformers' ``EarlyStoppingCallback`` counts the same way (an improvement must be strict, as
``Trainer`` picks its best checkpoint). The stock callback starts counting afresh when a run resumes
from a checkpoint, so a killed and resumed stage could train past the point where the uninterrupted
run stopped, and export other weights under the same stage hash. This one recounts from the
evaluations in the resumed ``TrainerState.log_history`` instead.
"""

from __future__ import annotations

import numpy as np
from transformers import EarlyStoppingCallback


class ResumableEarlyStopping(EarlyStoppingCallback):
    """``EarlyStoppingCallback(patience)`` whose counter is rebuilt from the log history on resume."""

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        self.early_stopping_patience_counter = evaluations_without_improvement(
            state.log_history, args.metric_for_best_model, args.greater_is_better, self.early_stopping_threshold
        )


def evaluations_without_improvement(
    log_history: list[dict], metric: str, greater_is_better: bool | None, threshold: float | None = 0.0
) -> int:
    """How many logged evaluations since the last new best of ``metric`` (0 before any evaluation)."""
    key = metric if metric.startswith("eval_") else f"eval_{metric}"
    better = np.greater if greater_is_better else np.less
    best, count = None, 0
    for entry in log_history:
        if key not in entry:
            continue
        value = entry[key]
        if best is None or (better(value, best) and abs(value - best) > (threshold or 0.0)):
            count = 0
        else:
            count += 1
        if best is None or better(value, best):  # the Trainer's own best (state.best_metric)
            best = value
    return count


__all__ = ["ResumableEarlyStopping", "evaluations_without_improvement"]
