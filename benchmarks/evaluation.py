"""Zero-shot evaluation over many languages: hf_itt's length-sorted predict vs plain ``Trainer.predict``.

    python benchmarks/evaluation.py            # small XLM-R-shaped model, CPU (a few minutes)
    python benchmarks/evaluation.py --tiny     # CI smoke run
    python benchmarks/evaluation.py --device cuda --model-size large

For every language of Tatoeba pairs (13, sentence-pair classification, PAWS-X-shaped), XCOPA (11,
multiple choice), UD POS (5, tagging) and XQuAD (11, QA windows) the same tokenized features (``hf_itt.task_types.features``, eval role) go through

- hf_itt: ``hf_itt.evaluation.predict.predict_features`` (length-sorted batches, dynamic padding, outputs restored
  to the original order), as ``hf_itt.evaluate`` runs it;
- plain Trainer: ``Trainer.predict`` per language with the task type's HF collator (file order, padding
  to the longest sequence of each batch), the usual ``run_*`` evaluation loop.

Both use the same model, batch size and features; one ``Trainer`` is built per task outside the timed
calls. Languages are timed in turn, alternating the two methods. Predictions (argmax class, tag or
answer start/end per feature) must be identical: a difference fails the run unless the reference
logits are tied within 1e-3 there (then it is counted as a near-tie).
"""

from __future__ import annotations

import tempfile

import numpy as np
from harness import (
    base_parser,
    build_model,
    cuda_sync,
    interleaved,
    load_tokenizer,
    machine_line,
    median,
    model_line,
    print_table,
    setup,
    shared_data,
    timed,
)

TIE_TOLERANCE = 1e-3
HEADS = {
    "tatoeba_pairs": {"type": "classification", "num_labels": 2},
    "xcopa": {"type": "multiple_choice", "num_choices": 2},
    "udpos": {"type": "tagging", "num_labels": 17},
    "xquad": {"type": "extractive_qa"},
}


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--xquad-questions", type=int, default=64, help="XQuAD questions per language")
    parser.add_argument("--limit", type=int, default=100, help="rows per language of the other tasks")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds over all languages")
    args = parser.parse_args(argv)
    setup(args)
    if args.tiny:
        args.batch_size, args.xquad_questions, args.limit = 4, 3, 6
    return args


def load_features(args, tokenizer) -> dict[str, dict]:
    """task -> language -> eval features."""
    import real_data

    from hf_itt.task_types.features import preprocess
    from hf_itt.tasks.registry import get_task

    data = shared_data()
    pick = (lambda langs: langs[:2]) if args.tiny else (lambda langs: None)
    pairs = real_data.tatoeba(data, pick(["de", "zh"]), args.limit)
    rows = {
        "tatoeba_pairs": {lang: real_data.tatoeba_pairs(data, [lang], args.limit) for lang in pairs},
        "xcopa": real_data.xcopa(data, pick(["et", "zh"]), args.limit, split="validation"),
        "udpos": real_data.udpos(data, pick(["en", "zh"]), args.limit),
        "xquad": real_data.xquad(data, pick(["en", "th"]), args.xquad_questions),
    }
    specs = {"tatoeba_pairs": "pawsx"}
    return {
        task: {
            lang: preprocess(dataset, get_task(specs.get(task, task)), tokenizer, split_role="eval")
            for lang, dataset in by_lang.items()
        }
        for task, by_lang in rows.items()
    }


