"""MultiTaskTrainer on tiny models: joint training, idle heads, parity with Trainer, evaluation, collation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from hf_itt.errors import ConfigError, DataError
from hf_itt.task_types.collators import MultiTaskCollator
from hf_itt.training.modeling import MultiTaskModel
from hf_itt.training.trainer import MultiTaskTrainer

torch.set_num_threads(1)  # 2 shared cores: more threads only spin

TOY_TASKS = {
    "nli": {"type": "classification", "num_labels": 3},
    "copa": {"type": "multiple_choice", "num_choices": 3},
    "squad": {"type": "extractive_qa"},
    "pos": {"type": "tagging", "num_labels": 4},
    "mlm": {"type": "mlm"},
}
CUE, START, END = 7, 11, 12  # tokens the toy tasks can learn from


def _ids(rng: random.Random, length: int) -> list[int]:
    return [0] + [rng.randrange(20, 200) for _ in range(length)] + [2]


def _row(ids: list[int], **labels) -> dict:
    return {"input_ids": ids, "attention_mask": [1] * len(ids), **labels}


def toy_dataset(task: str, size: int, seed: int = 0) -> Dataset:
    """Tokenized rows of a learnable toy version of each task type (features as in hf_itt.tasks.schema)."""
    rng = random.Random(f"{task}-{seed}")
    rows = []
    for _ in range(size):
        ids = _ids(rng, rng.randrange(4, 10))
        if task == "nli":  # label = which of three cue tokens fills every other position
            label = rng.randrange(3)
            ids[1:-1:2] = [CUE + label] * len(ids[1:-1:2])
            rows.append(_row(ids, labels=label))
        elif task == "copa":  # the right choice is made of the cue token
            label = rng.randrange(3)
            choices = [_ids(rng, rng.randrange(3, 7)) for _ in range(3)]
            choices[label][1:-1] = [CUE] * len(choices[label][1:-1])
            rows.append({"input_ids": choices, "attention_mask": [[1] * len(c) for c in choices], "labels": label})
        elif task == "squad":  # the answer span runs from START to END
            start = rng.randrange(1, len(ids) - 3)
            ids[start], ids[start + 2] = START, END
            rows.append(_row(ids, start_positions=start, end_positions=start + 2))
        elif task == "pos":  # tag = token id mod 4 on each word's first piece, -100 elsewhere
            tags = [t % 4 if i % 2 == 0 else -100 for i, t in enumerate(ids[1:-1])]
            rows.append(_row(ids, labels=[-100, *tags, -100]))
        else:
            rows.append(_row(ids, special_tokens_mask=[1] + [0] * (len(ids) - 2) + [1]))
    return Dataset.from_list(rows)


def toy_model(checkpoint, tasks=("nli", "copa", "squad")) -> MultiTaskModel:
    torch.manual_seed(0)
    return MultiTaskModel.from_encoder(checkpoint, {t: TOY_TASKS[t] for t in tasks})


def toy_args(out, **overrides) -> TrainingArguments:
    values = dict(
        per_device_train_batch_size=8,
        per_device_eval_batch_size=32,
        learning_rate=2e-3,
        num_train_epochs=1,
        logging_steps=5,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        warmup_steps=0,
    )
    return TrainingArguments(str(out), **{**values, **overrides})


def accuracy(prediction) -> dict:
    return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}


def test_joint_run_lowers_the_loss_of_every_task(tiny_checkpoint, tiny_tokenizer, tmp_path):
    tasks = ("nli", "copa", "squad", "pos")
    train = {t: toy_dataset(t, 96) for t in tasks}
    trainer = MultiTaskTrainer(
        toy_model(tiny_checkpoint, tasks),
        toy_args(tmp_path, max_steps=160, learning_rate=5e-3),
        train_datasets=train,
        eval_datasets={t: toy_dataset(t, 48, seed=1) for t in tasks},
        sampler="uniform",
        processing_class=tiny_tokenizer,
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    for task in tasks:
        assert after[f"eval_{task}_loss"] < 0.7 * before[f"eval_{task}_loss"], task
    logged = {key for log in trainer.state.log_history for key in log}
    assert {f"loss_{t}" for t in tasks} <= logged  # per-task training loss under its own key


class RecordHeads(TrainerCallback):
    """Snapshot every head after each optimizer step, and which tasks the step used."""

    def __init__(self, trainer):
        self.trainer, self.snapshots, self.used = trainer, [], []
        self._seen: set[int] = set()
        original = trainer.compute_loss

        def compute_loss(model, inputs, *args, **kwargs):
            self._seen.add(int(inputs["task_ids"][0]))
            return original(model, inputs, *args, **kwargs)

        trainer.compute_loss = compute_loss

    def snapshot(self):
        return {n: [p.detach().clone() for p in h.parameters()] for n, h in self.trainer.model.heads.items()}

    def on_train_begin(self, args, state, control, **kwargs):
        self.snapshots.append(self.snapshot())

    def on_step_end(self, args, state, control, **kwargs):
        self.snapshots.append(self.snapshot())
        self.used.append({self.trainer.model.task_names[i] for i in self._seen})
        self._seen = set()


def test_idle_heads_are_not_moved_by_weight_decay_or_momentum(tiny_checkpoint, tiny_tokenizer, tmp_path):
    tasks = ("nli", "copa", "squad")
    trainer = MultiTaskTrainer(
        toy_model(tiny_checkpoint, tasks),
        toy_args(tmp_path, max_steps=12, weight_decay=0.1, per_device_train_batch_size=4),
        train_datasets={t: toy_dataset(t, 40) for t in tasks},
        sampler="uniform",
        processing_class=tiny_tokenizer,
    )
    recorder = RecordHeads(trainer)
    trainer.add_callback(recorder)
    trainer.train()
    idle_after_use = 0
    for step, used in enumerate(recorder.used):
        before, after = recorder.snapshots[step], recorder.snapshots[step + 1]
        for task in tasks:
            moved = any(not torch.equal(a, b) for a, b in zip(before[task], after[task]))
            assert moved == (task in used), (step, task, used)
            idle_after_use += task not in used and any(task in u for u in recorder.used[:step])
    assert idle_after_use > 0  # some head sat idle after AdamW had state (momentum) for it


def test_single_task_gives_the_same_loss_curve_as_plain_trainer(tiny_checkpoint, tiny_tokenizer, tmp_path):
    data = toy_dataset("nli", 64)
    args = toy_args(tmp_path / "multi", logging_steps=1, num_train_epochs=1)
    multi = MultiTaskTrainer(
        toy_model(tiny_checkpoint, ("nli",)), args, train_datasets={"nli": data}, processing_class=tiny_tokenizer
    )
    # Plain Trainer reads the same examples in the same order: the lockstep order, sequentially.
    order = [i for batch in multi.build_batch_sampler() for i in batch]
    assert sorted(order) == list(range(64))
    plain_args = toy_args(tmp_path / "plain", logging_steps=1, num_train_epochs=1, train_sampling_strategy="sequential")
    plain = Trainer(
        toy_model(tiny_checkpoint, ("nli",)),
        plain_args,
        train_dataset=data.select(order),
        data_collator=lambda rows: MultiTaskCollator(tiny_tokenizer, ["classification"])(
            [{**row, "task_ids": 0} for row in rows]
        ),
        processing_class=tiny_tokenizer,
    )
    set_seed(0)  # same dropout masks: Trainer seeds only in __init__
    multi.train()
    set_seed(0)
    plain.train()
    multi_losses = [log["loss"] for log in multi.state.log_history if "loss" in log]
    plain_losses = [log["loss"] for log in plain.state.log_history if "loss" in log]
    assert len(multi_losses) == 8 and multi_losses == pytest.approx(plain_losses, rel=1e-6, abs=1e-7)
    task_losses = [log["loss_nli"] for log in multi.state.log_history if "loss" in log]
    assert task_losses == pytest.approx(multi_losses, rel=1e-6)


def test_evaluate_reports_per_task_metrics_and_an_average_for_best_model(tiny_checkpoint, tiny_tokenizer, tmp_path):
    tasks = ("nli", "copa", "squad")
    args = toy_args(
        tmp_path,
        max_steps=6,
        eval_strategy="steps",
        eval_steps=3,
        save_strategy="steps",
        save_steps=3,
        load_best_model_at_end=True,
        metric_for_best_model="average",
    )
    trainer = MultiTaskTrainer(
        toy_model(tiny_checkpoint, tasks),
        args,
        train_datasets={t: toy_dataset(t, 32) for t in tasks},
        eval_datasets={"nli": toy_dataset("nli", 16, 1), "copa": toy_dataset("copa", 16, 1)},
        compute_metrics_per_task={"nli": accuracy, "copa": accuracy},
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    metrics = trainer.evaluate()
    assert {"eval_nli_accuracy", "eval_copa_accuracy", "eval_nli_loss", "eval_copa_loss"} <= set(metrics)
    assert metrics["eval_average"] == pytest.approx((metrics["eval_nli_accuracy"] + metrics["eval_copa_accuracy"]) / 2)
    assert metrics["eval_loss"] == pytest.approx((metrics["eval_nli_loss"] + metrics["eval_copa_loss"]) / 2)
    assert trainer.state.best_model_checkpoint is not None and trainer.state.best_metric is not None
    only = trainer.evaluate("copa")
    assert "eval_copa_accuracy" in only and "eval_nli_loss" not in only
    squad = trainer.predict_task("squad", toy_dataset("squad", 5, 2))
    start_logits, end_logits = squad.predictions
    assert start_logits.shape[0] == 5 and "test_squad_loss" in squad.metrics


def test_bad_inputs_raise_clear_errors(tiny_checkpoint, tiny_tokenizer, tmp_path):
    model = toy_model(tiny_checkpoint, ("nli",))
    with pytest.raises(ConfigError, match=r"datasets for \['mnli'\] but the model has heads only for \['nli'\]"):
        MultiTaskTrainer(
            model, toy_args(tmp_path), train_datasets={"mnli": toy_dataset("nli", 4)}, processing_class=tiny_tokenizer
        )
    with pytest.raises(DataError, match="'nli' is empty"):
        MultiTaskTrainer(
            model,
            toy_args(tmp_path),
            train_datasets={"nli": toy_dataset("nli", 4).select([])},
            processing_class=tiny_tokenizer,
        )
    with pytest.raises(ConfigError, match="needs a compute_metrics"):
        MultiTaskTrainer(
            model,
            toy_args(tmp_path, metric_for_best_model="average"),
            train_datasets={"nli": toy_dataset("nli", 4)},
            eval_datasets={"nli": toy_dataset("nli", 4)},
            processing_class=tiny_tokenizer,
        )
    with pytest.raises(ConfigError, match="processing_class=tokenizer"):
        MultiTaskTrainer(model, toy_args(tmp_path), train_datasets={"nli": toy_dataset("nli", 4)})


def test_collator_pads_each_task_type(tiny_tokenizer):
    collate = MultiTaskCollator(tiny_tokenizer, [TOY_TASKS[t]["type"] for t in TOY_TASKS], seed=0)
    rows = lambda task, n: [{**r, "task_ids": list(TOY_TASKS).index(task)} for r in toy_dataset(task, n)]  # noqa: E731

    copa = collate(rows("copa", 2))
    assert copa["input_ids"].dim() == 3 and copa["input_ids"].shape[:2] == (2, 3)
    assert copa["labels"].shape == (2,) and copa["task_ids"].tolist() == [1, 1]

    pos = collate(rows("pos", 4))
    padded = pos["attention_mask"] == 0
    assert padded.any() and (pos["labels"][padded] == -100).all()

    squad = collate([{**r, "example_id": "x", "offset_mapping": None} for r in rows("squad", 2)])
    assert set(squad) == {"input_ids", "attention_mask", "start_positions", "end_positions", "task_ids"}

    mlm = [{**r, "example_index": 10 + i} for i, r in enumerate(rows("mlm", 16))]
    first, again = collate(mlm), collate(mlm)
    assert torch.equal(first["input_ids"], again["input_ids"]) and (first["labels"] != -100).any()
    assert set(first) == {"input_ids", "attention_mask", "labels", "task_ids"}
    with pytest.raises(ValueError, match="one task"):
        collate(rows("nli", 1) + rows("pos", 1))


LOCKSTEP_SCRIPT = """
import argparse, json, sys
from pathlib import Path
import torch
parser = argparse.ArgumentParser()
for flag in ("--local_rank", "--model_dir", "--ds_config", "--output_dir", "--tests_dir"):
    parser.add_argument(flag)
