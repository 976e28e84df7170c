"""Experiment configuration: one YAML file per experiment, deltas over these defaults.

The dataclasses below ARE the schema: ``docs/reference.md`` is generated from them
(``python scripts/docgen.py``), and ``hf_itt.config.loading.load_experiment`` rejects any key they do
not declare with the nearest valid names. Everything is validated before a model is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_itt.config.health import HealthConfig
from hf_itt.task_samplers import SAMPLERS

SAMPLING_STRATEGIES = tuple(SAMPLERS)  # hf_itt.task_samplers: the one registry of strategies
PUBLISHERS = ("local", "hub", "none")
REFERENCE_PATTERN = re.compile(r"^[^@\s]+(@[^@\s]+)?$")
# Dev rows a stage evaluates on while it trains (eval_strategy / load_best_model_at_end), per task.
DEFAULT_MAX_DEV_EXAMPLES = 500
EARLY_STOPPING_HELP = (
    "Stop training after this many evaluations in a row without a new best metric_for_best_model "
    "(jiant's no_improvements_for_n_evals); needs load_best_model_at_end. 0: off; null: the "
    "preset's value (off without one)."
)


@dataclass
class ModelConfig:
    """The pretrained encoder every experiment starts from."""

    name_or_path: str = field(
        default="xlm-roberta-large", metadata={"help": "Hub id or local folder of the base encoder."}
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer id/folder if not the model's."})
    freeze: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Encoder parameter-name prefixes kept frozen in every stage and target (no gradient, no optimizer "
            "state), e.g. [embeddings., encoder.layer.0.]; part of every stage hash. Each must match a parameter."
        },
    )


@dataclass
class TaskEntry:
    """One task of a stage: a registered task name plus optional per-experiment changes."""

    name: str = field(default="", metadata={"help": "Registered task name (see docs/tasks.md)."})
    lang: str | None = field(
        default=None, metadata={"help": "Language tag of the training data, e.g. 'de' for machine-translated MNLI."}
    )
    data_files: dict[str, str | list[str]] | str | None = field(
        default=None,
        metadata={"help": "Local files replacing the Hub source: a path, or {train: path, validation: path}."},
    )
    max_train_examples: int | None = field(default=None, metadata={"help": "Keep the first N training rows."})
    max_eval_examples: int | None = field(
        default=DEFAULT_MAX_DEV_EXAMPLES,
        metadata={
            "help": "Dev rows evaluated during training (eval_strategy, load_best_model_at_end): the first N; "
            "null: all of them."
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Max tokens of this task's features; default: the stage's max_length, else the task's own "
            "(its spec: 384 for QA, 128 for XCOPA, 256 for most)."
        },
    )
    weight: float | None = field(default=None, metadata={"help": "Sampling weight (strategy 'weights')."})


@dataclass
class SamplingConfig:
    """How a joint stage picks the task of each step (see docs/concepts.md for the formulas)."""

    strategy: str = field(default="proportional", metadata={"help": f"One of {', '.join(SAMPLING_STRATEGIES)}."})
    temperature: float = field(default=2.0, metadata={"help": "T of 'temperature': p ~ n^(1/T)."})
    cap: int | None = field(default=None, metadata={"help": "Examples cap of 'capped': p ~ min(n, cap)."})
    anneal_alpha_end: float = field(
        default=0.2,
        metadata={"help": "'annealed': exponent alpha of p ~ n^alpha moves from 1 to this value over training."},
    )


@dataclass
class StageConfig:
    """One intermediate-task stage: one Trainer run over one task or a joint mixture."""

    name: str = field(default="", metadata={"help": "Stage name (folder and repo name part)."})
    tasks: list[TaskEntry] = field(
        default_factory=list,
        metadata={"help": "Task names, or mappings with name/lang/data_files/max_train_examples/weight."},
    )
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    training: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "TrainingArguments fields for this stage, over defaults.training and the preset."},
    )
    preset: str | None = field(default=None, metadata={"help": "Named hyper-parameter preset."})
    deepspeed: str | None = field(
        default=None, metadata={"help": "DeepSpeed config for this stage, e.g. ds_configs/zero2.json."}
    )
    from_: str | None = field(
        default=None,
        metadata={"yaml": "from", "help": "Use a published checkpoint (repo@revision or folder) instead of training."},
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Max tokens of every task of the stage; default: each task's own (its spec: 384 for QA, 256 for "
            "most). A preset never sets it."
        },
    )
    early_stopping_patience: int | None = field(default=None, metadata={"help": EARLY_STOPPING_HELP})


@dataclass
class TargetsConfig:
    """Target tasks: fine-tune on each task's English training set, then evaluate zero-shot."""

    tasks: list[str] = field(default_factory=list, metadata={"help": "Target task names (xnli, tatoeba, ...)."})
    languages: dict[str, list[str]] = field(
        default_factory=dict, metadata={"help": "Per-task language subset (default: every language of the task)."}
    )
    data_files: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Local files per task name, {task: path or {role: path}}; paths may hold {lang}. Key the "
            "English training task (e.g. mnli) for fine-tuning data and the target (e.g. xnli) for "
            "evaluation data."
        },
    )
    training: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "TrainingArguments for target fine-tuning, over defaults.training and the preset."},
    )
    per_task_training: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata={"help": "Per-task TrainingArguments over `training` (e.g. epochs for udpos)."}
    )
    preset: str | None = field(default=None, metadata={"help": "Named preset for target fine-tuning."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Cap English training rows."})
    max_length: dict[str, int] = field(
        default_factory=dict,
        metadata={"help": "Per-task max tokens of fine-tuning, {task: N}; default: the task's own (its spec)."},
    )
    max_eval_examples: int | None = field(
        default=DEFAULT_MAX_DEV_EXAMPLES,
        metadata={
            "help": "English dev rows evaluated during fine-tuning (eval_strategy, load_best_model_at_end): the "
            "first N; null: all of them."
        },
    )
    deepspeed: str | None = field(default=None, metadata={"help": "DeepSpeed config for target fine-tuning."})
    early_stopping_patience: int | None = field(default=None, metadata={"help": EARLY_STOPPING_HELP})


@dataclass
class EvaluationConfig:
    """Zero-shot evaluation settings."""

    splits: list[str] = field(
        default_factory=lambda: ["validation"],
        metadata={"help": "Splits to score in every language: validation and/or test."},
    )
    batch_size: int = field(default=64, metadata={"help": "Sentences per forward pass (sorted by length)."})
    retrieval_layer: int | None = field(
        default=None,
        metadata={"help": "hidden_states index for BUCC/Tatoeba; default = 14/24 of the depth (14 for XLM-R Large)."},
    )
    retrieval_max_length: int = field(default=512, metadata={"help": "Max tokens per retrieval sentence."})
    max_eval_examples: int | None = field(default=None, metadata={"help": "Cap rows per language (smoke runs)."})
    save_predictions: bool = field(
        default=True,
        metadata={"help": "Write per-language prediction files next to the results (for `hf-itt export-submission`)."},
    )
    bucc_duplicates: str = field(
        default="drop",
        metadata={
            "help": "BUCC sentences occurring more than once in a corpus: drop = never predicted (XTREME's "
            "pipeline); keep = a pair for every id carrying the text."
        },
    )
    bucc_allow_gold_only: bool = field(
        default=False,
        metadata={
            "help": "Score BUCC rows that hold gold pairs only (the Hub copy, no distractors) instead of refusing."
        },
    )
    bucc_test_oracle: bool = field(
        default=False,
        metadata={
            "help": "Score BUCC test without a validation threshold by optimising it on the test gold (an oracle; "
            "recorded as threshold source test-oracle)."
        },
    )


@dataclass
class HubConfig:
    """Where finished stages are published and looked up for reuse."""

    publisher: str = field(default="local", metadata={"help": f"One of {', '.join(PUBLISHERS)}."})
    local_root: str = field(
        default="hub_local",
        metadata={
            "help": "Root folder of the local publisher; a relative path is resolved like data paths (next to the YAML)."
        },
    )
    namespace: str = field(default="local", metadata={"help": "Hub user or organisation."})
    repo_template: str = field(
        default="{namespace}/{experiment}-{stage}",
        metadata={"help": "Repo id template; fields: namespace, experiment, stage, hash."},
    )
    private: bool = field(default=True, metadata={"help": "Create Hub repos as private."})
    license: str = field(
        default="other",
        metadata={
            "help": "license of the model cards (a Hub license id such as mit, XLM-R's); 'other' until you set it "
            "after checking the base model's and the datasets' licenses."
        },
    )
    reuse: bool = field(
        default=True,
        metadata={
            "help": "Reuse stages with the same hash found in the local index or published; false: only this run's own."
        },
    )


@dataclass
class DefaultsConfig:
    """Values every stage and target inherits."""

    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "TrainingArguments fields shared by every stage and target."}
    )
    deepspeed: str | None = field(default=None, metadata={"help": "DeepSpeed config for every stage."})
    group_by_length: bool = field(
        default=True,
        metadata={
            "help": "Presets batch examples of similar length together (train_sampling_strategy: group_by_length); "
            "false: presets use random batches. A stage's own training.train_sampling_strategy wins."
        },
    )


