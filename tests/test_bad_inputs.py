"""The bad-input catalogue, part 1: what is wrong in the experiment file or the command line.

Every case runs the real CLI (`hf_itt.cli.main`, in process) on a run folder whose stage `nli`
already finished, and must give exactly ONE line, `hf_itt error: <the message below>`, exit 2,
print no traceback, and leave the finished stage intact. All of these fail at load, before any
data is read or model built. Part 2 (tests/test_bad_inputs_runtime.py) covers data, models,
checkpoints and the environment; docs/troubleshooting.md lists each message with its fix.
"""

from __future__ import annotations

import pytest

from tests.bad_inputs_harness import (  # noqa: F401
    BAD,
    NLI,
    TRAINING,
    YamlText,
    experiment,
    finished,
    runner,
    then_target,
    with_stage,
    with_training,
)

VALID_TOP = (
    "benchmarks, defaults, evaluation, experiment, health, hub, model, output_dir, prepare, report_dir, seed, stages, "
    "targets, task_dirs"
)
FIVE = [{"experiment": name} for name in ("baseline", "related", "unrelated", "joint", "sequential")]

# id -> (config, extra command-line arguments, the exact message)
CASES = {
    # ---- the YAML file itself
    "yaml-syntax": (
        BAD / "yaml_syntax.yaml",
        (),
        "<bad>/yaml_syntax.yaml is not valid YAML at line 5, column 1: while parsing a flow sequence "
        "expected ',' or ']', but got '<stream end>'; fix the syntax there",
    ),
    "yaml-not-a-mapping": (
        BAD / "yaml_list.yaml",
        (),
        "<bad>/yaml_list.yaml must hold a mapping of experiment fields, found list",
    ),
    "yaml-not-utf8": (BAD / "yaml_latin1.yaml", (), "<bad>/yaml_latin1.yaml is not UTF-8 text; save it as UTF-8"),
    "config-file-missing": (
        BAD / "no_such_experiment.yaml",
        (),
        "config file not found: <bad>/no_such_experiment.yaml",
    ),
    "circular-extends": (
        BAD / "circular_a.yaml",
        (),
        "circular `extends:` chain: circular_a.yaml -> circular_b.yaml -> circular_a.yaml; remove "
        "one of the references",
    ),
    "extends-missing-file": (BAD / "extends_missing.yaml", (), "config file not found: <bad>/no_such_base.yaml"),
    "duplicate-top-level-key": (
        YamlText("experiment: dup\nseed: 3\nstages: []\nseed: 4\n"),
        (),
        "<tmp>/experiment.yaml: key 'seed' appears twice in one mapping (lines 2 and 4); keep "
        "one of them (YAML would silently use the last)",
    ),
    "duplicate-stages-block": (
        YamlText(
            "experiment: dup\nstages:\n  - {name: a, tasks: [mnli]}\n"
            "targets: {tasks: [xnli]}\nstages:\n  - {name: b, tasks: [qqp]}\n"
        ),
        (),
        "<tmp>/experiment.yaml: key 'stages' appears twice in one mapping (lines 2 and 5); "
        "keep one of them (YAML would silently use the last)",
    ),
    "duplicate-nested-key": (
        YamlText(
            "experiment: dup\nstages:\n  - name: a\n    tasks: [mnli]\n"
            "    training: {learning_rate: 1.0e-5, learning_rate: 2.0e-5}\n"
        ),
        (),
        "<tmp>/experiment.yaml: key 'learning_rate' appears twice in one mapping (line 5); keep "
        "one of them (YAML would silently use the last)",
    ),
    # ---- schema: names and types of fields
    "unknown-top-level-key": (
        experiment(stagez=[]),
        (),
        f"config: unknown field 'stagez' (did you mean 'stages', 'targets'?) (valid: {VALID_TOP})",
    ),
    "unknown-stage-key": (
        with_stage(learning_rate=1e-5),
        (),
        "config.stages[0]: unknown field 'learning_rate' (did you mean 'training'?) (valid: "
        "deepspeed, early_stopping_patience, from, max_length, name, preset, sampling, tasks, "
        "training)",
    ),
    "seed-not-a-number": (experiment(seed="abc"), (), "config.seed: expected an integer, got 'abc'"),
    "seed-negative": (experiment(seed=-1), (), "seed is -1; use an integer in [0, 2**32)"),
    "flag-not-a-bool": (
        experiment(hub={"publisher": "local", "private": "yes"}),
        (),
        "config.hub.private: expected true or false, got 'yes'",
    ),
    "experiment-name-a-list": (
        experiment(experiment=["a", "b"]),
        (),
        "config.experiment: expected a string, got ['a', 'b']",
    ),
    "experiment-name-a-number": (
        experiment(experiment=2024),
        (),
        "config.experiment: expected a string, got 2024 (quote it: '2024')",
    ),
    "output-dir-a-number": (
        experiment(),
        ("output_dir=5",),
        "config.output_dir: expected a string, got 5 (quote it: '5')",
    ),
    "override-below-a-string": (
        experiment(model="xlm-roberta-large"),
        (),
        "override 'model.name_or_path=<model>': model is 'xlm-roberta-large', not a mapping, so "
        "it has no field 'name_or_path'; check the dotted key",
    ),
    "model-path-a-number": (
        experiment(),
        ("model.name_or_path=5",),
        "config.model.name_or_path: expected a string, got 5 (quote it: '5')",
    ),
    "stages-a-number": (experiment(stages=5), (), "config.stages: expected a list, got 5"),
    "task-dirs-a-number": (experiment(task_dirs=5), (), "config.task_dirs: expected a list, got 5"),
    "prepare-a-number": (experiment(prepare=5), (), "config.prepare: expected a string, got 5 (quote it: '5')"),
    "targets-tasks-numbers": (
        then_target("xnli"),
        ("targets.tasks=[1]",),
        "config.targets.tasks[0]: expected a string, got 1 (quote it: '1')",
    ),
    "training-not-a-mapping": (
        experiment(defaults={"training": ["learning_rate", 1e-5]}),
        (),
        "config.defaults.training: expected a mapping (key: value), got ['learning_rate', 1e-05]",
    ),
    "nan-temperature": (
        YamlText(
            "experiment: nan\nstages:\n  - {name: a, tasks: [mnli], "
            "sampling: {strategy: temperature, temperature: .nan}}\n"
        ),
        (),
        "config.stages[0].sampling.temperature: expected a finite number, got nan",
    ),
    "inf-weight": (
        with_stage(tasks=[{**NLI["tasks"][0], "weight": float("inf")}]),
        (),
        "config.stages[0].tasks[0].weight: expected a finite number, got inf",
    ),
    "zero-weight": (
        with_stage(tasks=[{**NLI["tasks"][0], "weight": 0}]),
        (),
        "stages[0].tasks[0].weight is 0.0; use a weight > 0 (drop a task instead of weighting it 0)",
    ),
    "max-train-examples-zero": (
        with_stage(tasks=[{**NLI["tasks"][0], "max_train_examples": 0}]),
        (),
        "stages[0].tasks[0].max_train_examples is 0; use a positive number",
    ),
    "max-length-too-small": (with_stage(max_length=4), (), "stages[0].max_length is 4; use at least 8"),
    "temperature-zero": (
        with_stage(sampling={"strategy": "temperature", "temperature": 0}),
        (),
        "stages[0].sampling.temperature must be > 0, got 0.0",
    ),
    "sampling-strategy-typo": (
        with_stage(sampling={"strategy": "temprature"}),
        (),
        "stages[0].sampling.strategy 'temprature' is unknown (did you mean 'temperature'?) (valid: "
        "uniform, proportional, temperature, capped, annealed, weights)",
    ),
    "eval-batch-size-zero": (
        experiment(evaluation={"batch_size": 0}),
        (),
        "evaluation.batch_size must be a positive number",
    ),
    # ---- TrainingArguments: keys, value types and ranges, then built for real
    "training-key-typo": (
        with_training(learning_rat=1e-5),
        (),
        "defaults.training.learning_rat: not a TrainingArguments field (did you mean 'learning_rate'?)",
    ),
    "training-key-removed-in-v5": (
        with_training(warmup_ratio=0.1),
        (),
        "defaults.training.warmup_ratio: removed in transformers 5; use warmup_steps with a "
        "float in (0, 1), e.g. warmup_steps: 0.1",
    ),
    "training-owned-key": (
        with_training(output_dir="x"),
        (),
        "defaults.training.output_dir: hf_itt sets it to <run dir>/<stage>",
    ),
    "string-learning-rate": (
        YamlText(
            "experiment: quoted\nstages: [{name: a, tasks: [mnli]}]\ndefaults: {training: {learning_rate: '1e-5'}}\n"
        ),
        (),
        "defaults.training.learning_rate: expected a number, got '1e-5'; write it without quotes",
    ),
    "word-for-max-steps": (
        experiment(),
        ("defaults.training.max_steps=two",),
        "defaults.training.max_steps: expected an integer, got 'two'",
    ),
    "fractional-max-steps": (
        with_training(max_steps=2.5),
        (),
        "defaults.training.max_steps: expected an integer, got 2.5",
    ),
    "negative-learning-rate": (
        experiment(),
        ("defaults.training.learning_rate=-1e-5",),
        "defaults.training.learning_rate is -1e-05; it must be >= 0",
    ),
    "nan-learning-rate": (
        YamlText("experiment: nan\nstages: [{name: a, tasks: [mnli], training: {learning_rate: .nan}}]\n"),
        (),
        "stages[0].training.learning_rate: expected a finite number, got nan",
    ),
    "batch-size-zero": (
        with_training(per_device_train_batch_size=0),
        (),
        "defaults.training.per_device_train_batch_size is 0; it must be >= 1",
    ),
    "adam-beta-one": (with_training(adam_beta2=1.0), (), "defaults.training.adam_beta2 is 1.0; it must be in [0, 1)"),
    "save-steps-zero": (
        with_training(save_steps=0),
        (),
        "defaults.training.save_steps is 0; it must be > 0 (a number of steps, or a fraction of the "
        "training steps below 1)",
    ),
    "bf16-a-word": (with_training(bf16="yes"), (), "defaults.training.bf16: expected true or false, got 'yes'"),
    "unknown-optimizer": (
        with_training(optim="adamw_bogus"),
        (),
        "stages[0] (nli): invalid TrainingArguments: adamw_bogus is not a valid OptimizerNames, "
        "please select one of <optimizers>",
    ),
    "strategies-do-not-match": (
        with_stage(training={"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "epoch"}),
        (),
        "stages[0] (nli): invalid TrainingArguments: --load_best_model_at_end requires the save "
        'and eval strategy to match, except when --save_strategy="best", but found - '
        "Evaluation strategy: IntervalStrategy.STEPS - Save strategy: SaveStrategy.EPOCH",
    ),
    # ---- model selection (hf_itt.config.model_selection)
    "early-stopping-without-best-model": (
        with_stage(early_stopping_patience=3),
        (),
        "stages[0] (nli): early_stopping_patience 3 needs load_best_model_at_end: "
        "true (the best evaluation's weights are exported, as jiant does); set it "
        "in `training:` with eval_strategy and save_strategy 'steps', or set "
        "early_stopping_patience: 0",
    ),
    "early-stopping-negative": (
        with_stage(early_stopping_patience=-1),
        (),
        "stages[0].early_stopping_patience is -1; use a number of evaluations >= 1, or 0 for no early stopping",
    ),
    "selection-without-dev-file": (
        with_stage(
            training={
                "load_best_model_at_end": True,
                "eval_strategy": "steps",
                "save_strategy": "steps",
                "eval_steps": 1,
            }
        ),
        (),
        "stages[0] (nli): load_best_model_at_end picks the weights on the dev set, but "
        "data_files of mnli has no validation entry (it has ['train']); add `validation: "
        "path/to/dev file`, or turn selection off for it (training: "
        "{load_best_model_at_end: false, eval_strategy: 'no'} and early_stopping_patience: 0)",
    ),
    # ---- tasks, stages, targets
    "unknown-task": (
        experiment(stages=[{"name": "nli", "tasks": ["mnlii"]}]),
        (),
        "stages[0].tasks[0]: unknown task 'mnlii' (did you mean 'mnli', 'xnli', 'mlm'?). Known tasks: <known tasks>. "
        "Add your own with hf_itt.tasks.registry.register_task_file(path) or register_task_dir(path).",
    ),
    "retrieval-task-as-stage": (
        experiment(stages=[{"name": "r", "tasks": ["tatoeba"]}]),
        (),
        "stages[0].tasks[0]: tatoeba is a retrieval task with no training data; use it under targets.tasks",
    ),
    "unknown-target-language": (
        then_target("xnli", languages={"xnli": ["xx"]}),
        (),
        "targets.languages.xnli: xnli has no language 'xx' (it has: <xnli languages>)",
    ),
    "duplicate-stage-names": (
        experiment(stages=[NLI, NLI]),
        (),
        "stages[1].name 'nli' is used twice; stage names must be unique",
    ),
    "stage-without-tasks": (
        experiment(stages=[{"name": "empty"}]),
        (),
        "stages[0] (empty) has no tasks; list at least one, or set `from:`",
    ),
    "experiment-name-with-slash": (
        experiment(experiment="my/exp"),
        (),
        "experiment 'my/exp' may only hold letters, digits, '.', '_' and '-' (it becomes a folder and repo name)",
    ),
    "nothing-to-run": (experiment(stages=[]), (), "the experiment has no stages and no targets.tasks: nothing to run"),
    "data-files-unknown-role": (
        with_stage(tasks=[{"name": "mnli", "data_files": {"trian": "x.jsonl"}}]),
        (),
        "stages[0].tasks[0].data_files: unknown role 'trian' (did you mean 'train'?) (roles: "
        "train, validation, test, dev, val, valid, candidates, labels)",
    ),
    "data-files-a-number": (
        with_stage(tasks=[{"name": "mnli", "data_files": {"train": 5}}]),
        (),
        "config.stages[0].tasks[0].data_files: expected a mapping or a string, got {'train': 5}",
    ),
    # ---- placeholders in paths
    "output-dir-unknown-placeholder": (
        experiment(),
        ("output_dir=<root>/runs/{user}",),
        "output_dir '<root>/runs/{user}' uses the unknown placeholder {user}; it may use {experiment}, {seed}",
    ),
    "output-dir-unbalanced-brace": (
        experiment(),
        ("output_dir=<root>/runs/{experiment",),
        "output_dir '<root>/runs/{experiment' is not a valid template (expected '}' before "
        "end of string); write a placeholder as {name} and a literal brace as {{ or }}",
    ),
    "report-dir-unknown-placeholder": (
        experiment(report_dir="reports/{date}"),
        (),
        "report_dir 'reports/{date}' uses the unknown placeholder {date}; it may use {experiment}, {seed}",
    ),
    "local-root-placeholder": (
        experiment(),
        ("hub.local_root=<root>/hub/{experiment}",),
        "hub.local_root '<root>/hub/{experiment}' uses the placeholder {experiment}, but it "
        "takes none; write the path itself",
    ),
    "data-file-unknown-placeholder": (
        with_stage(tasks=[{"name": "mnli", "data_files": {"train": "{language}/t.jsonl"}}]),
        (),
        "stages[0].tasks[0].data_files.train '{language}/t.jsonl' uses the unknown "
        "placeholder {language}; it may use {lang}, {code}",
    ),
    "repo-template-unknown-field": (
        experiment(hub={"publisher": "local", "repo_template": "{namespace}/{user}-{stage}"}),
        (),
        "hub.repo_template '{namespace}/{user}-{stage}' uses the unknown placeholder "
        "{user}; it may use {experiment}, {hash}, {namespace}, {stage}",
    ),
    # ---- several experiments in one file
    "duplicate-experiment-names": (
        experiment(experiments=[{"experiment": "a"}, {"experiment": "b"}, {"experiment": "a"}]),
        ("output_dir=<root>/runs/{experiment}",),
        "<tmp>/experiment.yaml: experiments[2] is named 'a' like experiments[0]; experiment "
        "names must be unique (each gets its own output folder and Hub repos)",
    ),
    "shared-output-dir": (
        experiment(experiments=FIVE),
        (),
        "output_dir '<root>/run' gives experiments 'baseline' and 'related' of experiment.yaml the "
        "same folder <root>/run; put {experiment} in it (e.g. output_dir=<root>/run/{experiment})",
    ),
    # ---- the command line
    "override-not-key-value": (
        experiment(),
        ("seed",),
        "override 'seed' is not key=value; write e.g. stages.0.training.learning_rate=2e-5",
    ),
    "override-index-out-of-range": (
        experiment(),
        ("stages.5.training.learning_rate=1e-5",),
        "override 'stages.5.training.learning_rate=1e-5': index 5 out of range (the list has 1 items)",
    ),
    "override-malformed-list": (
        then_target("xnli"),
        ("targets.tasks=[xnli,tatoeba",),
        "override 'targets.tasks=[xnli,tatoeba': the value is not a valid YAML list; write it as "
        "[item1,item2] with balanced brackets (quote the whole override for the shell)",
    ),
    "override-into-a-number": (
        experiment(),
        ("seed.value=3",),
        "override 'seed.value=3': seed is 3, not a mapping, so it has no field 'value'; check the dotted key",
    ),
    "override-duplicate-key": (
        experiment(),
        ("evaluation={batch_size: 8, batch_size: 16}",),
        "override 'evaluation={batch_size: 8, batch_size: 16}': key 'batch_size' appears twice in "
        "one mapping (line 1); keep one of them",
    ),
    "unknown-experiment-selected": (
        experiment(experiments=[{"experiment": "a"}]),
        ("--experiments", "b"),
        "--experiments: 'b' not in this file; its experiments: a",
    ),
    # ---- max_length against the model (config.json only; the tiny model has 514 positions = 512 tokens)
    "max-length-above-positions": (
        with_stage(max_length=600),
        (),
        "stages[0] (nli), task mnli: max_length 600 exceeds the 512 tokens the model <model> "
        "can hold (max_position_embeddings 514 in its config.json); set max_length: 512 or "
        "less on the stage or the task",
    ),
    "retrieval-length-above-positions": (
        then_target("tatoeba", languages={"tatoeba": ["de"]}),
        ("evaluation.retrieval_max_length=1024",),
        "targets tatoeba (evaluation.retrieval_max_length): max_length 1024 exceeds the "
        "512 tokens the model <model> can hold (max_position_embeddings 514 in its "
        "config.json); set evaluation.retrieval_max_length: 512 or less",
    ),
}


def expected_message(message: str) -> str:
    """Fill the markers that come from a library's own lists."""
    from transformers.training_args import OptimizerNames

    from hf_itt.tasks.registry import get_task

    return message.replace("<optimizers>", str([name.value for name in OptimizerNames])).replace(
        "<xnli languages>", " ".join(sorted(get_task("xnli").all_languages()))
    )


@pytest.mark.parametrize("config, arguments, message", CASES.values(), ids=CASES.keys())
def test_bad_config(runner, config, arguments, message):
    code, output = runner.run(config, *arguments)
    runner.assert_fails(code, output, expected_message(message))
    runner.assert_stage_intact()


VALIDATE_CASES = {
    "string-max-steps": (with_training(max_steps="two"), "defaults.training.max_steps: expected an integer, got 'two'"),
    "model-not-a-mapping": (
        experiment(model="xlm-roberta-large"),
        "config.model: expected a mapping (key: value), got 'xlm-roberta-large'",
    ),
    "unknown-optimizer": (
        with_training(optim="adamw_bogus"),
        "stages[0] (nli): invalid TrainingArguments: adamw_bogus is not a valid OptimizerNames, "
        "please select one of <optimizers>",
    ),
}


@pytest.mark.parametrize("command", ["validate", "dry-run"])
@pytest.mark.parametrize("config, message", VALIDATE_CASES.values(), ids=VALIDATE_CASES.keys())
def test_validate_and_dry_run_refuse_what_the_run_refuses(runner, command, config, message):
    """`hf-itt validate` and `--dry-run` run the same checks (a run would crash after loading data)."""
    path = runner.config_file(config)
    argv = ["validate", str(path)] if command == "validate" else ["run", "--config", str(path), "--dry-run"]
    code, output = runner.call(argv)
    runner.assert_fails(code, output, expected_message(message))