a = parser.parse_args()
sys.path.insert(0, a.tests_dir)
from test_trainer import TOY_TASKS, toy_args, toy_dataset
from transformers import AutoTokenizer
from hf_itt.config.deepspeed import prepare_deepspeed_launch
from hf_itt.training.modeling import MultiTaskModel
from hf_itt.training.trainer import MultiTaskTrainer

class Checked(MultiTaskTrainer):
    seen = []  # per micro-step: [task id, sum of input ids] of every rank

    def compute_loss(self, model, inputs, *rest, **kwargs):
        mine = torch.stack([inputs["task_ids"][0], inputs["input_ids"].sum()])
        gathered = [torch.zeros_like(mine) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(gathered, mine)
        self.seen.append([g.tolist() for g in gathered])
        return super().compute_loss(model, inputs, *rest, **kwargs)

tasks = ("nli", "copa", "squad")
args = toy_args(a.output_dir, max_steps=6, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                deepspeed=a.ds_config, logging_steps=2, **prepare_deepspeed_launch())
torch.manual_seed(0)
model = MultiTaskModel.from_encoder(a.model_dir, {t: TOY_TASKS[t] for t in tasks})
trainer = Checked(model, args, train_datasets={t: toy_dataset(t, 20) for t in tasks}, sampler="uniform",
                  same_task_per_update=False, processing_class=AutoTokenizer.from_pretrained(a.model_dir))
trainer.train()
if args.process_index == 0:
    Path(a.output_dir, "seen.json").write_text(json.dumps({"seen": trainer.seen, "logs": trainer.state.log_history}))
"""


@pytest.mark.deepspeed
@pytest.mark.slow
def test_zero2_ranks_train_the_same_task_at_every_micro_step(tiny_checkpoint, tmp_path):
    """Real launcher, 2 CPU ranks, ZeRO-2: ranks all-gather their task id at every micro-step."""
    pytest.importorskip("deepspeed", reason="the [deepspeed] extra is not installed")
    import json

    from tests.deepspeed_launch import REPO_ROOT, launch

    script = tmp_path / "lockstep.py"
    script.write_text(LOCKSTEP_SCRIPT)
    launch(
        script,
        "--model_dir",
        str(tiny_checkpoint),
        "--ds_config",
        str(REPO_ROOT / "ds_configs" / "zero2.json"),
        "--output_dir",
        str(tmp_path / "out"),
        "--tests_dir",
        str(REPO_ROOT / "tests"),
    )
    record = json.loads((tmp_path / "out" / "seen.json").read_text())
    seen = record["seen"]
    assert len(seen) == 6 * 2  # 6 updates x 2 micro-steps, every one checked on both ranks
    for rank0, rank1 in seen:
        assert rank0[0] == rank1[0]  # same task (same head) on both ranks
    assert any(rank0[1] != rank1[1] for rank0, rank1 in seen)  # but different examples
    assert len({rank0[0] for rank0, _ in seen}) > 1
    assert any(key.startswith("loss_") for log in record["logs"] for key in log)
