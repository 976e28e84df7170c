"""Length-aware dynamic padding vs pad-to-max-length, on real length distributions.

    python benchmarks/padding.py            # small XLM-R-shaped model, CPU (a few minutes)
    python benchmarks/padding.py --tiny     # CI smoke run
    python benchmarks/padding.py --device cuda --model-size large

Real rows (XQuAD, XCOPA, UD POS, Tatoeba pairs, MNLI-like pairs from ../shared/data) are tokenized by
``hf_itt.task_types.features`` truncated at the jiant/XTREME maximum length of each task, then batched three ways
with the same batch size:

- pad to max: random batches, every sequence padded to the task's max length (jiant / XTREME default);
- dynamic: random batches padded to their longest sequence (the HF Trainer default);
- hf_itt default: what a run with the shipped presets does, which set ``train_sampling_strategy:
  group_by_length``: ``LockstepBatchSampler(lengths=...)`` task-homogeneous, length-grouped batches padded
  by ``MultiTaskCollator`` (the presets are read, so the column follows them if they change).

Useful tokens are the non-pad tokens. For each task, the padded/real token counts come from the whole
epoch of batches; the time comes from forward+backward passes over a stratified sample of each method's
batches (evenly spaced quantiles of padded length), interleaved method by method, and is scaled to the
epoch. Useful tokens per second = epoch's real tokens / estimated epoch time. Target: hf_itt >= 1.5x pad to max.
"""

from __future__ import annotations

import numpy as np
from harness import (
    base_parser,
    build_model,
    cuda_sync,
    load_tokenizer,
    machine_line,
    model_line,
    print_table,
    setup,
    shared_data,
    timed,
    verdict,
)

TARGET = 1.5
# task -> (hf_itt spec providing the recipe and labels, head, max length of the pad-to-max baseline)
TASKS = {
    "mnli_like": ("mnli", {"type": "classification", "num_labels": 3}, 256),  # jiant's ITT default
    "tatoeba_pairs": ("pawsx", {"type": "classification", "num_labels": 2}, 128),  # XTREME PAWS-X
    "udpos": ("udpos", {"type": "tagging", "num_labels": 17}, 128),  # XTREME POS
    "xcopa": ("xcopa", {"type": "multiple_choice", "num_choices": 2}, 128),  # XTREME-R XCOPA
    "xquad": ("xquad", {"type": "extractive_qa"}, 384),  # jiant / XTREME QA
}
HF_ITT = "hf_itt default"
METHODS = ("pad to max", "dynamic", HF_ITT)


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4, help="timed batches per task and method")
    parser.add_argument("--limit", type=int, default=None, help="rows per language (default: all)")
    args = parser.parse_args(argv)
    setup(args)
    if args.tiny:
        args.batch_size, args.samples, args.limit = 4, 1, 12
    return args


def load_rows(args) -> dict:
    import real_data

    data = shared_data()
    languages = (lambda langs: langs[:2]) if args.tiny else (lambda langs: None)
    return {
        "mnli_like": real_data.mnli_like(data, limit=None if args.limit is None else args.limit * 4),
        "tatoeba_pairs": real_data.tatoeba_pairs(data, languages(["de", "ar", "zh", "hi"]), args.limit),
        "udpos": real_data.concat(real_data.udpos(data, languages(["en", "de", "zh", "hi", "ar"]), args.limit)),
        "xcopa": real_data.concat(real_data.xcopa(data, languages(["et", "zh"]), args.limit)),
        "xquad": real_data.concat(real_data.xquad(data, languages(["en", "th"]), args.limit)),
    }


def tokenize(rows: dict, tokenizer) -> dict:
    from hf_itt.task_types.features import preprocess
    from hf_itt.tasks.registry import get_task

    return {
        task: preprocess(rows[task], get_task(spec_name), tokenizer, split_role="train", max_length=max_length)
        for task, (spec_name, _, max_length) in TASKS.items()
    }


