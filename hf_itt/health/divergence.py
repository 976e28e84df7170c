"""Divergence guard: stop a run whose weights or loss went NaN/inf or whose loss spiked, before it
saves a ruined checkpoint.

Why it looks at the *weights*: the Trainer's ``logging_nan_inf_filter`` (on by default) replaces a
NaN/inf micro-batch loss by the running average before it is logged, so the logged ``loss`` never
shows a NaN. A non-finite loss makes the gradients non-finite and (with or without
``max_grad_norm`` clipping: inf * 0 = NaN) the optimizer step writes NaN into the weights. So after
every optimizer step (``weight_check_steps``; always before a checkpoint is saved) the guard reads
the norm of all weights (one fused pass, about a millisecond for XLM-R Large on a GPU) and stops at
the step that ruined them. fp16 loss scaling and DeepSpeed (any ZeRO stage or precision) skip
steps with non-finite gradients instead; there the per-task losses ``loss_<task>`` that
``MultiTaskTrainer`` logs (not filtered) reveal the NaN loss at the next log.

At each log it also checks ``loss`` / ``loss_<task>`` and ``grad_norm`` for NaN/inf (``grad_norm``
not under fp16, where the scaler produces inf gradients on purpose) and each per-task loss (or
``loss``) against ``divergence_factor`` x the running median of its last ``window`` logged values.

Once diverged the guard holds ``should_save`` and ``should_evaluate`` off and
``should_training_stop`` on at every later hook, so no checkpoint is written at or after the
divergence. ``last_good_checkpoint(output_dir, event)`` is the newest ``checkpoint-N`` with
``N <= event.details["last_good_step"]`` (the last step known good: weights checked finite, or the
last log whose losses were normal).
"""

from __future__ import annotations

import math
import re
from collections import deque
from pathlib import Path

import numpy as np
import torch

from hf_itt.config.health import HealthConfig
from hf_itt.health.base import DOCS_HINT, HealthCallback, HealthEvent, any_rank

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


def weights_finite(model) -> torch.Tensor:
    """A bool tensor (on the weights' device: no host sync until read): every parameter is finite.

    Under ZeRO-3 each rank sees its own partition (``ds_tensor``); combine ranks with ``any_rank``.
    """
    tensors = [getattr(p, "ds_tensor", None) if p.numel() == 0 else p for p in model.parameters()]
    tensors = [t.detach() for t in tensors if t is not None and t.numel() > 0]
    if not tensors:
        return torch.tensor(True)
    return torch.isfinite(torch.nn.utils.get_total_norm(tensors, norm_type=2.0))


def loss_series(logs: dict) -> dict[str, float]:
    """The losses judged for spikes: per task when logged (their scales differ), else ``loss``."""
    per_task = {k: v for k, v in logs.items() if k.startswith("loss_") and isinstance(v, (int, float))}
    if per_task:
        return per_task
    return {"loss": logs["loss"]} if isinstance(logs.get("loss"), (int, float)) else {}