@dataclass
class ExperimentConfig:
    """A whole experiment: ITT stages in order, then target fine-tuning and zero-shot evaluation."""

    experiment: str = field(default="", metadata={"help": "Experiment name (output folder, repo names)."})
    seed: int = field(default=42, metadata={"help": "Seed of every stage (each stage hash includes it)."})
    benchmarks: list[str] = field(
        default_factory=lambda: ["xtreme", "xtreme_r"],
        metadata={
            "help": "Benchmarks the experiment reports (xtreme, xtreme_r): each target is evaluated in the languages "
            "of those it belongs to (targets.languages narrows a task); a language without data is "
            "recorded as missing, by name."
        },
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    output_dir: str = field(
        default="runs/{experiment}/seed{seed}",
        metadata={
            "help": "Run folder, relative to the working directory as the Trainer's output_dir is (data paths are "
            "relative to the YAML); fields: experiment, seed."
        },
    )
    report_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where run_itt.py writes the report over all experiments of the file (default: `<run folder>/report`)."
        },
    )
    task_dirs: list[str] = field(default_factory=list, metadata={"help": "Folders of extra task spec YAMLs."})
    prepare: str | None = field(
        default=None,
        metadata={
            "help": "'module:function' called with the config before anything is planned, to build data or a "
            "base model (the offline demo builds its synthetic world and tiny encoder this way)."
        },
    )
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    stages: list[StageConfig] = field(default_factory=list)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    source_file: str | None = field(default=None, metadata={"internal": True})

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(experiment=self.experiment, seed=self.seed))

    def resolve_path(self, path: str | None) -> str | None:
        """Relative data/config paths are relative to the YAML file that names them."""
        if path is None or Path(path).is_absolute() or self.source_file is None:
            return path
        if Path(path).exists() and not (Path(self.source_file).parent / path).exists():
            return path  # an existing path relative to the working directory
        return str(Path(self.source_file).parent / path)