def example_lengths(features) -> list[int]:
    """Tokens per example (multiple choice: all choices together), as MultiTaskTrainer groups them."""
    return [sum(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids) for ids in features["input_ids"]]


def batches(method: str, size: int, lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """One epoch of index batches of one task."""
    from hf_itt.training.sampling import LockstepBatchSampler, make_sampler

    if method == HF_ITT:  # what a run with the shipped presets does
        sampler = LockstepBatchSampler(
            make_sampler("uniform", {"task": size}),
            batch_size,
            seed=seed,
            lengths={"task": lengths} if presets_group_by_length() else None,
        )
        return list(sampler)
    order = np.random.default_rng(seed).permutation(size).tolist()
    return [order[i : i + batch_size] for i in range(0, size, batch_size)]


def presets_group_by_length() -> bool:
    """Whether the shipped presets batch by length (train_sampling_strategy: group_by_length), as measured."""
    from hf_itt.config.presets import all_presets

    return all(
        preset["training"].get("train_sampling_strategy") == "group_by_length" for preset in all_presets().values()
    )


def stratified(padded_lengths: list[int], count: int) -> list[int]:
    """Positions of ``count`` batches at evenly spaced quantiles of padded length."""
    order = np.argsort(padded_lengths, kind="stable")
    return [int(order[min(len(order) - 1, int((i + 0.5) * len(order) / count))]) for i in range(count)]


class TaskBench:
    """All batches of one task under the three methods, and the forward+backward timing of a sample."""

    def __init__(self, task: str, features, model, tokenizer, args):
        from hf_itt.task_types.collators import MultiTaskCollator

        self.task, self.features, self.model, self.args = task, features, model, args
        self.task_id = model.task_id(task)
        types = [spec["type"] for spec in model.config.tasks.values()]
        max_length = TASKS[task][2]
        self.collators = {
            "pad to max": MultiTaskCollator(tokenizer, types, pad_to_multiple_of=max_length),
            "dynamic": MultiTaskCollator(tokenizer, types),
            HF_ITT: MultiTaskCollator(tokenizer, types),
        }
        lengths = example_lengths(features)
        self.batches = {m: batches(m, len(features), lengths, args.batch_size, args.seed) for m in METHODS}
        self.tokens = {m: [self.count(m, b) for b in self.batches[m]] for m in METHODS}  # (real, padded)
        self.sampled = {m: stratified([padded for _, padded in self.tokens[m]], args.samples) for m in METHODS}
        self.times: dict[str, list[float]] = {m: [] for m in METHODS}

    def collate(self, method: str, indices: list[int]):
        rows = self.features.select(indices)
        return self.collators[method]([{**row, "task_ids": self.task_id} for row in rows])

    def count(self, method, indices) -> tuple[int, int]:
        mask = self.collate(method, indices)["attention_mask"]
        return int(mask.sum()), int(mask.numel())

    def time_sample(self, method: str, position: int) -> None:
        batch = {k: v.to(self.args.device) for k, v in self.collate(method, self.batches[method][position]).items()}

        def forward_backward():
            self.model(**batch).loss.backward()
            self.model.zero_grad(set_to_none=True)

        self.times[method].append(timed(forward_backward, cuda_sync(self.args)))

    def run(self) -> None:
        for k in range(self.args.samples):  # interleaved: one batch of each method in turn
            for method in METHODS:
                self.time_sample(method, self.sampled[method][k])

    def epoch(self, method: str) -> dict:
        real = sum(r for r, _ in self.tokens[method])
        padded = sum(p for _, p in self.tokens[method])
        seconds = float(np.mean(self.times[method])) * len(self.batches[method])
        return {"real": real, "padded": padded, "seconds": seconds, "useful_per_s": real / seconds}


def fixed_cost(model, args, repeats: int = 5) -> float:
    """Median forward+backward time of a 1 x 8-token batch: the per-batch cost that does not scale with
    tokens (at the default size mostly the dense 250,002-row embedding gradient)."""
    import torch

    ids = torch.full((1, 8), 5, device=args.device)
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.zeros(1, dtype=torch.long, device=args.device),
        "task_ids": torch.full((1,), model.task_id("mnli_like"), device=args.device),
    }

    def forward_backward():
        model(**batch).loss.backward()
        model.zero_grad(set_to_none=True)

    return float(np.median([timed(forward_backward, cuda_sync(args)) for _ in range(repeats)]))


