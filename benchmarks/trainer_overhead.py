"""MultiTaskTrainer vs the plain HF Trainer: what does hf_itt's multi-task machinery cost per step?

    python benchmarks/trainer_overhead.py            # small XLM-R-shaped model, CPU (a few minutes)
    python benchmarks/trainer_overhead.py --tiny     # CI smoke run
    python benchmarks/trainer_overhead.py --device cuda --model-size large

Runs, interleaved round by round from the same initial weights, seed, data, batch size and number
of steps:

1. plain ``transformers.Trainer`` on one classification task (RandomSampler + DataCollatorWithPadding);
2. ``MultiTaskTrainer`` on the same task (LockstepBatchSampler + MultiTaskCollator + per-task loss logs);
3. ``MultiTaskTrainer`` on 9 classification heads mixed (same work per step as 1-2: isolates the cost
   of switching heads every step);
4. ``MultiTaskTrainer`` on the 9 intermediate tasks of the reference study mixed (classification, QA,
   4-/5-way multiple choice, CCG tagging): real per-step work differs, so compare tokens/s.

All sequences have the same length, so every batch of 1-3 has identical shapes and step time differences
are the trainers' own overhead. Target: throughput of 2 >= 0.98x that of 1.
"""

from __future__ import annotations

import copy
import tempfile

from harness import (
    base_parser,
    build_model,
    load_tokenizer,
    machine_line,
    median,
    model_line,
    print_table,
    release_free_memory,
    setup,
    spread,
    verdict,
)
from workloads import (
    ITT_TASKS,
    TokenCounter,
    quiet,
    random_task_dataset,
    step_clock,
    step_summary,
    task_specs,
    training_arguments,
)

TARGET = 0.98
CLASSIFIERS = {f"cls{i}": {"type": "classification", "num_labels": 3} for i in range(9)}


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds of the plain vs 1-task pair")
    parser.add_argument("--mixture-rounds", type=int, default=3, help="of those rounds, how many also run the mixtures")
    args = parser.parse_args(argv)
    setup(args)
    if args.tiny:
        args.batch_size, args.seq_len, args.steps, args.rounds, args.mixture_rounds = 4, 16, 3, 2, 1
    return args


class Run:
    """One trainer configuration, restarted from the same initial weights every round."""

    def __init__(self, name, make_trainer, model):
        self.name, self.make_trainer, self.model = name, make_trainer, model
        self.initial = copy.deepcopy(model.state_dict())

    def __call__(self) -> dict:
        release_free_memory()  # collect the previous run's trainer now, not during this run's steps
        self.model.load_state_dict(self.initial)
        clock = step_clock()
        trainer, counter = self.make_trainer(self.model, clock)
        trainer.train()
        return step_summary(clock, counter)


def plain_run(args, tokenizer, model, dataset, out):
    from transformers import DataCollatorWithPadding, Trainer

    def make(model, clock):
        counter = TokenCounter(DataCollatorWithPadding(tokenizer))
        trainer = Trainer(
            model=model,
            args=training_arguments(out, args, args.batch_size, args.steps),
            train_dataset=dataset,
            data_collator=counter,
            processing_class=tokenizer,
            callbacks=[clock],
        )
        return quiet(trainer), counter

    return Run("plain Trainer, 1 task", make, model)


def multitask_run(name, args, tokenizer, model, datasets, out, steps=None):
    from hf_itt.task_types.collators import MultiTaskCollator
    from hf_itt.training.trainer import MultiTaskTrainer

    types = [spec["type"] for spec in model.config.tasks.values()]

    def make(model, clock):
        counter = TokenCounter(MultiTaskCollator(tokenizer, types, seed=args.seed))
        trainer = MultiTaskTrainer(
            model=model,
            args=training_arguments(out, args, args.batch_size, steps or args.steps),
            train_datasets=datasets,
            sampler="uniform",
            processing_class=tokenizer,
            data_collator=counter,
            callbacks=[clock],
        )
        return quiet(trainer), counter

    return Run(name, make, model)


def build_runs(args, tokenizer, out) -> list[Run]:
    mixture_steps = max(args.steps, 10)  # the task schedule is fixed by the seed: enough steps to draw most tasks
    rows = args.batch_size * mixture_steps
    vocab = None

    def model_for(tasks):
        nonlocal vocab
        model = build_model(args.model_size, tokenizer, tasks, seed=args.seed)
        vocab = model.config.encoder.vocab_size
        return model

    single = model_for({"mnli": ITT_TASKS["mnli"]})
    data = lambda spec, seed: random_task_dataset(spec, rows, args.seq_len, vocab, seed)  # noqa: E731
    mnli = data(ITT_TASKS["mnli"], args.seed)
    # Runs 1 and 2 share one model object (same initial weights restored every round).
    return [
        plain_run(args, tokenizer, single, mnli, out),
        multitask_run("MultiTaskTrainer, 1 task", args, tokenizer, single, {"mnli": mnli}, out),
        multitask_run(
            "MultiTaskTrainer, 9 classification heads",
            args,
            tokenizer,
            model_for(CLASSIFIERS),
            {name: data(spec, args.seed + i) for i, (name, spec) in enumerate(CLASSIFIERS.items())},
            out,
            mixture_steps,
        ),
        multitask_run(
            "MultiTaskTrainer, 9 ITT tasks (cls/QA/MC/tagging)",
            args,
            tokenizer,
            model_for(task_specs(ITT_TASKS)),
            {name: data(spec, args.seed + i) for i, (name, spec) in enumerate(ITT_TASKS.items())},
            out,
            mixture_steps,
        ),
    ]


