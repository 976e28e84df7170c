"""Exact resume: a run resumed from a Trainer checkpoint ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch
from test_trainer import TOY_TASKS, toy_args, toy_dataset, toy_model

from hf_itt.errors import CheckpointError
from hf_itt.training.trainer import SAMPLER_STATE_NAME, MultiTaskTrainer

torch.set_num_threads(1)  # 2 shared cores: more threads only spin

TASKS = ("nli", "squad", "mlm")  # mlm: masks must be the same after resume too


def make_trainer(checkpoint, tokenizer, out, sampler="temperature", **overrides):
    # 4 updates per epoch, 10 updates: the checkpoints at 3 and 6 sit inside epochs 0 and 1,
    # accumulation 2 makes every update two micro-steps; dropout stays on.
    args = toy_args(
        out,
        max_steps=10,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        save_strategy="steps",
        save_steps=3,
        logging_steps=2,
        weight_decay=0.01,
        **overrides,
    )
    return MultiTaskTrainer(
        toy_model(checkpoint, TASKS),
        args,
        train_datasets={t: toy_dataset(t, 24 if t != "squad" else 12) for t in TASKS},
        sampler=sampler,
        sampler_kwargs={"temperature": 2.0},
        steps_per_epoch=4,
        processing_class=tokenizer,
    )


@pytest.fixture(scope="module")
def uninterrupted(tiny_checkpoint, tiny_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    trainer = make_trainer(tiny_checkpoint, tiny_tokenizer, out)
    trainer.train()
    return out, {k: v.clone() for k, v in trainer.model.state_dict().items()}, trainer.state.log_history


@pytest.mark.parametrize("step", [3, 6])
def test_resumed_run_ends_with_identical_weights(uninterrupted, tiny_checkpoint, tiny_tokenizer, tmp_path, step):
    out, expected, history = uninterrupted
    checkpoint = out / f"checkpoint-{step}"
    state = json.loads((checkpoint / SAMPLER_STATE_NAME).read_text())
    assert state["global_step"] == step and state["schedule"]["strategy"] == "temperature"
    resumed = make_trainer(tiny_checkpoint, tiny_tokenizer, tmp_path)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    weights = resumed.model.state_dict()
    for name, tensor in expected.items():
        assert torch.equal(weights[name], tensor), name
    # logs whose interval (logging_steps=2) starts after the resume point: same per-task losses
    after = lambda logs: [log for log in logs if "loss" in log and log["step"] - 2 >= step]  # noqa: E731
    assert after(resumed.state.log_history) == after(history) != []


def test_resume_with_a_different_schedule_is_refused(uninterrupted, tiny_checkpoint, tiny_tokenizer, tmp_path):
    out, _, _ = uninterrupted
    changed = make_trainer(tiny_checkpoint, tiny_tokenizer, tmp_path, sampler="uniform")
    with pytest.raises(CheckpointError, match="task schedule changed .*strategy: temperature -> uniform"):
        changed.train(resume_from_checkpoint=str(out / "checkpoint-3"))
    assert set(TASKS) <= set(TOY_TASKS)