def plain_trainer(model, tokenizer, task_type: str, args, out: str):
    from transformers import (
        DataCollatorForMultipleChoice,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    collator = {"multiple_choice": DataCollatorForMultipleChoice, "tagging": DataCollatorForTokenClassification}.get(
        task_type, DataCollatorWithPadding
    )(tokenizer)
    cuda = str(args.device).startswith("cuda")
    training_args = TrainingArguments(
        out,
        per_device_eval_batch_size=args.batch_size,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16_full_eval=False,
    )
    return Trainer(model=model, args=training_args, data_collator=collator, processing_class=tokenizer)


def hf_itt_outputs(model, tokenizer, features, task, batch_size) -> list[np.ndarray]:
    from hf_itt.evaluation.predict import predict_features

    outputs = predict_features(model, tokenizer, features, task, batch_size)
    keys = ("start_logits", "end_logits") if "start_logits" in outputs else ("logits",)
    return [np.stack([outputs[key][i] for key in keys]) for i in range(len(features))]


def trainer_outputs(trainer, features, task_type: str) -> list[np.ndarray]:
    """Per-feature logits without the -100 padding Trainer.predict adds across batches."""
    # DataCollatorForMultipleChoice needs labels; the other collators get model inputs only.
    columns = ["input_ids", "attention_mask"] + (["labels"] if task_type == "multiple_choice" else [])
    result = trainer.predict(features.select_columns(columns))
    predictions = result.predictions if isinstance(result.predictions, tuple) else (result.predictions,)
    lengths = [len(ids) for ids in features["input_ids"]]
    token_level = task_type in ("tagging", "extractive_qa")
    return [np.stack([p[i][: lengths[i]] if token_level else p[i] for p in predictions]) for i in range(len(features))]


def compare(reference: list[np.ndarray], other: list[np.ndarray], where: str) -> tuple[int, int]:
    """(predictions compared, near-tie differences); raises on a real difference."""
    compared = near_ties = 0
    for index, (ref, oth) in enumerate(zip(reference, other)):
        ref_top, oth_top = ref.argmax(-1), oth.argmax(-1)
        compared += ref_top.size
        for position in zip(*np.nonzero(ref_top != oth_top)):
            scores = np.sort(ref[position])
            if scores[-1] - scores[-2] > TIE_TOLERANCE:
                raise AssertionError(
                    f"{where}, feature {index}, position {position}: hf_itt predicts "
                    f"{ref_top[position]} but Trainer.predict {oth_top[position]}"
                )
            near_ties += 1
    return compared, near_ties


def benchmark_task(task, by_lang, args, tokenizer, out) -> list:
    model = build_model(args.model_size, tokenizer, {task: HEADS[task]}, args.seed).to(args.device).eval()
    trainer = plain_trainer(model, tokenizer, HEADS[task]["type"], args, out)
    sync = cuda_sync(args)
    results = {}

    def measure(lang, method):
        def run():
            if method == "hf_itt":
                results[(lang, method)] = hf_itt_outputs(model, tokenizer, by_lang[lang], task, args.batch_size)
            else:
                results[(lang, method)] = trainer_outputs(trainer, by_lang[lang], HEADS[task]["type"])

        return lambda: timed(run, sync)

    measurements = {(lang, method): measure(lang, method) for lang in by_lang for method in ("hf_itt", "Trainer")}
    times = interleaved(measurements, args.repeats)
    rows = []
    for lang, features in by_lang.items():
        compared, ties = compare(results[(lang, "hf_itt")], results[(lang, "Trainer")], f"{task} {lang}")
        ours, theirs = median(times[(lang, "hf_itt")]), median(times[(lang, "Trainer")])
        tokens = sum(
            sum(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids) for ids in features["input_ids"]
        )
        rows.append([task, lang, len(features), tokens, compared, ties, theirs, ours, theirs / ours])
    return rows, model


def main(argv=None) -> int:
    args = parse_args(argv)
    tokenizer = load_tokenizer(args.tiny)
    features = load_features(args, tokenizer)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for task, by_lang in features.items():
            task_rows, model = benchmark_task(task, by_lang, args, tokenizer, out)
            rows += task_rows
    for task in dict.fromkeys(row[0] for row in rows):
        mine = [row for row in rows if row[0] == task]
        rows.append(
            [
                task,
                "all",
                *(sum(row[i] for row in mine) for i in range(2, 8)),
                sum(row[6] for row in mine) / sum(row[7] for row in mine),
            ]
        )
    total_trainer = sum(row[6] for row in rows if row[1] != "all")
    total_ours = sum(row[7] for row in rows if row[1] != "all")
    for row in rows:
        row[8] = f"{row[8]:.2f}x"
    print_table(
        "Zero-shot evaluation: hf_itt length-sorted predict vs Trainer.predict per language",
        [
            "task",
            "language",
            "features",
            "tokens",
            "predictions compared",
            "near-ties",
            "Trainer.predict (s)",
            "hf_itt (s)",
            "speed-up",
        ],
        rows,
        [
            machine_line(args),
            model_line(model),
            f"batch {args.batch_size}; XQuAD: first {args.xquad_questions} questions per language; "
            f"{args.repeats} interleaved round(s); identical predictions asserted (near-ties: top-2 gap <= {TIE_TOLERANCE})",
            f"all tasks and languages: Trainer.predict {total_trainer:.1f} s, hf_itt {total_ours:.1f} s, "
            f"speed-up {total_trainer / total_ours:.2f}x",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
