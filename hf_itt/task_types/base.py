"""``TaskType``: everything that depends on what kind of task a task is, in one class per kind.

A task type owns, for its kind of task:

* rows      the canonical columns of its rows (``columns``), the ones a spec must map
            (``required_columns``), their ``datasets`` features and the conversion of one source row
            (``convert_row``);
* features  tokenization into model features (``tokenize`` with its output ``feature_columns``);
* batches   the collator that pads a batch (``collator``) and the keys the model receives;
* model     the head on the shared encoder (``build_head``) and how a batch runs through both
            (``forward``);
* outputs   decoding predictions and scoring them with the official metric (``score``), the dev
            metric during training, and the collapse check of the health alarm.

Types are registered once (``hf_itt.task_types.register``); the rest of hf_itt asks the registry and
never branches on a type's name. A new type is one module: subclass ``TaskType``, fill in what
applies, ``register(MyType())``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from hf_itt.errors import DataError, TaskError

ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
FALLBACK_MAX_LENGTH = 256
MIN_MAX_LENGTH = 8  # room for special tokens plus a few real ones


@dataclass
class ScoringTools:
    """What a type's ``score`` gets besides the rows: ways to run the model, and evaluation settings.

    ``predict(spec, rows)`` tokenizes canonical rows (evaluation features) and runs the task's head
    over them: ``(features, outputs)``, outputs per feature in order. ``embed(texts, max_length=None)``
    gives the encoder's sentence embeddings (mean-pooled hidden states of the retrieval layer). The driver (``hf_itt.evaluation``) supplies both, so task types
    never import the evaluation layer.
    """

    tokenizer: Any
    predict: Callable[..., dict]
    embed: Callable[..., Any]
    has_head: bool = False  # the model carries a trained head for the task being scored
    bucc_threshold: float | None = None  # validation threshold reused on test
    options: dict = field(default_factory=dict)  # type-specific evaluation options (e.g. BUCC duplicates)
    cache: dict = field(default_factory=dict)  # shared across languages (e.g. an answer-retrieval pool)


class TaskType:
    """Base class of a task type; subclasses set the class attributes and override what applies."""

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]  # canonical row columns
    required_columns: ClassVar[tuple[str, ...]] = ()  # a spec's `columns` must map these
    default_metric: ClassVar[str | None] = None  # None: no zero-shot scoring (e.g. MLM)
    default_max_length: ClassVar[int] = FALLBACK_MAX_LENGTH
    labelled: ClassVar[bool] = False  # rows carry label ids of spec.labels, mapped by NAME from sources
    label_column: ClassVar[str | None] = None  # the canonical column holding labels
    trainable: ClassVar[bool] = True  # has a head and training data
    model_inputs: ClassVar[tuple[str, ...]] = ENCODER_INPUTS + ("labels", "label")  # keys passed to the model
    label_names: ClassVar[tuple[str, ...]] = ("labels",)  # Trainer.label_names for the evaluation loss
    token_level_outputs: ClassVar[bool] = False  # logits per token (cut to each feature's length)
    text_file_format: ClassVar[str | None] = None  # how a .txt file is read: "lines" or "tagged"
    candidate_pool: ClassVar[bool] = False  # evaluation data = queries + a pool of candidates to rank
    scores_without_head: ClassVar[bool] = False  # a checkpoint without the task's head can still be scored
    hub_task: ClassVar[str | None] = None  # the Hub's task / pipeline tag of a model fine-tuned on it (model cards)

    # ---- spec and rows --------------------------------------------------------------------------
    def check_spec(self, spec, where: str) -> None:
        """Type-specific checks of a task spec (called after the generic ones)."""

    def head_size(self, spec) -> int | None:
        """Output size of the head: number of labels or choices; None when the head has no such size."""
        return None

    def row_features(self, spec) -> dict:
        """``datasets`` feature types of the canonical rows (a dict for ``datasets.Features``)."""
        from datasets import Value

        return {name: Value("string") for name in self.columns}

    def expected_columns(self, present: set) -> tuple[str, ...]:
        """The canonical columns rows about to be tokenized must have (``present``: the columns they have)."""
        return self.columns

    def convert_row(self, reader, row: dict, number: int) -> dict | None:
        """A source row as a canonical row (None drops it). ``reader`` is a ``tasks.rows.RowReader``."""
        raise NotImplementedError(f"task type {self.name!r} has no row converter; give the task a `converter`")

    def adapt_training_rows(self, rows, source_spec, target_spec):
        """Rows of ``source_spec`` made fit for ``target_spec``'s head (e.g. labels re-indexed by name).
        The default accepts rows of the same type unchanged."""
        if source_spec.type != target_spec.type:
            raise DataError(
                f"training task {source_spec.name} is a {source_spec.type} task but target "
                f"{target_spec.name} is {target_spec.type}; they cannot share a head"
            )
        return rows

    def training_spec(self, source_spec, target_spec):
        """The spec whose settings tokenize ``source_spec``'s (adapted) rows for ``target_spec``'s head."""
        return target_spec

    # ---- features -------------------------------------------------------------------------------
    def feature_columns(self, train: bool) -> dict:
        """Output columns of ``tokenize`` (declared so every batch of ``Dataset.map`` has one schema)."""
        from datasets import List, Value

        return {"input_ids": List(Value("int32")), "attention_mask": List(Value("int8"))}

    def describe_length(self, spec, max_length: int) -> str:
        """The sequence length of the task's features in words (the protocol table of ``--dry-run``)."""
        return str(max_length)

    def feature_settings(self, spec, tokenizer, max_length: int, doc_stride: int | None) -> dict:
        """Extra keyword arguments of ``tokenize`` (e.g. QA windows)."""
        return {}

    takes_indices: ClassVar[bool] = False  # whether ``tokenize`` receives the batch's row indices

    def tokenize(self, batch: dict, *args, tokenizer, **settings) -> dict:
        raise NotImplementedError(f"task type {self.name!r} cannot be tokenized")

    # ---- batches and model ----------------------------------------------------------------------
    def collator(self, tokenizer, *, pad_to_multiple_of: int | None = None, **options):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    def prepare_features(self, features: list[dict]) -> list[dict]:
        """Hook before collation (e.g. the MLM mask seed); default: keep only the model's inputs."""
        return [{key: feature[key] for key in self.model_inputs if key in feature} for feature in features]

    def normalize_head(self, name: str, labels: list[str] | None, num_labels: int | None) -> tuple:
        """(num_labels, labels) as stored in the model config for a head of this type."""
        return None, None

    def build_head(self, num_labels: int | None, encoder_config):
        raise TaskError(f"task type {self.name!r} has no head; it cannot be trained")

    def forward(self, encode: Callable, head, inputs: dict, targets: dict) -> dict:
        """Run the encoder (``encode(**inputs)`` -> last hidden states) and the head on one batch."""
        return head(encode(**inputs), **targets)

    # ---- outputs --------------------------------------------------------------------------------
    def score(self, spec, data, ctx: ScoringTools, lang: str) -> dict[str, float]:
        """Official scores (percent) of one language split: ``data`` holds its rows (``candidate_pool``
        types: a (queries, candidates) pair), as ``hf_itt.tasks.loading.load_task_data`` returns it. Return
        the score dict, or ``hf_itt.predictions.ScoredSplit(scores, predictions)`` so that the predictions
        are saved for ``hf-itt export-submission``."""
        raise DataError(f"task {spec.name}: no zero-shot scorer for type {self.name!r}")

    # What the Trainer's evaluation on the dev set reports besides the loss (``eval_<task>_<name>``), and
    # the one of them that ``eval_average`` averages over tasks; () / None = the loss only
    dev_metric_names: ClassVar[tuple[str, ...]] = ()
    main_dev_metric: ClassVar[str | None] = None

    def dev_metrics(self, spec, dev_features, dev_rows: Callable, tokenizer, max_length: int | None):
        """The ``compute_metrics`` of the task's dev set (training-format ``dev_features``; ``dev_rows()``
        loads its canonical rows), or None for the loss only: the Trainer then gathers no predictions,
        which matters for MLM's vocabulary-sized logits."""
        return None

    def collapse_finding(self, outputs: dict, rows: list[dict], labels, tokenizer, limits):
        """A ``metrics.collapse.Finding`` when the dev predictions collapsed, else None."""
        return None

    def __repr__(self) -> str:
        return f"<task type {self.name}>"


def as_int(value) -> int | None:
    """An integer label or offset from a source value (bool, int, integral float, digit string), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
