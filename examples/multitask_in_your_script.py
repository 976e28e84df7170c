"""Joint multi-task training with hf_itt inside your own script.

You bring tokenized ``datasets.Dataset``s, one per task (columns as in ``hf_itt.tasks.schema``:
classification -> input_ids, attention_mask, labels; multiple choice -> one row of input_ids per
choice + labels; tagging -> labels per token, -100 where ignored; ...). hf_itt adds one shared
encoder with a head per task, a sampler that picks one task per step (the same on every GPU), per-task
losses in the logs and per-task dev metrics.

Offline demo on a tiny model built on the spot (a few seconds on a CPU):

    python examples/multitask_in_your_script.py --output_dir /tmp/mt-demo

With a real encoder (needs the Hub or a local copy):

    python examples/multitask_in_your_script.py --model xlm-roberta-base --max_steps 2000 --output_dir runs/demo

On several processes, as any Trainer script (each rank trains the same task at every step):

    accelerate launch --num_processes 2 examples/multitask_in_your_script.py --output_dir /tmp/mt-demo
    torchrun --nproc_per_node 2 examples/multitask_in_your_script.py --output_dir /tmp/mt-demo

docs/your_script.md walks through the same calls.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from datasets import Dataset
from transformers import AutoModel, AutoTokenizer

from hf_itt import MultiTaskModel, MultiTaskTrainer, MultiTaskTrainingArguments

LABELS = ["negative", "positive"]
POS_TAGS = ["DET", "NOUN", "VERB", "ADJ"]
FACTS = [
    ("Which animal barks?", "a dog"),
    ("Which animal meows?", "a cat"),
    ("What do fish do?", "they swim"),
    ("What do birds do?", "they fly"),
    ("What do cows give?", "milk"),
]


# ---- toy raw data (replace with load_dataset(...) in a real script) ----------------------------
def sentiment_rows(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        verb = rng.choice([["hated", "disliked"], ["loved", "enjoyed"]][label])
        rows.append(
            {
                "text_a": f"I {verb} the {rng.choice(['movie', 'book', 'meal'])}.",
                "text_b": "It was " + rng.choice(["long", "new", "short"]) + ".",
                "label": label,
            }
        )
    return rows


def choice_rows(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(n):
        question, answer = rng.choice(FACTS)
        choices = [answer] + rng.sample([a for _, a in FACTS if a != answer], 2)
        rng.shuffle(choices)
        rows.append({"prompt": question, "choices": choices, "label": choices.index(answer)})
    return rows


def tagging_rows(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(n):
        words = [
            rng.choice(["the", "a"]),
            rng.choice(["big", "old"]),
            rng.choice(["dog", "cat", "bird"]),
            rng.choice(["runs", "sleeps", "sings"]),
        ]
        rows.append({"tokens": words, "tags": [0, 3, 1, 2]})
    return rows


# ---- tokenization, as in the transformers example scripts ------------------------------------------
def tokenize_pairs(tokenizer, rows):
    enc = tokenizer([r["text_a"] for r in rows], [r["text_b"] for r in rows], truncation=True, max_length=64)
    return Dataset.from_dict({**enc, "labels": [r["label"] for r in rows]})


def tokenize_choices(tokenizer, rows):
    features = {"input_ids": [], "attention_mask": [], "labels": []}
    for row in rows:
        enc = tokenizer([row["prompt"]] * len(row["choices"]), row["choices"], truncation=True, max_length=64)
        features["input_ids"].append(enc["input_ids"])
        features["attention_mask"].append(enc["attention_mask"])
        features["labels"].append(row["label"])
    return Dataset.from_dict(features)


def tokenize_tags(tokenizer, rows):
    enc = tokenizer([r["tokens"] for r in rows], is_split_into_words=True, truncation=True, max_length=64)
    labels = []
    for i, row in enumerate(rows):
        word_ids, previous, tags = enc.word_ids(i), None, []
        for word in word_ids:  # label the first piece of each word only
            tags.append(-100 if word is None or word == previous else row["tags"][word])
            previous = word
        labels.append(tags)
    return Dataset.from_dict({**enc, "labels": labels})


def accuracy(prediction):
    predictions, labels = np.argmax(prediction.predictions, -1), prediction.label_ids
    keep = labels != -100  # tagging: score labelled positions only
    return {"accuracy": float((predictions[keep] == labels[keep]).mean())}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="encoder id or folder (default: build a tiny random one offline)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--sampler", default="temperature", help="uniform|proportional|temperature|capped|annealed")
    parser.add_argument("--max_steps", type=int, default=60)
    parser.add_argument("--train_size", type=int, default=200, help="training rows per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--use_cpu", action="store_true", help="train on the CPU even when a GPU is there")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out, rng = Path(args.output_dir), random.Random(args.seed)
    raw = {"sentiment": sentiment_rows, "facts": choice_rows, "pos": tagging_rows}
    train_raw = {task: make(args.train_size, rng) for task, make in raw.items()}
    dev_raw = {task: make(max(8, args.train_size // 4), rng) for task, make in raw.items()}
    training_args = MultiTaskTrainingArguments(  # before the model: DeepSpeed ZeRO-3 needs it first
        output_dir=str(out),
        task_sampling=args.sampler,
        sampling_temperature=2.0,
        sampling_cap=100,
        max_steps=args.max_steps,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        warmup_steps=0.1,
        eval_strategy="steps",
        eval_steps=max(1, args.max_steps // 2),
        save_strategy="steps",
        save_steps=max(1, args.max_steps // 2),
        load_best_model_at_end=True,
        metric_for_best_model="average",
        logging_steps=10,
        report_to=[],
        seed=args.seed,
        use_cpu=args.use_cpu,
    )
    model_path = args.model
    if model_path is None:  # offline stand-in for xlm-roberta: tokenizer + random 2-layer encoder
        from hf_itt.demo.tiny import build_checkpoint

        texts = [
            " ".join(
                [
                    r.get("text_a", ""),
                    r.get("text_b", ""),
                    r.get("prompt", ""),
                    *r.get("choices", []),
                    *r.get("tokens", []),
                ]
            )
            for rows in train_raw.values()
            for r in rows
        ]
        with training_args.main_process_first(desc="tiny encoder"):  # one process writes it, the others read
            model_path = build_checkpoint(out / "tiny-encoder", texts, vocab_size=120)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenize = {"sentiment": tokenize_pairs, "facts": tokenize_choices, "pos": tokenize_tags}
    train = {task: tokenize[task](tokenizer, rows) for task, rows in train_raw.items()}
    dev = {task: tokenize[task](tokenizer, rows) for task, rows in dev_raw.items()}

    model = MultiTaskModel.from_encoder(
        model_path,
        {
            "sentiment": {"type": "classification", "labels": LABELS},
            "facts": {"type": "multiple_choice", "num_choices": 3},
            "pos": {"type": "tagging", "labels": POS_TAGS},
        },
    )
    trainer = MultiTaskTrainer(
        model,
        training_args,
        train_dataset=train,
        eval_dataset=dev,
        processing_class=tokenizer,
        compute_metrics=accuracy,
    )
    trainer.train()
    metrics = trainer.evaluate()  # eval_<task>_accuracy, eval_loss, eval_average
    predictions = trainer.predict(dev["sentiment"], task="sentiment")
    trainer.save_model()  # the whole multi-task model: AutoModel.from_pretrained(output_dir) after `import hf_itt`
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out)
        model.export_encoder(out / "encoder", tokenizer)  # plain AutoModel checkpoint: the next stage starts here
        reloaded = AutoModel.from_pretrained(out)
        assert reloaded.config.tasks["pos"]["labels"] == POS_TAGS
        print(
            json.dumps(
                {k: v for k, v in metrics.items() if k.endswith(("accuracy", "average", "loss"))}
                | {"predicted_sentiment_rows": len(predictions.predictions)},
                indent=2,
            )
        )
    return metrics


if __name__ == "__main__":
    main()
