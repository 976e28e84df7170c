"""Compute estimate of a stage graph: tokens x FLOPs per token, in GPU-hours of a named GPU.

Training a stage processes examples x epochs x mean tokens per example; a transformer costs about
6 x parameters FLOPs per trained token (forward 2N + backward 4N) and 2 x parameters per evaluated
token. GPU-hours = FLOPs / (the GPU's dense bf16 peak x utilisation) / 3600.

Where the numbers come from, per task (each stage's line says which applied):
- rows: the local training files when the experiment names them and they are readable; otherwise the
  fact sheet (``fact_sheet.py``, from TASKS.md); otherwise unknown (the stage is left out of totals);
- tokens per row: measured by tokenizing a sample of the local rows with hf_itt's own preprocessing
  (QA windows, every choice of a multiple-choice row), when a tokenizer is available offline (a local
  model folder or the Hugging Face cache); otherwise the max_length bound (times the choices), an
  upper estimate with dynamic padding;
- evaluation: fact-sheet rows per language and split, at the max_length bound.
Not counted: dev evaluations during training, retrieval candidates without a fact-sheet size, heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from hf_itt.errors import HfIttError
from hf_itt.pipeline import fact_sheet
from hf_itt.pipeline.graph import StageGraph, StageNode
from hf_itt.pipeline.stage_data import (
    first_rows,
    fit_to_target,
    load_rows,
    resolve_data_files,
)
from hf_itt.tasks.loading import load_split
from hf_itt.tasks.registry import get_task

# Dense bf16 peak of the GPUs a plan can be priced on (vendor data sheets, without sparsity).
GPUS = {"a100": ("NVIDIA A100", 312e12), "h100": ("NVIDIA H100 SXM", 989e12)}
DEFAULT_UTILIZATION = 0.4
TRAIN_FLOPS_PER_PARAM = 6
EVAL_FLOPS_PER_PARAM = 2

# config.json of Hub encoders, for planning without a download (values of the public model configs).
KNOWN_ENCODERS = {
    "xlm-roberta-large": {
        "model_type": "xlm-roberta",
        "vocab_size": 250_002,
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
    },
    "xlm-roberta-base": {
        "model_type": "xlm-roberta",
        "vocab_size": 250_002,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
    },
}


@dataclass
class TaskSize:
    rows: int | None
    rows_source: str
    features_per_row: float = 1.0
    tokens_per_feature: float | None = None
    tokens_source: str = ""
    bound: bool = False  # tokens are the max_length bound, not measured

    def describe(self, task: str) -> str:
        rows = (
            f"{self.rows:,} rows ({self.rows_source})"
            if self.rows is not None
            else f"rows unknown ({self.rows_source})"
        )
        return f"{task} {rows} x {self.tokens_source}"


@dataclass
class NodeCost:
    train_tokens: float = 0.0
    eval_tokens: float = 0.0
    unknown: list[str] = field(default_factory=list)  # what could not be sized (left out)
    bound: bool = False  # some tokens are max_length bounds
    measured: bool = False  # some tokens were measured on local rows
    sources: list[str] = field(default_factory=list)  # where rows and tokens came from

    def flops(self, parameters: int, train: bool = True, evaluate: bool = True) -> float:
        return parameters * (
            TRAIN_FLOPS_PER_PARAM * self.train_tokens * train + EVAL_FLOPS_PER_PARAM * self.eval_tokens * evaluate
        )


def gpu_hours(flops: float, gpu: str, utilization: float) -> float:
    return flops / (GPUS[gpu][1] * utilization) / 3600


def count_parameters(name_or_path: str, revision: str | None = None) -> tuple[int | None, str]:
    """Encoder parameters from its config (local folder, HF cache or ``KNOWN_ENCODERS``), built on the meta
    device so nothing is allocated or downloaded."""
    import torch
    from transformers import AutoConfig, AutoModel

    try:
        config, source = (
            AutoConfig.from_pretrained(name_or_path, revision=revision, local_files_only=True),
            "config.json",
        )
    except (OSError, ValueError):
        known = KNOWN_ENCODERS.get(name_or_path.split("/")[-1].lower())
        if known is None:
            return None, f"unknown: no config of {name_or_path} offline (give --parameters)"
        config, source = AutoConfig.for_model(**known), "its published config"
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters()), source


class ComputeModel:
    """Sizes each node of a graph; caches task sizes and tokenizers across the grid."""

    def __init__(self, sample_rows: int = 1000):
        self.sample_rows = sample_rows
        self._sizes: dict[tuple, TaskSize] = {}
        self._tokenizers: dict[str, object] = {}

    def node_cost(self, node: StageNode, graph: StageGraph) -> NodeCost:
        cost = NodeCost()
        if node.kind in ("itt", "target"):
            self.add_training(cost, node, graph.world_size)
        if node.kind in ("target", "eval"):
            self.add_evaluation(cost, node)
        return cost

    # ---- training -------------------------------------------------------------------------------
    def add_training(self, cost: NodeCost, node: StageNode, world_size: int) -> None:
        for phase in node.job.phases():  # a phased target trains each phase in full, one after another
            self.add_phase_training(cost, replace(node.job, tasks=phase.tasks), node.run.config, world_size)

    def add_phase_training(self, cost: NodeCost, job, config, world_size: int) -> None:
        sizes = {plan.head: self.task_size(plan, job, config) for plan in job.tasks}
        for plan in job.tasks:
            size = sizes[plan.head]
            cost.sources.append(size.describe(plan.source_spec.name))
            cost.bound |= size.bound
            cost.measured |= not size.bound
        unknown = [plan.source_spec.name for plan in job.tasks if sizes[plan.head].rows is None]
        if unknown:
            cost.unknown.append(f"training rows of {', '.join(unknown)}")
            return
        features = {head: max(1, round(size.rows * size.features_per_row)) for head, size in sizes.items()}
        total, probabilities = trained_features(job, features, world_size)
        cost.train_tokens += total * sum(probabilities[head] * sizes[head].tokens_per_feature for head in sizes)

    def task_size(self, plan, job, config) -> TaskSize:
        key = (
            plan.source_spec.name,
            plan.head,
            repr(plan.data_files),
            plan.max_train,
            plan.max_length,
            config.model.tokenizer or config.model.name_or_path,
        )
        if key not in self._sizes:
            self._sizes[key] = self.measure(plan, job, config)
        return self._sizes[key]

    def measure(self, plan, job, config) -> TaskSize:
        spec, length = plan.spec, plan.max_length or plan.spec.max_length
        rows = local_rows(plan)
        if rows is None:
            count, source = fact_sheet.train_rows(plan.source_spec.name)
            if count is not None and plan.max_train is not None:
                count = min(count, plan.max_train)
            size = TaskSize(count, source)
        else:
            size = TaskSize(len(rows[0] if isinstance(rows, tuple) else rows), "local data")
        tokenizer = self.tokenizer(config) if rows is not None else None
        if tokenizer is None:
            size.tokens_per_feature, size.bound = float(length * (spec.num_choices or 1)), True
            choices = f" x {spec.num_choices} choices" if spec.num_choices else ""
            size.tokens_source = f"<={length}{choices} tok (max_length bound)"
            return size
        from hf_itt.task_types.features import preprocess  # defers datasets

        sample = fit_to_target(first_rows(rows, self.sample_rows), plan.source_spec, spec)
        features = preprocess(
            sample,
            spec.task_type.training_spec(plan.source_spec, spec),
            tokenizer,
            split_role="train",
            max_length=length,
        )
        tokens = sum(token_count(ids) for ids in features["input_ids"])
        size.features_per_row = len(features) / max(1, len(sample))
        size.tokens_per_feature = tokens / max(1, len(features))
        per_row = size.tokens_per_feature * size.features_per_row
        size.tokens_source = f"{per_row:.0f} tok (measured on {len(sample):,} rows)"
        return size

    def tokenizer(self, config):
        """The experiment's tokenizer if it loads without a download (None otherwise)."""
        name = config.model.tokenizer or config.model.name_or_path
        if name not in self._tokenizers:
            from transformers import AutoTokenizer

            try:
                self._tokenizers[name] = AutoTokenizer.from_pretrained(
                    name, revision=config.model.revision, local_files_only=True
                )
            except (OSError, ValueError):
                self._tokenizers[name] = None
        return self._tokenizers[name]

    # ---- evaluation -----------------------------------------------------------------------------
    def add_evaluation(self, cost: NodeCost, node: StageNode) -> None:

        job, evaluation = node.job, node.run.config.evaluation
        spec = get_task(job.target)
        length = evaluation.retrieval_max_length if job.is_retrieval else (job.max_length or spec.max_length)
        per_row = length * (spec.num_choices or 1) * fact_sheet.SEQUENCES_PER_ROW.get(spec.name, 1)
        rows_total, source = 0, "fact sheet"
        for split in evaluation.splits:
            for lang in job.languages or spec.languages:
                if not spec.has_split(split, lang):
                    continue
                rows, source = self.eval_rows(node, spec, split, lang)
                if rows is None:
                    cost.unknown.append(f"evaluation rows of {spec.name} {split} ({source})")
                    break
                if evaluation.max_eval_examples is not None:
                    rows = min(rows, evaluation.max_eval_examples)
                rows_total += rows
        if rows_total:
            cost.eval_tokens += rows_total * per_row
            cost.bound = True
            cost.sources.append(f"eval {spec.name} {rows_total:,} rows ({source}) x <={per_row} tok (max_length bound)")
        cost.unknown = list(dict.fromkeys(cost.unknown))

    @staticmethod
    def eval_rows(node: StageNode, spec, split: str, lang: str) -> tuple[int | None, str]:
        """Rows of the local evaluation files when the experiment names them, else the fact sheet's."""

        config = node.run.config
        data_files = resolve_data_files(config, config.targets.data_files.get(spec.name))
        if data_files is not None and not spec.task_type.candidate_pool:  # a candidate pool: ranked too
            try:
                return len(load_split(spec, split, lang=lang, data_files=data_files)), "local data"
            except (HfIttError, OSError):
                pass
        return fact_sheet.eval_rows(spec.name, split, lang)


