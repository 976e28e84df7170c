"""Score one language split of one task with its official metric.

Each scorer takes the loaded canonical rows of one language and returns ``{metric: percent}``;
``evaluation.py`` loops over tasks, languages and splits around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hf_itt.metrics import scoring as metrics
from hf_itt.errors import CheckpointError, DataError
from hf_itt.task_types.qa_decoding import decode_qa, decode_tagging_predictions
from hf_itt.evaluation.predict import predict_features
from hf_itt.task_types.features import preprocess
from hf_itt.tasks import schema


@dataclass
class ScoringContext:
    """What every scorer needs besides the rows: the model, tokenizer and evaluation settings."""

    model: object              # a MultiTaskModel (heads) — or an encoder for retrieval
    tokenizer: object
    batch_size: int = 64
    retrieval_layer: int | None = None
    retrieval_max_length: int = 512
    bucc_threshold: float | None = None   # validation threshold reused on test
    show_progress: bool = True
    candidate_cache: dict = field(default_factory=dict)  # answer-retrieval pools shared by languages


def require_head(model, task: str) -> None:
    heads = list(getattr(model.config, "tasks", {}) or {})
    if task not in heads:
        raise CheckpointError(f"the checkpoint has no head for task {task!r} (heads: {heads or 'none'}); "
                              f"fine-tune it first: add {task} to targets.tasks and run the experiment")


def score_split(spec, rows, ctx: ScoringContext, lang: str, desc: str) -> dict[str, float]:
    if len(rows) == 0:
        raise DataError(f"task {spec.name}: the {lang} split is empty; check its data_files or Hub config")
    if spec.type == schema.RETRIEVAL:
        return score_retrieval(spec, rows, ctx, desc)
    require_head(ctx.model, spec.name)
    if spec.type in (schema.CLASSIFICATION, schema.MULTIPLE_CHOICE):
        return score_classification(spec, rows, ctx, desc)
    if spec.type == schema.TAGGING:
        return score_tagging(spec, rows, ctx, desc)
    if spec.type == schema.EXTRACTIVE_QA:
        return score_qa(spec, rows, ctx, lang, desc)
    raise DataError(f"task {spec.name}: no zero-shot scorer for type {spec.type!r}")


def _predict(spec, rows, ctx: ScoringContext, desc: str):
    features = preprocess(rows, spec, ctx.tokenizer, split_role="eval")
    outputs = predict_features(ctx.model, ctx.tokenizer, features, spec.name, ctx.batch_size,
                               desc if ctx.show_progress else None)
    return features, outputs


def score_classification(spec, rows, ctx, desc) -> dict[str, float]:
    _, outputs = _predict(spec, rows, ctx, desc)
    predictions = np.argmax(np.stack(outputs["logits"]), axis=-1).tolist()
    return metrics.score(spec.metric, predictions, list(rows["label"]))


def score_tagging(spec, rows, ctx, desc) -> dict[str, float]:
    features, outputs = _predict(spec, rows, ctx, desc)
    predicted = decode_tagging_predictions(features, outputs["logits"], len(rows))
    names = spec.labels
    pred_tags = [[names[i] for i in sentence] for sentence in predicted]
    gold_tags = [[names[i] for i in sentence] for sentence in rows["tags"]]
    return metrics.score(spec.metric, pred_tags, gold_tags)


def score_qa(spec, rows, ctx, lang, desc) -> dict[str, float]:
    features, outputs = _predict(spec, rows, ctx, desc)
    decoded = decode_qa(rows, features, outputs["start_logits"], outputs["end_logits"],
                        version_2=spec.metric == "squad_v2")
    references = {row_id: answers["text"] for row_id, answers in zip(rows["id"], rows["answers"])}
    if spec.metric == "mlqa":
        return metrics.score("mlqa", decoded.predictions, references, lang)
    if spec.metric == "squad_v2":
        return metrics.score("squad_v2", decoded.predictions, references, na_probs=decoded.null_score_diffs)
    return metrics.score(spec.metric, decoded.predictions, references)


def retrieval_encoder(model):
    """The bare encoder: a MultiTaskModel's shared encoder, or the model itself."""
    return getattr(model, "encoder", None) if hasattr(model.config, "tasks") else model


def _embed(ctx: ScoringContext, sentences: list[str], desc: str) -> np.ndarray:
    from hf_itt.evaluation.retrieval import default_retrieval_layer, embed_sentences

    encoder = retrieval_encoder(ctx.model)
    layer = ctx.retrieval_layer if ctx.retrieval_layer is not None else default_retrieval_layer(encoder.config)
    return embed_sentences(encoder, ctx.tokenizer, sentences, layer=layer, batch_size=ctx.batch_size,
                           max_length=ctx.retrieval_max_length, show_progress=ctx.show_progress)


def score_retrieval(spec, rows, ctx, desc) -> dict[str, float]:
    if spec.metric == "bucc_f1":
        return score_bucc(rows, ctx, desc)
    from hf_itt.evaluation.retrieval import tatoeba_accuracy

    source = _embed(ctx, list(rows["source_sentence"]), desc)
    target = _embed(ctx, list(rows["target_sentence"]), desc)
    return tatoeba_accuracy(source, target)


def score_bucc(rows, ctx, desc) -> dict[str, float]:
    """Mine candidate pairs by ratio margin, then F1 at the best (validation) or given (test) threshold."""
    from hf_itt.metrics.retrieval import bucc_scores
    from hf_itt.evaluation.retrieval import bucc_mine

    src = {i: s for i, s in zip(rows["source_id"], rows["source_sentence"]) if i}
    tgt = {i: s for i, s in zip(rows["target_id"], rows["target_sentence"]) if i}
    gold = {(s, t) for s, t in zip(rows["source_id"], rows["target_id"]) if s and t}
    src_ids, tgt_ids = list(src), list(tgt)
    candidates = bucc_mine(src_ids, _embed(ctx, list(src.values()), desc), tgt_ids,
                           _embed(ctx, list(tgt.values()), desc),
                           src_texts=list(src.values()), tgt_texts=list(tgt.values()))
    return bucc_scores(candidates, gold, threshold=ctx.bucc_threshold)


def score_answer_retrieval(queries, candidates, ctx: ScoringContext, desc: str) -> dict[str, float]:
    """LAReQA / Mewsli-X: rank every candidate by cosine to each query with the encoder's mean-pooled
    embeddings; mAP@20. XTREME-R fine-tunes a dual encoder on SQuAD / Wikipedia pairs first; here the
    checkpoint is used as is (the ITT encoder), like the other retrieval tasks."""
    from hf_itt.metrics.retrieval import map_at_k
    from hf_itt.evaluation.retrieval import cosine_knn

    key = candidates._fingerprint
    if key not in ctx.candidate_cache:
        ctx.candidate_cache = {key: _embed(ctx, list(candidates["text"]), f"{desc} candidates")}
    candidate_ids = list(candidates["candidate_id"])
    k = min(20, len(candidate_ids))
    _, neighbours = cosine_knn(_embed(ctx, list(queries["query"]), desc), ctx.candidate_cache[key], k)
    rankings = [[candidate_ids[i] for i in row] for row in neighbours]
    return map_at_k(rankings, list(queries["gold_ids"]), k=20)
