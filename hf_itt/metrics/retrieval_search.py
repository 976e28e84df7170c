"""Sentence retrieval straight from an encoder: embeddings, cosine kNN, Tatoeba, BUCC mining.

Representation (jiant, used by the reference ITT study; XTREME's ``--specific_layer 13`` on
``all_layer_outputs[-24:]`` is the same layer): ``hidden_states[layer]`` mean-pooled over every
token with attention_mask 1, ``<s>`` and ``</s>`` included; ``hidden_states[0]`` is the embedding
output, so XLM-R Large's layer 14 is the output of its 14th of 24 transformer layers.

BUCC follows XTREME's ``utils_retrieve.mine_bitext`` (as adapted by jiant): ratio margin
cos(x, y) / ((mean kNN sim of x + mean kNN sim of y) / 2) over k=4 neighbourhoods, and by default
the "max" retrieval of both (the default of both reference implementations): forward and backward
best matches pooled, taken greedily by decreasing score with every sentence used at most once.
Repeated sentences are mined once and, by default, never predicted (XTREME's rule; see ``bucc_mine``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Hashable, Sequence

import numpy as np
from tqdm.auto import tqdm

from hf_itt.errors import ConfigError, DataError
from hf_itt.metrics.retrieval import bucc_f1, bucc_optimize, bucc_scores
from hf_itt.metrics.scoring import tatoeba_scores
from hf_itt.predictions import ScoredSplit, pair_predictions

__all__ = [
    "embed_sentences",
    "default_retrieval_layer",
    "cosine_knn",
    "tatoeba_predictions",
    "tatoeba_accuracy",
    "bucc_mine",
    "score_bucc_rows",
    "bucc_optimize",
    "bucc_f1",
    "bucc_scores",
]

REFERENCE_LAYER, REFERENCE_DEPTH = 14, 24  # layer 14 of XLM-R Large's 24 (jiant / XTREME)
BUCC_RETRIEVAL_MODES = ("max", "fwd", "bwd", "intersect")
BUCC_DUPLICATE_MODES = ("drop", "keep")  # see bucc_mine


# --------------------------------------------------------------------------- embeddings


def default_retrieval_layer(
    config, reference_layer: int = REFERENCE_LAYER, reference_depth: int = REFERENCE_DEPTH
) -> int:
    """The hidden_states index at the reference study's relative depth: 14 for 24 layers, 7 for 12."""
    return int(math.floor(config.num_hidden_layers * reference_layer / reference_depth + 0.5))


def embed_sentences(
    model,
    tokenizer,
    sentences: Sequence[str],
    *,
    layer: int,
    batch_size: int = 64,
    max_length: int = 512,
    device=None,
    show_progress: bool = True,
) -> np.ndarray:
    """Mean-pooled ``hidden_states[layer]`` of each sentence: float32 array [len(sentences), hidden].

    ``model`` is any encoder whose forward accepts ``input_ids``, ``attention_mask`` and
    ``output_hidden_states=True`` and returns ``.hidden_states`` (e.g. ``AutoModel``). Sentences are
    batched by length (less padding) and returned in input order. ``device`` is where batches go
    (default: the model's device; the model itself is not moved).
    """
    import torch

    _check_layer(model, layer)
    if not sentences:
        return np.zeros((0, model.config.hidden_size), dtype=np.float32)
    encoded = tokenizer(list(sentences), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    device = torch.device(device) if device is not None else next(model.parameters()).device
    output = np.zeros((len(encoded), model.config.hidden_size), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            starts = range(0, len(order), batch_size)
            for start in tqdm(starts, desc="embedding", disable=not show_progress or len(starts) < 2):
                indices = order[start : start + batch_size]
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in indices]}, return_tensors="pt")
                output[indices] = _pooled_layer(model, batch.to(device), layer)
    finally:
        model.train(was_training)
    return output


def _pooled_layer(model, batch, layer: int) -> np.ndarray:
    import torch

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    hidden_states = getattr(out, "hidden_states", None)
    if hidden_states is None:
        raise ConfigError(
            f"{type(model).__name__} returned no hidden_states; pass the encoder itself "
            "(e.g. AutoModel.from_pretrained(...)) to embed sentences"
        )
    states = hidden_states[layer].float()  # pool in float32 even for bf16/fp16 models
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return pooled.to(torch.float32).cpu().numpy()


def _check_layer(model, layer: int) -> None:
    depth = model.config.num_hidden_layers
    if not 0 <= layer <= depth:
        raise ConfigError(
            f"retrieval layer {layer} is out of range: the model has {depth} layers, so "
            f"hidden_states indexes 0 (embeddings) to {depth}; set the retrieval layer in that range"
        )


# --------------------------------------------------------------------------- nearest neighbours