def main(argv=None) -> int:
    args = parse_args(argv)
    tokenizer = load_tokenizer(args.tiny)
    features = tokenize(load_rows(args), tokenizer)
    model = build_model(args.model_size, tokenizer, {task: head for task, (_, head, _) in TASKS.items()}, args.seed)
    model.to(args.device).train()
    benches = [TaskBench(task, features[task], model, tokenizer, args) for task in TASKS]
    fixed = fixed_cost(model, args)
    for bench in benches:
        bench.run()
    rows, totals = [], {m: {"real": 0, "padded": 0, "seconds": 0.0} for m in METHODS}
    for bench in benches:
        epochs = {m: bench.epoch(m) for m in METHODS}
        for m in METHODS:
            for key in totals[m]:
                totals[m][key] += epochs[m][key]
        rows.append(_row(bench.task, len(bench.features), TASKS[bench.task][2], epochs))
    for m in METHODS:
        totals[m]["useful_per_s"] = totals[m]["real"] / totals[m]["seconds"]
    rows.append(_row("all five (one epoch each)", sum(len(b.features) for b in benches), "-", totals))
    overall = totals[HF_ITT]["useful_per_s"] / totals["pad to max"]["useful_per_s"]
    batches_per_method = sum(len(b.batches[HF_ITT]) for b in benches)  # the same for every method
    token_bound = {m: max(totals[m]["seconds"] - batches_per_method * fixed, 1e-9) for m in METHODS}
    print_table(
        "Padding: useful (non-pad) tokens per second of forward+backward",
        [
            "task",
            "examples",
            "pad-to length",
            "real tokens",
            "real/padded: pad to max",
            "dynamic",
            HF_ITT,
            "useful tok/s: pad to max",
            "dynamic",
            HF_ITT,
            "hf_itt / pad to max",
            "hf_itt / dynamic",
        ],
        rows,
        [
            machine_line(args),
            model_line(model),
            "hf_itt default: the shipped presets' batching, train_sampling_strategy "
            f"{'group_by_length (length-grouped)' if presets_group_by_length() else 'random'}, padded per batch",
            f"batch {args.batch_size}; {args.samples} timed batches per task and method (stratified by padded length), "
            "scaled to the epoch; token counts are exact over the epoch",
            f"hf_itt vs pad-to-max useful tokens/s, all tasks: {verdict(overall, TARGET)}",
            "multiple choice counts every choice's tokens; truncation at the pad-to length for all three methods",
            f"fixed cost of a forward+backward (1 x 8 tokens): {fixed:.3g} s per batch, {batches_per_method} batches per "
            f"method; without it (token-proportional time only) hf_itt / pad to max = "
            f"{token_bound['pad to max'] / token_bound[HF_ITT]:.2f}x, hf_itt / dynamic = "
            f"{token_bound['dynamic'] / token_bound[HF_ITT]:.2f}x",
        ],
    )
    return 0


def _row(name, examples, pad_to, epochs: dict) -> list:
    useful = {m: epochs[m]["useful_per_s"] for m in METHODS}
    fill = [f"{epochs[m]['real'] / epochs[m]['padded']:.2f}" for m in METHODS]
    return [
        name,
        examples,
        pad_to,
        epochs[HF_ITT]["real"],
        *fill,
        *(useful[m] for m in METHODS),
        f"{useful[HF_ITT] / useful['pad to max']:.2f}x",
        f"{useful[HF_ITT] / useful['dynamic']:.2f}x",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