def local_rows(plan):
    """The training rows of ``plan`` when its data files are local and readable (None otherwise)."""
    if plan.data_files is None:
        return None

    try:
        return load_rows(plan.source_spec, "train", plan.data_files, None, plan.max_train)
    except (HfIttError, OSError):  # OSError: a missing labels file (tasks.loading reads it unguarded)
        return None


def token_count(ids) -> int:
    return sum(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids)


def trained_features(job, features: dict[str, int], world_size: int) -> tuple[float, dict[str, float]]:
    """Features the stage trains on in total, and the share of each task (the real sampler's probabilities
    averaged over epochs), as MultiTaskTrainer's batch sampler draws them."""
    from hf_itt.pipeline.train import sampler_options  # defers torch, transformers
    from hf_itt.training.sampling import make_sampler  # defers torch

    args = training_values(job.training)
    batch = args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] * max(1, world_size)
    updates_per_epoch = max(1, math.ceil(sum(features.values()) / batch))
    if args["max_steps"] > 0:
        total, epochs = args["max_steps"] * batch, math.ceil(args["max_steps"] / updates_per_epoch)
    else:
        total, epochs = updates_per_epoch * batch * args["num_train_epochs"], math.ceil(args["num_train_epochs"])
    sampler = make_sampler(
        job.sampling.get("strategy", "proportional") if job.sampling else "uniform", features, **sampler_options(job)
    )
    shares = [sampler.probabilities(epoch, max(1, epochs)) for epoch in range(max(1, epochs))]
    return total, {head: sum(share[head] for share in shares) / len(shares) for head in features}


def training_values(training: dict) -> dict:
    from transformers import TrainingArguments

    defaults = {
        f.name: f.default
        for f in fields(TrainingArguments)
        if f.name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "num_train_epochs")
    }
    return {**defaults, **{key: training[key] for key in defaults if key in training}}
