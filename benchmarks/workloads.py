"""Synthetic tokenized training data shaped like the reference study's intermediate tasks, and the
Trainer plumbing the training benchmarks share (step clock, token counting, arguments).

Throughput runs need the right *shapes*, not meaningful text: rows are random token ids over the
model's whole vocabulary (250,002 ids at the default size, so embedding gradients touch real rows),
with the head type and number of choices / labels of each task (features as in hf_itt.tasks.schema).
"""

from __future__ import annotations

import time

import numpy as np

# The 9 intermediate tasks of Phang et al. 2020 (hf_itt/tasks/specs/intermediate.yaml): head type and size.
ITT_TASKS = {
    "mnli": {"type": "classification", "num_labels": 3},
    "anli_plus": {"type": "classification", "num_labels": 3},
    "qqp": {"type": "classification", "num_labels": 2},
    "squad_v1": {"type": "extractive_qa"},
    "squad_v2": {"type": "extractive_qa"},
    "hellaswag": {"type": "multiple_choice", "num_choices": 4},
    "cosmosqa": {"type": "multiple_choice", "num_choices": 4},
    "commonsenseqa": {"type": "multiple_choice", "num_choices": 5},
    "ccg": {"type": "tagging", "num_labels": 1363},  # jiant's CCGbank supertag set
}
TASK_SETS = {1: ["mnli"], 3: ["mnli", "squad_v1", "hellaswag"], 9: list(ITT_TASKS)}


def task_specs(names) -> dict:
    return {name: ITT_TASKS[name] for name in names}


def random_task_dataset(spec: dict, rows: int, length: int, vocab_size: int, seed: int = 0):
    """``rows`` tokenized examples of exactly ``length`` tokens (per choice) for one task type."""
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    kind = spec["type"]
    shape = (rows, spec["num_choices"], length) if kind == "multiple_choice" else (rows, length)
    ids = rng.integers(5, vocab_size, size=shape)
    ids[..., 0], ids[..., -1] = 0, 2  # <s> ... </s>
    columns = {"input_ids": ids.tolist(), "attention_mask": np.ones(shape, dtype=np.int8).tolist()}
    if kind == "classification":
        columns["labels"] = rng.integers(0, spec["num_labels"], rows).tolist()
    elif kind == "multiple_choice":
        columns["labels"] = rng.integers(0, spec["num_choices"], rows).tolist()
    elif kind == "extractive_qa":
        starts = rng.integers(1, length - 4, rows)
        columns["start_positions"], columns["end_positions"] = starts.tolist(), (starts + 3).tolist()
    elif kind == "tagging":
        tags = rng.integers(0, spec["num_labels"], size=(rows, length))
        tags[:, 0] = tags[:, -1] = -100
        columns["labels"] = tags.tolist()
    return Dataset.from_dict(columns)


class TokenCounter:
    """Wraps a collator; records each batch's (non-pad tokens, padded tokens, task id) in collation order."""

    def __init__(self, collator):
        self.collator = collator
        self.batches: list[tuple[int, int, int | None]] = []

    def __call__(self, features):
        batch = self.collator(features)
        mask = batch["attention_mask"]
        task = int(batch["task_ids"][0]) if "task_ids" in batch else None
        self.batches.append((int(mask.sum()), int(mask.numel()), task))
        return batch


def step_clock():
    """A TrainerCallback recording the wall time of every optimizer step (step end to step end)."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.ends = [time.perf_counter()]

        def on_step_end(self, args, state, control, **kwargs):
            if args.device.type == "cuda":
                import torch

                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

        def step_times(self) -> list[float]:
            return [b - a for a, b in zip(self.ends, self.ends[1:])]

    return StepClock()


def training_arguments(out_dir: str, args, batch_size: int, steps: int, **overrides):
    """TrainingArguments of a timing run: no logging, saving, evaluation or progress bars."""
    from transformers import TrainingArguments

    cuda = str(args.device).startswith("cuda")
    values = dict(
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=1e-5,
        warmup_steps=0,
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=not cuda,
        bf16=cuda,
        dataloader_num_workers=0,
    )
    return TrainingArguments(out_dir, **{**values, **overrides})


def quiet(trainer):
    """Drop the callback that prints the final metrics dict to stdout (the tables are the output)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def step_summary(clock, counter: TokenCounter, warmup: int = 1) -> dict:
    """Step times after ``warmup`` steps, with the real tokens each of those steps consumed.

    Step i consumed the i-th collated batch (accelerate may collate one batch ahead, which changes
    when a batch is built, not which step uses it).
    """
    times = clock.step_times()[warmup:]
    batches = counter.batches[warmup : warmup + len(times)]
    tokens = [real for real, _, _ in batches]
    return {
        "times": times,
        "tokens": tokens,
        "tasks": [task for _, _, task in batches],
        "tokens_per_s": sum(tokens) / sum(times),
    }