class DivergenceGuard(HealthCallback):
    """Stop (or ask for a restart) when training diverges; see the module docstring."""

    def __init__(self, config: HealthConfig | None = None, attempt: int = 0):
        super().__init__(config, attempt)
        self.history: dict[str, deque] = {}
        self.last_finite_step = 0  # weights last checked finite after this optimizer step
        self.last_good_log_step = 0  # last log whose losses were normal
        self.diverged_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        self.last_finite_step = self.last_good_log_step = state.global_step

    # ---- checks ---------------------------------------------------------------------------------
    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.diverged_at is not None:
            return self._hold(control)
        every = self.config.weight_check_steps
        if model is None or not (control.should_save or (every and state.global_step % every == 0)):
            return
        if any_rank(~weights_finite(model), args.device):
            reason = f"the weights hold NaN/inf after the optimizer step (finite after step {self.last_finite_step})"
            self._diverge(args, state, control, "nonfinite_weights", reason, self.last_finite_step, {})
        else:
            self.last_finite_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.diverged_at is not None:
            return self._hold(control)
        found = self._inspect_logs(args, logs or {})
        if found is not None:
            kind, reason, details = found
            self._diverge(args, state, control, kind, reason, self.last_good_log_step, details)
        elif loss_series(logs or {}):
            self.last_good_log_step = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.diverged_at is not None:
            return self._hold(control)

    def on_evaluate(self, args, state, control, **kwargs):
        if self.diverged_at is not None:
            return self._hold(control)

    def _inspect_logs(self, args, logs: dict):
        """(kind, reason, details) of the first problem in one training log, or None."""
        watched = {k: v for k, v in logs.items() if k == "loss" or k.startswith("loss_")}
        if not args.fp16 and "grad_norm" in logs:  # fp16 loss scaling makes inf gradients on purpose
            watched["grad_norm"] = logs["grad_norm"]
        for key, value in watched.items():
            if isinstance(value, (int, float)) and not math.isfinite(value):
                kind = "nonfinite_grad_norm" if key == "grad_norm" else "nonfinite_loss"
                return kind, f"{key} is {value}", {"key": key, "value": str(value)}
        spike = None
        for key, value in loss_series(logs).items():
            history = self.history.setdefault(key, deque(maxlen=self.config.window))
            if spike is None and len(history) >= self.config.min_logs:
                median = float(np.median(history))
                config = self.config
                if value > config.divergence_factor * median and value - median >= config.divergence_min_increase:
                    spike = (
                        "loss_spike",
                        f"{key} {value:.4g} is {value / max(median, 1e-12):.1f}x the median "
                        f"{median:.4g} of its last {len(history)} logged values",
                        {"key": key, "value": value, "median": median, "logs": len(history)},
                    )
                    continue
            history.append(float(value))
        return spike

    # ---- acting ---------------------------------------------------------------------------------
    def _diverge(self, args, state, control, kind: str, reason: str, last_good_step: int, details: dict) -> None:
        self.diverged_at = state.global_step
        self._hold(control)
        details = {"reason": kind, "last_good_step": last_good_step, "learning_rate": args.learning_rate, **details}
        message = (
            f"training diverged at step {state.global_step}: {reason}; {advice(args)}; the last good "
            f"checkpoint is the newest checkpoint-N with N <= {last_good_step}; {DOCS_HINT}"
        )
        event = HealthEvent("divergence", state.global_step, None, details, message)
        self.act(self.config.on_divergence, control, event)

    @staticmethod
    def _hold(control):
        control.should_training_stop = True
        control.should_save = False
        control.should_evaluate = False
        return control


def advice(args) -> str:
    lr = args.learning_rate
    clip = (
        f"lower max_grad_norm (now {args.max_grad_norm:g})"
        if args.max_grad_norm
        else "clip gradients (max_grad_norm: 1.0)"
    )
    return f"lower the learning rate (now {lr:g}, try {lr / 2:g}), use more warmup (warmup_steps) or {clip}"


def last_good_checkpoint(output_dir: str | Path, event: HealthEvent | int, verify: bool = False) -> Path | None:
    """The newest ``checkpoint-N`` in ``output_dir`` with ``N <= last_good_step`` (the event's
    ``details["last_good_step"]``, or an int), or None. ``verify``: also skip checkpoints whose
    safetensors weights hold NaN/inf (reads every weight file once)."""
    limit = event if isinstance(event, int) else int(event.details["last_good_step"])
    found = []
    for path in Path(output_dir).glob("checkpoint-*"):
        match = CHECKPOINT_NAME.match(path.name)
        if match and path.is_dir() and int(match.group(1)) <= limit:
            found.append((int(match.group(1)), path))
    for _, path in sorted(found, reverse=True):
        if not verify or checkpoint_finite(path):
            return path
    return None


def checkpoint_finite(checkpoint: str | Path) -> bool:
    """True when every tensor of the checkpoint's ``*.safetensors`` files is finite (and there is one)."""
    from safetensors import safe_open

    files = sorted(Path(checkpoint).glob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="pt") as weights:
            for name in weights.keys():
                tensor = weights.get_tensor(name)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    return False
    return bool(files)


__all__ = ["DivergenceGuard", "weights_finite", "loss_series", "last_good_checkpoint", "checkpoint_finite", "advice"]
