"""Step time and peak memory of a joint MultiTaskTrainer stage vs number of tasks and sequence length.

    python benchmarks/scaling.py            # small XLM-R-shaped model, CPU (a few minutes)
    python benchmarks/scaling.py --tiny     # CI smoke run
    python benchmarks/scaling.py --device cuda --model-size large

Joint stages over 1 (mnli), 3 (mnli, squad_v1, hellaswag) or all 9 intermediate tasks of the reference
study (uniform task sampling), each example exactly ``length`` tokens per sequence (multiple choice:
per choice); every (tasks, length) pair is run. Configurations are run in turn, for ``--rounds`` interleaved rounds; step times are medians over all
timed steps (the first step of a run is not timed). Peak memory is the growth of the process's peak
RSS (VmHWM, reset before each run after freeing memory) during ``train()``; on CUDA, the peak of
allocated memory. A 9-task run takes at least 10 steps so most tasks appear.
"""

from __future__ import annotations

import tempfile

from harness import (
    base_parser,
    build_model,
    interleaved,
    load_tokenizer,
    machine_line,
    median,
    model_line,
    on_cuda,
    peak_rss_mib,
    print_table,
    reset_peak_rss,
    setup,
)
from workloads import (
    TASK_SETS,
    TokenCounter,
    quiet,
    random_task_dataset,
    step_clock,
    step_summary,
    task_specs,
    training_arguments,
)

TASK_COUNTS, LENGTHS = (1, 3, 9), (128, 256, 384)


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run (first untimed)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    setup(args)
    if args.tiny:
        args.batch_size, args.steps, args.rounds = 2, 3, 1
    return args


def configurations(args) -> list[tuple[int, int]]:
    lengths = (16, 32) if args.tiny else LENGTHS
    return [(tasks, length) for tasks in TASK_COUNTS for length in lengths]


class ScalingRun:
    def __init__(self, tasks: int, length: int, args, tokenizer, out: str):
        names = TASK_SETS[tasks]
        self.tasks, self.length, self.args, self.tokenizer, self.out = tasks, length, args, tokenizer, out
        self.steps = max(args.steps, tasks + 1)
        self.model = build_model(args.model_size, tokenizer, task_specs(names), args.seed)
        vocab = self.model.config.encoder.vocab_size
        rows = args.batch_size * self.steps
        self.datasets = {
            name: random_task_dataset(spec, rows, length, vocab, args.seed + i)
            for i, (name, spec) in enumerate(task_specs(names).items())
        }
        self.initial = {k: v.clone() for k, v in self.model.state_dict().items()}

    def __call__(self) -> dict:
        import torch

        from hf_itt.task_types.collators import MultiTaskCollator
        from hf_itt.training.trainer import MultiTaskTrainer

        self.model.load_state_dict(self.initial)
        clock = step_clock()
        counter = TokenCounter(MultiTaskCollator(self.tokenizer, [s["type"] for s in self.model.config.tasks.values()]))
        trainer = quiet(
            MultiTaskTrainer(
                model=self.model,
                args=training_arguments(self.out, self.args, self.args.batch_size, self.steps),
                train_datasets=self.datasets,
                sampler="uniform",
                processing_class=self.tokenizer,
                data_collator=counter,
                callbacks=[clock],
            )
        )
        before = reset_peak_rss()
        if on_cuda(self.args):
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        peak = torch.cuda.max_memory_allocated() / 2**20 if on_cuda(self.args) else peak_rss_mib() - before
        del trainer
        return {**step_summary(clock, counter), "peak_mib": peak}


def main(argv=None) -> int:
    args = parse_args(argv)
    tokenizer = load_tokenizer(args.tiny)
    with tempfile.TemporaryDirectory() as out:
        runs = {config: ScalingRun(*config, args, tokenizer, out) for config in configurations(args)}
        results = interleaved(runs, args.rounds)
    base_time = base_memory = None
    rows = []
    for (tasks, length), outcomes in results.items():
        times = [t for outcome in outcomes for t in outcome["times"]]
        step, peak = median(times), median(outcome["peak_mib"] for outcome in outcomes)
        base_time, base_memory = base_time or step, base_memory or peak
        all_tokens = [t for outcome in outcomes for t in outcome["tokens"]]
        tokens = sum(all_tokens) / len(all_tokens)
        rows.append(
            [
                tasks,
                length,
                len(times),
                step,
                f"{step / base_time:.2f}x",
                tokens,
                median(outcome["tokens_per_s"] for outcome in outcomes),
                peak,
                f"{peak / base_memory:.2f}x",
            ]
        )
    memory = "peak CUDA memory allocated (MiB)" if on_cuda(args) else "peak RSS growth in train() (MiB)"
    first = next(iter(runs.values()))
    print_table(
        "Scaling: joint-stage step time and peak memory vs tasks and sequence length",
        [
            "tasks",
            "seq length",
            "steps timed",
            "median step (s)",
            "vs first row",
            "mean real tokens/step",
            "tokens/s",
            memory,
            "vs first row",
        ],
        rows,
        [
            machine_line(args),
            model_line(first.model),
            f"batch {args.batch_size} per step (multiple choice: x 4-5 choices), uniform task sampling, "
            f"{args.rounds} interleaved round(s); tasks: 1 = mnli, 3 = mnli squad_v1 hellaswag, 9 = all ITT tasks",
            "mixtures do different work per step (a hellaswag step encodes 4 sequences per example): compare tokens/s "
            "for throughput; the step time is what a user sees",
            "peak memory includes Adam states created at the first step; CPU figures are fp32 and full-width dropout masks",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
