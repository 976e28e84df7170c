"""Score one language split of one task: the driver side of ``TaskType.score``.

``ScoringContext`` holds the model, tokenizer and evaluation settings; ``score_split`` hands the task's
type the tools it scores with (``ScoringTools``: run the head over rows, embed sentences) and returns
``{metric: percent}``. ``hf_itt.evaluate`` loops over tasks, languages and splits around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hf_itt.errors import CheckpointError, DataError
from hf_itt.evaluation.predict import predict_features
from hf_itt.metrics.retrieval_search import default_retrieval_layer, embed_sentences
from hf_itt.task_types import ScoringTools
from hf_itt.task_types.features import preprocess


@dataclass
class ScoringContext:
    """What scoring needs besides the rows: the model, tokenizer and evaluation settings."""

    model: object  # a MultiTaskModel (heads) — or an encoder for retrieval
    tokenizer: object
    batch_size: int = 64
    retrieval_layer: int | None = None
    retrieval_max_length: int = 512
    bucc_threshold: float | None = None  # validation threshold reused on test
    show_progress: bool = True
    options: dict = field(default_factory=dict)  # type-specific evaluation options
    candidate_cache: dict = field(default_factory=dict)  # answer-retrieval pools shared by languages


def require_head(model, task: str) -> None:
    heads = list(getattr(model.config, "tasks", {}) or {})
    if task not in heads:
        raise CheckpointError(
            f"the checkpoint has no head for task {task!r} (heads: {heads or 'none'}); "
            f"fine-tune it first: add {task} to targets.tasks and run the experiment"
        )


def score_split(spec, data, ctx: ScoringContext, lang: str, desc: str) -> dict[str, float]:
    """Official scores of one language split; ``data`` as ``hf_itt.tasks.loading.load_task_data`` gives it."""
    if len(data) == 0:
        raise DataError(f"task {spec.name}: the {lang} split is empty; check its data_files or Hub config")
    has_head = spec.name in (getattr(ctx.model.config, "tasks", None) or {})
    if spec.task_type.trainable and not spec.task_type.scores_without_head:
        require_head(ctx.model, spec.name)
    tools = ScoringTools(
        tokenizer=ctx.tokenizer,
        predict=_predictor(ctx, desc),
        embed=_embedder(ctx, desc),
        has_head=has_head,
        bucc_threshold=ctx.bucc_threshold,
        options=ctx.options,
        cache=ctx.candidate_cache,
    )
    return spec.task_type.score(spec, data, tools, lang)


def _predictor(ctx: ScoringContext, desc: str):
    def predict(spec, rows):
        features = preprocess(rows, spec, ctx.tokenizer, split_role="eval")
        outputs = predict_features(
            ctx.model, ctx.tokenizer, features, spec.name, ctx.batch_size, desc if ctx.show_progress else None
        )
        return features, outputs

    return predict


def retrieval_encoder(model):
    """The bare encoder: a MultiTaskModel's shared encoder, or the model itself."""
    return getattr(model, "encoder", None) if hasattr(model.config, "tasks") else model


def _embedder(ctx: ScoringContext, desc: str):
    def embed(sentences, max_length=None):
        encoder = retrieval_encoder(ctx.model)
        layer = ctx.retrieval_layer if ctx.retrieval_layer is not None else default_retrieval_layer(encoder.config)
        return embed_sentences(
            encoder,
            ctx.tokenizer,
            list(sentences),
            layer=layer,
            batch_size=ctx.batch_size,
            max_length=max_length or ctx.retrieval_max_length,
            show_progress=ctx.show_progress,
        )

    return embed
