"""Training health: the collapse alarm and the divergence guard, on synthetic outputs and tiny real runs."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from test_trainer import TOY_TASKS, toy_args, toy_dataset
from transformers import TrainerCallback, TrainerControl, TrainerState

from hf_itt.config.health import HealthConfig
from hf_itt.errors import ConfigError
from hf_itt.health.base import HealthCallback, HealthEvent
from hf_itt.health.callbacks import (
    health_callbacks,
    health_events,
    health_outcome,
    health_report,
)
from hf_itt.health.collapse import CollapseAlarm, capped_rows, find_collapse
from hf_itt.health.divergence import (
    DivergenceGuard,
    checkpoint_finite,
    last_good_checkpoint,
)
from hf_itt.metrics.collapse import class_finding
from hf_itt.task_types.extractive_qa import qa_finding
from hf_itt.training.trainer import MultiTaskTrainer

torch.set_num_threads(1)

NLI_LABELS = ["entailment", "neutral", "contradiction"]
TASKS = {**TOY_TASKS, "nli": {"type": "classification", "labels": NLI_LABELS}}


def labelled_model(checkpoint, tasks):
    from hf_itt.training.modeling import MultiTaskModel

    torch.manual_seed(0)
    return MultiTaskModel.from_encoder(checkpoint, {t: TASKS[t] for t in tasks})


def health_run(checkpoint, tokenizer, out, tasks=("nli", "copa", "pos"), config=None, attempt=0, **overrides):
    """A tiny MultiTaskTrainer run with the health callbacks attached; returns (trainer, callbacks)."""
    values = dict(max_steps=40, eval_strategy="steps", eval_steps=20, learning_rate=5e-3)
    trainer = MultiTaskTrainer(
        labelled_model(checkpoint, tasks),
        toy_args(out, **{**values, **overrides}),
        train_datasets={t: toy_dataset(t, 96) for t in tasks},
        eval_datasets={t: toy_dataset(t, 64, seed=1) for t in tasks},
        sampler="uniform",
        processing_class=tokenizer,
    )
    callbacks = health_callbacks(config or HealthConfig(), trainer, attempt=attempt)
    trainer.train()
    return trainer, callbacks


def health_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hf_itt.health" and r.levelno == logging.WARNING]


# ---- collapse statistics ------------------------------------------------------------------------
def test_config_rejects_unknown_actions_and_bad_shares():
    with pytest.raises(ConfigError, match="health.on_collapse is 'panic'; use one of warn, stop, restart"):
        HealthConfig(on_collapse="panic")
    with pytest.raises(ConfigError, match="health.collapse_threshold"):
        HealthConfig(collapse_threshold=1.5)
    with pytest.raises(ConfigError, match="health.divergence_factor"):
        HealthConfig(divergence_factor=0.5)


def test_class_collapse_is_judged_against_the_gold_majority():
    config = HealthConfig()
    name = NLI_LABELS.__getitem__
    gold = [0] * 34 + [1] * 33 + [2] * 33
    found = class_finding([0] * 97 + [1] * 3, gold, name, "are {}", config)
    assert found is not None and found.what == "are entailment" and found.share == pytest.approx(0.97)
    assert found.gold_what == "gold majority 34%"
    assert class_finding([0] * 90 + [1] * 10, gold, name, "are {}", config) is None  # below the threshold
    imbalanced = [0] * 92 + [1] * 8  # 97% one class is no collapse when 92% of the gold is that class
    assert class_finding([0] * 97 + [1] * 3, imbalanced, name, "are {}", config) is None
    assert class_finding([0] * 10, [1] * 5 + [2] * 5, name, "are {}", config) is None  # too few to judge


def qa_rows(starts, length=12):
    return [
        {
            "input_ids": [0] + list(range(20, 20 + length - 2)) + [2],
            "attention_mask": [1] * length,
            "start_positions": s,
            "end_positions": s + (1 if s else 0),
        }
        for s in starts
    ]


def test_qa_collapse_finds_empty_answers_and_one_start_position(tiny_tokenizer):
    config = HealthConfig()
    rows = qa_rows([1 + i % 8 for i in range(40)])  # gold spans spread over 8 positions
    cls_wins = [np.array([5.0] + [0.0] * 11)] * 40  # CLS (no answer) beats every span
    found = qa_finding(cls_wins, cls_wins, rows, tiny_tokenizer, config)
    assert found.what == "are empty (no answer)" and found.share == 1.0 and found.gold_what == "gold 0% empty"
    same_start = [np.eye(12)[4] * 3] * 40
    found = qa_finding(same_start, same_start, rows, tiny_tokenizer, config)
    assert found.what == "start at token 4" and found.gold_what == "gold majority 12%"
    spread = [np.eye(12)[1 + i % 8] * 3 for i in range(40)]
    assert qa_finding(spread, spread, rows, tiny_tokenizer, config) is None
    # SQuAD v2-like windows without an answer: predicting "empty" for them is right, not a collapse.
    assert qa_finding(cls_wins, cls_wins, qa_rows([0] * 40), tiny_tokenizer, config) is None


def test_qa_eval_features_are_judged_per_example_inside_the_context(tiny_tokenizer):
    # Two windows per example; the answer is in the second window only: the example is not empty.
    rows = []
    for example in range(30):
        for window in range(2):
            offsets = [None] * 3 + [(i, i + 1) for i in range(8)] + [None]  # question, context, </s>
            rows.append(
                {
                    "input_ids": [0, 5, 2] + [30 + example] * 8 + [2],
                    "attention_mask": [1] * 12,
                    "example_id": f"q{example}",
                    "offset_mapping": offsets,
                }
            )
    empty = np.array([5.0] + [0.0] * 11)
    answer = np.zeros(12)
    answer[3 + 3] = 9.0
    start = [empty if i % 2 == 0 else answer for i in range(60)]
    found = qa_finding(start, start, rows, tiny_tokenizer, HealthConfig(collapse_threshold=0.99))
    assert found.what == "start at token 6"  # all 30 examples answered at the same position, none empty
    assert capped_rows(rows, 5) and len(capped_rows(rows, 5)) == 10  # 5 examples, both windows each


def test_find_collapse_runs_the_real_heads(tiny_checkpoint, tiny_tokenizer):
    model = labelled_model(tiny_checkpoint, ("squad", "pos"))
    torch.nn.init.zeros_(model.heads["squad"].qa_outputs.weight)
    torch.nn.init.zeros_(model.heads["squad"].qa_outputs.bias)  # every span scores the same: first token wins
    rows = capped_rows(toy_dataset("squad", 64, seed=1), 256)
    found = find_collapse(model, tiny_tokenizer, "squad", rows, 16, HealthConfig())
    assert found is not None and found.what == "start at token 1" and found.share == 1.0
    torch.nn.init.zeros_(model.heads["pos"].classifier.weight)
    with torch.no_grad():
        model.heads["pos"].classifier.bias.copy_(torch.tensor([0.0, 0.0, 3.0, 0.0]))
    found = find_collapse(
        model, tiny_tokenizer, "pos", capped_rows(toy_dataset("pos", 40, seed=1), 256), 16, HealthConfig()
    )
    assert found.what == "are tagged class 2 (labelled tokens)" and found.share == 1.0
    assert model.training  # the alarm's pass restores the training mode


# ---- collapse alarm in real runs ----------------------------------------------------------------
def test_a_huge_learning_rate_collapses_and_the_alarm_stops_the_run(tiny_checkpoint, tiny_tokenizer, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hf_itt.health")
    trainer, callbacks = health_run(
        tiny_checkpoint, tiny_tokenizer, tmp_path, learning_rate=1.0, config=HealthConfig(on_collapse="stop")
    )
    assert trainer.state.global_step == 20  # stopped at the first evaluation
    assert health_outcome(callbacks) == "stopped"
    events = {e.task: e for e in health_events(callbacks)}
    assert set(events) == {"nli", "copa", "pos"}
    nli = events["nli"]
    assert nli.kind == "collapse" and nli.step == 20 and nli.details["share"] >= 0.95
    label = NLI_LABELS[nli.details["value"]]
    assert nli.message.startswith(
        f"task nli: {nli.details['share']:.0%} of dev predictions are '{label}' "
        f"(gold majority {nli.details['gold_share']:.0%}) at step 20; lower the learning "
        "rate (now 1, try 0.5) or raise the effective batch size (now 8); see docs/health.md"
    )
    assert "pick choice" in events["copa"].message and "tagged" in events["pos"].message
    assert health_warnings(caplog) == [e.message for e in health_events(callbacks)]  # one warning per task


def test_a_sane_learning_rate_on_the_same_data_raises_no_alarm(tiny_checkpoint, tiny_tokenizer, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hf_itt.health")
    trainer, callbacks = health_run(
        tiny_checkpoint, tiny_tokenizer, tmp_path, max_steps=80, eval_steps=40, config=HealthConfig(on_collapse="stop")
    )
    assert trainer.state.global_step == 80 and health_outcome(callbacks) == "ok"
    assert health_events(callbacks) == [] and health_warnings(caplog) == []
    alarm = next(c for c in callbacks if isinstance(c, CollapseAlarm))
    assert alarm.checked_step == 80  # it did look, at the last evaluation


def test_warn_only_logs_once_and_training_goes_on(tiny_checkpoint, tiny_tokenizer, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hf_itt.health")
    trainer, callbacks = health_run(
        tiny_checkpoint,
        tiny_tokenizer,
        tmp_path,
        tasks=("nli",),
        learning_rate=1.0,
        max_steps=30,
        eval_steps=10,
        config=HealthConfig(on_collapse="warn"),
    )
    assert trainer.state.global_step == 30 and health_outcome(callbacks) == "ok"
    events = health_events(callbacks)
    assert [(e.task, e.step) for e in events] == [("nli", 10)]  # collapsed at 10, 20 and 30: warned once
    assert events[0].details["action"] == "warn" and len(health_warnings(caplog)) == 1


def test_restart_reports_the_next_seed_until_restarts_run_out(tiny_checkpoint, tiny_tokenizer, tmp_path):
    config = HealthConfig(on_collapse="restart", max_restarts=2)
    trainer, callbacks = health_run(
        tiny_checkpoint, tiny_tokenizer, tmp_path, tasks=("nli",), learning_rate=1.0, seed=7, config=config
    )
    report = health_report(callbacks)
    assert trainer.state.global_step == 20
    assert (report.outcome, report.seed, report.next_seed, report.attempt) == ("restart", 7, 8, 0)
    assert report.events[0].message.endswith("training stopped; the stage will be rerun with seed 8 (restart 1 of 2)")
    assert report.to_dict()["events"][0]["kind"] == "collapse"
    # The last allowed attempt stops instead of asking for another rerun.
    last = HealthCallback(config, attempt=2)
    control = TrainerControl()
    last.act("restart", control, HealthEvent("collapse", 5, "nli", {}, "task nli: ..."))
    assert control.should_training_stop and last.outcome == "stopped"
    assert last.events[0].message.endswith("no restarts left (max_restarts=2)")
    assert health_report([last]).next_seed is None


# ---- divergence guard ---------------------------------------------------------------------------
class PoisonLoss(TrainerCallback):
    """Makes the encoder output NaN during the forward pass of optimizer step ``step``."""

    def __init__(self, model, step: int):
        self.model, self.step, self.hook = model, step, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step:
            self.hook = self.model.encoder.register_forward_hook(
                lambda module, inputs, output: output.__class__(last_hidden_state=output.last_hidden_state * math.nan)
            )
        elif self.hook is not None:
            self.hook.remove()
            self.hook = None


def poisoned_run(checkpoint, tokenizer, out, guarded: bool, step: int = 4):
    args = toy_args(out, max_steps=8, logging_steps=1, save_strategy="steps", save_steps=1, max_grad_norm=1.0)
    trainer = MultiTaskTrainer(
        labelled_model(checkpoint, ("nli",)),
        args,
        train_datasets={"nli": toy_dataset("nli", 96)},
        processing_class=tokenizer,
    )
    trainer.add_callback(PoisonLoss(trainer.model, step))
    callbacks = health_callbacks(HealthConfig(), trainer) if guarded else []
    trainer.train()
    return trainer, callbacks


def checkpoint_steps(out) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))


def test_a_nan_loss_stops_training_at_that_step_and_no_checkpoint_follows(
    tiny_checkpoint, tiny_tokenizer, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="hf_itt.health")
    trainer, callbacks = poisoned_run(tiny_checkpoint, tiny_tokenizer, tmp_path, guarded=True)
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert all(math.isfinite(loss) for loss in losses)  # logging_nan_inf_filter hid the NaN from the logs
    assert trainer.state.global_step == 4 and health_outcome(callbacks) == "stopped"
    [event] = health_events(callbacks)
    assert (event.kind, event.step, event.details["reason"], event.details["last_good_step"]) == (
        "divergence",
        4,
        "nonfinite_weights",
        3,
    )
    assert event.message.startswith(
        "training diverged at step 4: the weights hold NaN/inf after the optimizer step "
        "(finite after step 3); lower the learning rate (now 0.002, try 0.001), use more "
        "warmup (warmup_steps) or lower max_grad_norm (now 1)"
    )
    assert health_warnings(caplog) == [event.message]
    assert checkpoint_steps(tmp_path) == [1, 2, 3]
    good = last_good_checkpoint(tmp_path, event, verify=True)
    assert good == tmp_path / "checkpoint-3" and checkpoint_finite(good)


def test_without_the_guard_the_poisoned_run_saves_nan_checkpoints(tiny_checkpoint, tiny_tokenizer, tmp_path):
    poisoned_run(tiny_checkpoint, tiny_tokenizer, tmp_path, guarded=False)
    assert checkpoint_steps(tmp_path) == list(range(1, 9))
    assert checkpoint_finite(tmp_path / "checkpoint-3") and not checkpoint_finite(tmp_path / "checkpoint-4")
    assert last_good_checkpoint(tmp_path, 8, verify=True) == tmp_path / "checkpoint-3"


def feed_logs(guard: DivergenceGuard, logs: list[dict], **args_overrides):
    """Call on_log with each dict as the log of steps 10, 20, ...; return the control of the last call."""
    fp16 = args_overrides.pop("fp16", False)
    args = toy_args("unused", **args_overrides)
    args.fp16 = fp16  # set afterwards: TrainingArguments refuses fp16 on a CPU
    state, control = TrainerState(), TrainerControl()
    guard.on_train_begin(args, state, control)
    for index, log in enumerate(logs):
        state.global_step = 10 * (index + 1)
        guard.on_log(args, state, control, logs=log)
    return control


def test_loss_spikes_are_judged_per_task_after_a_warm_up():
    guard = DivergenceGuard(HealthConfig(min_logs=5))
    control = feed_logs(guard, [{"loss": 1.0, "loss_mlm": 6.0, "loss_nli": 1.0}] * 5 + [{"loss": 3.0, "loss_nli": 5.0}])
    [event] = guard.events
    assert control.should_training_stop and not control.should_save and not control.should_evaluate
    assert event.step == 60 and event.details["reason"] == "loss_spike" and event.details["last_good_step"] == 50
    assert "loss_nli 5 is 5.0x the median 1 of its last 5 logged values" in event.message
    # An MLM-heavy log is not a spike of the mixed loss; a spike before the warm-up is not judged.
    quiet = DivergenceGuard(HealthConfig(min_logs=5))
    mixed = [{"loss": 1.0, "loss_nli": 1.0}, {"loss": 4.0, "loss_mlm": 6.0}] * 3
    feed_logs(quiet, mixed + [{"loss": 9.0, "loss_nli": 9.0}])
    assert quiet.events == []


def test_small_noisy_losses_and_fp16_inf_gradients_are_no_divergence():
    guard = DivergenceGuard(HealthConfig())
    feed_logs(guard, [{"loss": 0.02}] * 10 + [{"loss": 0.3}])  # 15x the median, but only +0.28
    assert guard.events == []
    fp16 = DivergenceGuard(HealthConfig())  # loss scaling makes inf gradients on purpose and skips those steps
    feed_logs(fp16, [{"loss": 0.5, "grad_norm": math.inf}], fp16=True)
    assert fp16.events == []


def test_a_nan_task_loss_in_the_logs_is_a_divergence():
    guard = DivergenceGuard(HealthConfig(on_divergence="restart"))
    control = feed_logs(
        guard,
        [{"loss": 1.0, "loss_nli": 1.0, "grad_norm": 2.0}, {"loss": 1.0, "loss_nli": math.nan, "grad_norm": 2.0}],
        seed=3,
    )
    [event] = guard.events
    assert event.details["reason"] == "nonfinite_loss" and "loss_nli is nan" in event.message
    assert control.should_training_stop and health_report([guard]).next_seed == 4
    inf_grad = DivergenceGuard(HealthConfig())
    feed_logs(inf_grad, [{"loss": 1.0, "grad_norm": math.inf}])
    assert inf_grad.events[0].details["reason"] == "nonfinite_grad_norm"


def test_outcome_takes_the_most_severe_and_disabled_config_attaches_nothing(tiny_checkpoint, tiny_tokenizer, tmp_path):
    restart, stopped, fine = (HealthCallback(HealthConfig()) for _ in range(3))
    restart.outcome, stopped.outcome = "restart", "stopped"
    assert health_outcome([fine, restart]) == "restart" and health_outcome([restart, stopped]) == "stopped"
    assert health_outcome([]) == "ok"
    trainer = MultiTaskTrainer(
        labelled_model(tiny_checkpoint, ("nli",)),
        toy_args(tmp_path),
        train_datasets={"nli": toy_dataset("nli", 16)},
        processing_class=tiny_tokenizer,
    )
    assert health_callbacks(HealthConfig(enabled=False), trainer) == []
    [guard] = health_callbacks(HealthConfig(), trainer)  # no dev sets: no alarm
    assert isinstance(guard, DivergenceGuard) and guard in trainer.callback_handler.callbacks