def _l2_normalized(vectors) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def cosine_knn(
    queries, keys, k: int, *, backend: str = "auto", batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` keys most cosine-similar to each query: (similarities [nq, k] float32, indices
    [nq, k] int64), best first. ``backend``: "faiss" (exact IndexFlatIP), "torch" (batched matmul)
    or "auto" (faiss when installed). ``k`` is capped at the number of keys."""
    queries, keys = _l2_normalized(queries), _l2_normalized(keys)
    if queries.shape[1] != keys.shape[1]:
        raise ValueError(f"queries have dimension {queries.shape[1]} but keys {keys.shape[1]}")
    k = min(k, len(keys))
    if k < 1 or len(queries) == 0:
        return np.zeros((len(queries), max(k, 0)), np.float32), np.zeros((len(queries), max(k, 0)), np.int64)
    if backend == "auto":
        backend = "faiss" if _has_faiss() else "torch"
    if backend == "faiss":
        return _knn_faiss(queries, keys, k)
    if backend == "torch":
        return _knn_torch(queries, keys, k, batch_size)
    raise ConfigError(f"unknown kNN backend {backend!r}; choose 'auto', 'faiss' or 'torch'")


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _knn_faiss(queries: np.ndarray, keys: np.ndarray, k: int):
    import faiss

    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(keys)
    sims, ids = index.search(queries, k)
    return sims.astype(np.float32), ids.astype(np.int64)


def _knn_torch(queries: np.ndarray, keys: np.ndarray, k: int, batch_size: int):
    import torch

    key_matrix = torch.from_numpy(keys)
    sims, ids = [], []
    for start in range(0, len(queries), batch_size):
        block = torch.from_numpy(queries[start : start + batch_size]) @ key_matrix.T
        top = torch.topk(block, k, dim=1)
        sims.append(top.values.numpy())
        ids.append(top.indices.numpy())
    return np.concatenate(sims).astype(np.float32), np.concatenate(ids).astype(np.int64)


# --------------------------------------------------------------------------- Tatoeba


def tatoeba_predictions(src_emb, tgt_emb, *, direction: str = "tgt->src", backend: str = "auto") -> np.ndarray:
    """Top-1 neighbour index of every query sentence.

    ``direction="tgt->src"`` (default) is what XTREME's ``run_retrieval.py`` and jiant compute: the
    index holds the non-English sentences (src) and each English sentence (tgt) is a query.
    ``"src->tgt"`` searches each non-English sentence among the English ones.
    """
    if direction == "tgt->src":
        return cosine_knn(tgt_emb, src_emb, 1, backend=backend)[1][:, 0]
    if direction == "src->tgt":
        return cosine_knn(src_emb, tgt_emb, 1, backend=backend)[1][:, 0]
    raise ConfigError(f"unknown Tatoeba direction {direction!r}; choose 'tgt->src' or 'src->tgt'")


def tatoeba_accuracy(src_emb, tgt_emb, *, direction: str = "tgt->src", backend: str = "auto") -> dict[str, float]:
    """Top-1 retrieval accuracy (percent) of aligned embeddings (row i of each side is a pair)."""
    if len(src_emb) != len(tgt_emb):
        raise DataError(f"Tatoeba needs aligned sides: {len(src_emb)} source vs {len(tgt_emb)} target sentences")
    return tatoeba_scores(tatoeba_predictions(src_emb, tgt_emb, direction=direction, backend=backend))


# --------------------------------------------------------------------------- BUCC mining


def bucc_mine(
    src_ids: Sequence[Hashable],
    src_emb,
    tgt_ids: Sequence[Hashable],
    tgt_emb,
    k: int = 4,
    *,
    retrieval: str = "max",
    src_texts: Sequence[str] | None = None,
    tgt_texts: Sequence[str] | None = None,
    duplicates: str = "drop",
    min_score: float = 0.0,
    backend: str = "auto",
) -> dict[tuple[Hashable, Hashable], float]:
    """Candidate pairs {(src_id, tgt_id): ratio-margin score} for ``bucc_optimize``/``bucc_f1``.

    With ``src_texts``/``tgt_texts`` every distinct sentence is mined once (it still takes part in
    the neighbourhoods and in the greedy "max" selection). ``duplicates`` says what a mined pair whose
    source or target text occurs more than once in its corpus (compared after stripping) becomes:

    * ``"drop"`` (default, XTREME's pipeline: ``utils_retrieve.read_sent2id`` deletes repeated texts
      before mapping mined texts back to ids) -- no pair; repeated sentences are never predicted.
    * ``"keep"`` -- a pair for every id carrying the text (hf_itt before metric version 2).

    Without texts every id is a distinct sentence. Pairs scoring <= ``min_score`` are dropped in
    "max" mode (the reference's mining threshold 0).
    """
    if retrieval not in BUCC_RETRIEVAL_MODES:
        raise ConfigError(f"unknown BUCC retrieval {retrieval!r}; choose one of {', '.join(BUCC_RETRIEVAL_MODES)}")
    if duplicates not in BUCC_DUPLICATE_MODES:
        raise ConfigError(
            f"unknown BUCC duplicates rule {duplicates!r}; choose one of {', '.join(BUCC_DUPLICATE_MODES)}"
        )
    src_groups, x = _unique_by_text(src_ids, src_emb, src_texts, "source", duplicates)
    tgt_groups, y = _unique_by_text(tgt_ids, tgt_emb, tgt_texts, "target", duplicates)
    if len(x) == 0 or len(y) == 0:
        return {}
    fwd_sims, fwd_ids = cosine_knn(x, y, k, backend=backend)
    bwd_sims, bwd_ids = cosine_knn(y, x, k, backend=backend)
    fwd_mean, bwd_mean = fwd_sims.mean(axis=1), bwd_sims.mean(axis=1)
    fwd_best, fwd_score = _best_by_margin(fwd_sims, fwd_ids, fwd_mean, bwd_mean)
    bwd_best, bwd_score = _best_by_margin(bwd_sims, bwd_ids, bwd_mean, fwd_mean)
    pairs = _select_pairs(retrieval, fwd_best, fwd_score, bwd_best, bwd_score, min_score)
    candidates: dict[tuple[Hashable, Hashable], float] = {}
    for i, j, value in pairs:
        for src_id in src_groups[i]:
            for tgt_id in tgt_groups[j]:
                key = (src_id, tgt_id)
                candidates[key] = max(value, candidates.get(key, value))
    return candidates


def score_bucc_rows(
    rows, embed: Callable[[list[str]], np.ndarray], *, threshold: float | None, duplicates: str = "drop"
) -> ScoredSplit:
    """Mine one language split of BUCC rows and score it: F1 at ``threshold`` (None: the best one on
    these rows' gold). ``embed`` maps sentences to embeddings; the predictions are every candidate."""
    src = {i: s for i, s in zip(rows["source_id"], rows["source_sentence"]) if i}
    tgt = {i: s for i, s in zip(rows["target_id"], rows["target_sentence"]) if i}
    gold = {(s, t) for s, t in zip(rows["source_id"], rows["target_id"]) if s and t}
    src_texts, tgt_texts = list(src.values()), list(tgt.values())
    candidates = bucc_mine(
        list(src),
        embed(src_texts),
        list(tgt),
        embed(tgt_texts),
        src_texts=src_texts,
        tgt_texts=tgt_texts,
        duplicates=duplicates,
    )
    scores = bucc_scores(candidates, gold, threshold=threshold)
    return ScoredSplit(scores, pair_predictions(candidates, scores["threshold"]))


def _unique_by_text(ids, embeddings, texts, side: str, duplicates: str):
    """Ids per distinct text (empty for a repeated text under "drop") and one embedding per text;
    every row is its own group when ``texts`` is None."""
    embeddings = _l2_normalized(embeddings)
    if len(ids) != len(embeddings):
        raise DataError(f"BUCC {side} side: {len(ids)} ids but {len(embeddings)} embeddings")
    if texts is None:
        return [[sentence_id] for sentence_id in ids], embeddings
    if len(texts) != len(ids):
        raise DataError(f"BUCC {side} side: {len(ids)} ids but {len(texts)} texts")
    group_of: dict[str, int] = {}
    groups: list[list[Hashable]] = []
    first_rows: list[int] = []
    for row, (sentence_id, text) in enumerate(zip(ids, texts)):
        if text not in group_of:
            group_of[text] = len(groups)
            groups.append([])
            first_rows.append(row)
        groups[group_of[text]].append(sentence_id)
    if duplicates == "drop":
        occurrences = Counter(text.strip() for text in texts)
        groups = [[] if occurrences[text.strip()] > 1 else members for text, members in zip(group_of, groups)]
    return groups, embeddings[first_rows]


def _best_by_margin(sims, neighbours, own_mean, other_mean):
    """Per query: the neighbour with the highest ratio margin, and that margin."""
    margins = sims / ((own_mean[:, None] + other_mean[neighbours]) / 2)
    best = margins.argmax(axis=1)
    rows = np.arange(len(sims))
    return neighbours[rows, best], margins[rows, best]


def _select_pairs(retrieval, fwd_best, fwd_score, bwd_best, bwd_score, min_score):
    """(src row, tgt row, score) triples of the chosen retrieval mode."""
    forward = [(i, int(j), float(s)) for i, (j, s) in enumerate(zip(fwd_best, fwd_score))]
    backward = [(int(i), j, float(s)) for j, (i, s) in enumerate(zip(bwd_best, bwd_score))]
    if retrieval == "fwd":
        return forward
    if retrieval == "bwd":
        return backward
    if retrieval == "intersect":
        return [(i, j, s) for i, j, s in forward if bwd_best[j] == i]
    pooled = forward + backward
    order = np.argsort(-np.array([s for _, _, s in pooled]), kind="stable")
    seen_src, seen_tgt, chosen = set(), set(), []
    for position in order:
        i, j, s = pooled[position]
        if i not in seen_src and j not in seen_tgt:
            seen_src.add(i)
            seen_tgt.add(j)
            if s > min_score:
                chosen.append((i, j, s))
    return chosen