def print_per_task(run: Run, rounds: list[dict], args) -> None:
    """Step time and tokens/s of each task inside the 9-task mixture."""
    names = run.model.config.task_names
    steps: dict[str, list[tuple[float, int]]] = {}
    for result in rounds:
        for seconds, tokens, task in zip(result["times"], result["tokens"], result["tasks"]):
            steps.setdefault(names[task], []).append((seconds, tokens))
    rows = [
        [
            name,
            run.model.config.tasks[name]["type"],
            len(steps[name]),
            median(s for s, _ in steps[name]),
            median(t for _, t in steps[name]),
            sum(t for _, t in steps[name]) / sum(s for s, _ in steps[name]),
        ]
        for name in names
        if name in steps
    ]
    print_table(
        f"Per task inside '{run.name}'",
        ["task", "head", "steps timed", "median step (s)", "real tokens/step", "tokens/s"],
        rows,
        [
            "the seed fixes the task schedule, so every round replays the same draws (uniform over the 9 "
            "tasks); tasks not drawn are absent"
        ],
    )


def plain_times(rounds) -> list[float]:
    return [t for result in rounds for t in result["times"]]


def main(argv=None) -> int:
    args = parse_args(argv)
    tokenizer = load_tokenizer(args.tiny)
    with tempfile.TemporaryDirectory() as out:
        runs = build_runs(args, tokenizer, out)
        results = {run.name: [] for run in runs}
        for index in range(args.rounds):  # the 1-task pair every round, the mixtures in the first rounds only
            # Alternate which of the pair goes first (ABBA): no run always follows the other's leftovers.
            order = runs[:2] if index % 2 == 0 else runs[1::-1]
            for run in order + (runs[2:] if index < args.mixture_rounds else []):
                results[run.name].append(run())
    plain = results[runs[0].name]
    rows, paired = [], {}
    for run in runs:
        rounds = results[run.name]
        times = [t for result in rounds for t in result["times"]]
        # Paired per round (the runs of a round are back to back, so they share the machine's load).
        step_ratios = [median(p["times"]) / median(r["times"]) for p, r in zip(plain, rounds)]
        differences = [1000 * (median(r["times"]) - median(p["times"])) for p, r in zip(plain, rounds)]
        token_ratios = [r["tokens_per_s"] / p["tokens_per_s"] for p, r in zip(plain, rounds)]
        paired[run.name] = median(step_ratios)
        rows.append(
            [
                run.name,
                len(times),
                median(times),
                spread(times),
                min(times),
                median(t for result in rounds for t in result["tokens"]),
                median(result["tokens_per_s"] for result in rounds),
                f"{median(step_ratios):.3f} ({spread(step_ratios)})",
                f"{median(differences):+.0f}",
                f"{median(token_ratios):.3f}",
                f"{min(plain_times(plain[: len(rounds)])) / min(times):.3f}",
            ]
        )
    print_table(
        "Trainer overhead: MultiTaskTrainer vs plain Trainer",
        [
            "run",
            "steps timed",
            "median step (s)",
            "step range (s)",
            "fastest step (s)",
            "real tokens/step",
            "tokens/s",
            "throughput vs plain: paired median (range over rounds)",
            "step time minus plain's (ms)",
            "tokens/s vs plain",
            "fastest-step ratio",
        ],
        rows,
        [
            machine_line(args),
            model_line(runs[0].model),
            f"batch {args.batch_size} x {args.seq_len} tokens (multiple choice: x choices), {args.steps} steps per run "
            f"({max(args.steps, 10)} for the 9-task runs; first untimed); {args.rounds} interleaved rounds of the "
            f"1-task pair, the 9-task runs in the first {args.mixture_rounds}; same initial weights and seed every run",
            "throughput vs plain = plain's median step time / the run's, computed within each round, median over "
            "rounds; the fastest-step ratio (against plain's steps of the same rounds) is the least noise-sensitive "
            "view (noise only adds time)",
            f"MultiTaskTrainer (1 task) throughput vs plain Trainer: {verdict(paired[runs[1].name], TARGET)}",
            "9-task mixtures use uniform task sampling; their step-time ratio compares different work per step, "
            "tokens/s is the fair comparison",
        ],
    )
    print_per_task(runs[-1], results[runs[-1].name], args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
