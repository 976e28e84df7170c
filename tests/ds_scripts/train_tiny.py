"""A plain HF ``Trainer`` run under the real ``deepspeed`` launcher (used by tests/test_deepspeed_smoke.py).

    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 tests/ds_scripts/train_tiny.py \
        --model_dir TINY --ds_config ds_configs/zero2.json --output_dir OUT --steps 3

Trains a sequence classifier on random token ids, saves the final model with ``save_model`` (which
gathers ZeRO-3 shards on rank 0) and writes ``probe.json``: logits of a fixed probe batch computed by
the live engine, so the test can check that the saved files reproduce the trained model.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)  # inserted by the deepspeed launcher
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--ds_config", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--steps", type=int, default=3)
    return parser.parse_args()


def random_dataset(vocab_size: int, rows: int = 32, length: int = 12, seed: int = 0):
    from datasets import Dataset

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (rows, length), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2  # <s> ... </s>
    labels = torch.randint(0, 3, (rows,), generator=generator)
    return Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": [[1] * length] * rows, "labels": labels.tolist()}
    )


def probe_logits(trainer, dataset) -> list:
    """Forward a fixed batch through the live (possibly sharded) model on every rank."""
    batch = {key: torch.tensor(dataset[:4][key]) for key in ("input_ids", "attention_mask")}
    model = trainer.model_wrapped
    model.eval()
    with torch.no_grad():
        return model(**batch).logits.float().tolist()


def main():
    args = parse_args()
    from transformers import (
        AutoModelForSequenceClassification,
        Trainer,
        TrainingArguments,
    )

    from hf_itt.config.deepspeed import (
        prepare_deepspeed_launch,
        resolve_deepspeed_config,
    )

    hyper = dict(
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        max_steps=args.steps,
        warmup_steps=1,
        save_steps=args.steps,
        **prepare_deepspeed_launch(),
    )
    ds_config = resolve_deepspeed_config(args.ds_config, hyper)
    # TrainingArguments first: with ZeRO-3 it makes from_pretrained partition the weights at load time.
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        deepspeed=ds_config,
        save_strategy="steps",
        logging_steps=1,
        report_to=[],
        seed=0,
        **hyper,
    )
    model = AutoModelForSequenceClassification.from_pretrained(args.model_dir, num_labels=3)
    dataset = random_dataset(model.config.vocab_size)
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset)
    result = trainer.train()
    trainer.save_model(args.output_dir)
    logits = probe_logits(trainer, dataset)
    if trainer.is_world_process_zero():
        summary = {
            "world_size": training_args.world_size,
            "train_loss": result.training_loss,
            "global_step": result.global_step,
            "probe_logits": logits,
            "zero_stage": ds_config["zero_optimization"]["stage"],
        }
        Path(args.output_dir, "probe.json").write_text(json.dumps(summary))
    print(f"rank {os.environ.get('RANK')} done")


if __name__ == "__main__":
    main()
