"""Sentence retrieval (hf_itt.metrics.retrieval_search): embeddings, kNN backends, Tatoeba, BUCC mining + F1."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import numpy as np
import pytest

from hf_itt.errors import ConfigError, DataError
from hf_itt.metrics.retrieval_search import (
    bucc_f1,
    bucc_mine,
    bucc_optimize,
    bucc_scores,
    cosine_knn,
    default_retrieval_layer,
    embed_sentences,
    tatoeba_accuracy,
    tatoeba_predictions,
)

TATOEBA_LANGS = ("ara", "cmn", "deu", "fra", "heb", "hin", "jpn", "rus", "spa", "swh", "tha", "tur", "vie")


def _naive_cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _naive_top1(queries, keys):
    return [max(range(len(keys)), key=lambda j: _naive_cosine(q, keys[j])) for q in queries]


# --------------------------------------------------------------------------- layer choice


@pytest.mark.parametrize("layers, expected", [(24, 14), (12, 7), (6, 4), (2, 1), (1, 1)])
def test_default_retrieval_layer_keeps_the_relative_depth(layers, expected):
    assert default_retrieval_layer(SimpleNamespace(num_hidden_layers=layers)) == expected


def test_default_retrieval_layer_is_configurable():
    config = SimpleNamespace(num_hidden_layers=24)
    assert default_retrieval_layer(config, reference_layer=13, reference_depth=24) == 13


# --------------------------------------------------------------------------- kNN


def test_faiss_torch_and_naive_loop_agree():
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(120, 16)).astype(np.float32)
    queries = rng.normal(size=(80, 16)).astype(np.float32) * 3.0  # scale must not matter (cosine)
    faiss_sims, faiss_ids = cosine_knn(queries, keys, 5, backend="faiss")
    torch_sims, torch_ids = cosine_knn(queries, keys, 5, backend="torch", batch_size=17)
    assert faiss_ids.shape == (80, 5) and faiss_ids.dtype == np.int64 and faiss_sims.dtype == np.float32
    np.testing.assert_array_equal(faiss_ids, torch_ids)
    np.testing.assert_allclose(faiss_sims, torch_sims, atol=1e-5)
    assert faiss_ids[:, 0].tolist() == _naive_top1(queries.tolist(), keys.tolist())
    assert faiss_sims[0, 0] == pytest.approx(_naive_cosine(queries[0], keys[faiss_ids[0, 0]]), abs=1e-5)


def test_knn_caps_k_and_handles_empty_queries():
    keys = np.eye(3, dtype=np.float32)
    sims, ids = cosine_knn(keys, keys, 10)
    assert ids.shape == (3, 3) and ids[:, 0].tolist() == [0, 1, 2]
    sims, ids = cosine_knn(np.zeros((0, 3), np.float32), keys, 2)
    assert ids.shape == (0, 2)
    with pytest.raises(ConfigError, match="unknown kNN backend"):
        cosine_knn(keys, keys, 1, backend="annoy")


# --------------------------------------------------------------------------- Tatoeba


def _tatoeba_pairs(shared_data, lang):
    folder = shared_data / "tatoeba"
    src = (folder / f"tatoeba.{lang}-eng.{lang}").read_text(encoding="utf-8").splitlines()
    tgt = (folder / f"tatoeba.{lang}-eng.eng").read_text(encoding="utf-8").splitlines()
    return src, tgt


def test_tatoeba_identical_pairs_score_100_and_shuffled_pairs_chance(shared_data):
    rng = np.random.default_rng(1)
    for lang in TATOEBA_LANGS:
        src, tgt = _tatoeba_pairs(shared_data, lang)
        assert len(src) == len(tgt) > 300, lang
        pair_vectors = rng.normal(size=(len(src), 48)).astype(np.float32)  # one vector per real pair
        noisy = pair_vectors + 0.05 * rng.normal(size=pair_vectors.shape).astype(np.float32)
        assert tatoeba_accuracy(pair_vectors, noisy) == {"accuracy": 100.0}, lang
        assert tatoeba_accuracy(pair_vectors, noisy, direction="src->tgt") == {"accuracy": 100.0}, lang
        shuffled = noisy[rng.permutation(len(noisy))]
        assert tatoeba_accuracy(pair_vectors, shuffled)["accuracy"] < 3.0, lang


def test_tatoeba_faiss_and_torch_predictions_identical_on_real_sizes(shared_data):
    src, _ = _tatoeba_pairs(shared_data, "deu")
    rng = np.random.default_rng(2)
    src_emb = rng.normal(size=(len(src), 32)).astype(np.float32)
    tgt_emb = src_emb + 0.9 * rng.normal(size=src_emb.shape).astype(np.float32)  # hard: many errors
    by_faiss = tatoeba_predictions(src_emb, tgt_emb, backend="faiss")
    by_torch = tatoeba_predictions(src_emb, tgt_emb, backend="torch")
    np.testing.assert_array_equal(by_faiss, by_torch)
    accuracy = tatoeba_accuracy(src_emb, tgt_emb)["accuracy"]
    assert 5 < accuracy < 100
    assert accuracy == pytest.approx(100 * np.mean(by_faiss == np.arange(len(src))))


def test_tatoeba_directions_match_their_naive_definitions():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(60, 8)).astype(np.float32)
    tgt = src + 1.2 * rng.normal(size=src.shape).astype(np.float32)
    # default (XTREME/jiant code): every English (tgt) sentence searches the non-English (src) ones
    assert tatoeba_predictions(src, tgt).tolist() == _naive_top1(tgt.tolist(), src.tolist())
    assert tatoeba_predictions(src, tgt, direction="src->tgt").tolist() == _naive_top1(src.tolist(), tgt.tolist())
    with pytest.raises(ConfigError, match="direction"):
        tatoeba_predictions(src, tgt, direction="both")
    with pytest.raises(DataError, match="aligned"):
        tatoeba_accuracy(src, tgt[:-1])


# --------------------------------------------------------------------------- BUCC


def _naive_mine(src, tgt, k, retrieval):
    """Ratio-margin mining written as plain loops (no numpy, no faiss)."""
    sim = [[_naive_cosine(x, y) for y in tgt] for x in src]
    cols = [[sim[i][j] for i in range(len(src))] for j in range(len(tgt))]

    def mean_top(values):
        top = sorted(values, reverse=True)[:k]
        return sum(top) / len(top)

    src_mean = [mean_top(row) for row in sim]
    tgt_mean = [mean_top(col) for col in cols]

    def margin(i, j):
        return sim[i][j] / ((src_mean[i] + tgt_mean[j]) / 2)

    forward = []
    for i in range(len(src)):
        neighbours = sorted(range(len(tgt)), key=lambda j: -sim[i][j])[:k]
        j = max(neighbours, key=lambda j: margin(i, j))
        forward.append((i, j, margin(i, j)))
    backward = []
    for j in range(len(tgt)):
        neighbours = sorted(range(len(src)), key=lambda i: -cols[j][i])[:k]
        i = max(neighbours, key=lambda i: margin(i, j))
        backward.append((i, j, margin(i, j)))
    if retrieval == "fwd":
        return {(i, j): s for i, j, s in forward}
    chosen, used_src, used_tgt = {}, set(), set()
    for i, j, s in sorted(forward + backward, key=lambda t: -t[2]):
        if i not in used_src and j not in used_tgt:
            used_src.add(i)
            used_tgt.add(j)
            if s > 0:
                chosen[(i, j)] = s
    return chosen


def _bucc_sample(seed, n_pairs=30, n_src_extra=10, n_tgt_extra=20, dim=24, noise=0.3):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(n_pairs + n_src_extra, dim)).astype(np.float32)
    tgt = rng.normal(size=(n_pairs + n_tgt_extra, dim)).astype(np.float32)
    slots = rng.permutation(len(tgt))[:n_pairs]
    for i, slot in enumerate(slots):
        tgt[slot] = src[i] + noise * rng.normal(size=dim)
    src_ids = [f"de-{i:06d}" for i in range(len(src))]
    tgt_ids = [f"en-{j:06d}" for j in range(len(tgt))]
    gold = {(src_ids[i], tgt_ids[slot]) for i, slot in enumerate(slots)}
    return src_ids, src, tgt_ids, tgt, gold


@pytest.mark.parametrize("retrieval", ["max", "fwd"])
def test_bucc_mining_matches_a_naive_loop(retrieval):
    src_ids, src, tgt_ids, tgt, _ = _bucc_sample(seed=4, noise=0.8)
    mined = bucc_mine(src_ids, src, tgt_ids, tgt, k=4, retrieval=retrieval)
    naive = {(src_ids[i], tgt_ids[j]): s for (i, j), s in _naive_mine(src.tolist(), tgt.tolist(), 4, retrieval).items()}
    assert set(mined) == set(naive)
    for pair, value in naive.items():
        assert mined[pair] == pytest.approx(value, abs=1e-4)
    if retrieval == "fwd":
        assert len(mined) == len(src)


def test_bucc_dev_threshold_is_optimised_and_reused_on_test():
    dev = _bucc_sample(seed=5)
    dev_candidates = bucc_mine(*dev[:4])
    dev_scores = bucc_scores(dev_candidates, dev[4])  # validation: threshold fit on its own gold
    assert dev_scores["f1"] >= 95.0
    assert dev_scores["threshold"] == bucc_optimize(dev_candidates, dev[4])
    test = _bucc_sample(seed=6)
    test_candidates = bucc_mine(*test[:4])
    reused = bucc_scores(test_candidates, test[4], threshold=dev_scores["threshold"])
    assert reused["threshold"] == dev_scores["threshold"]
    assert reused == bucc_f1(test_candidates, test[4], dev_scores["threshold"])
    assert reused["f1"] >= 90.0


def test_bucc_no_gold_above_threshold_scores_zero():
    src_ids, src, tgt_ids, tgt, gold = _bucc_sample(seed=7)
    candidates = bucc_mine(src_ids, src, tgt_ids, tgt)
    assert bucc_f1(candidates, gold, threshold=1e9) == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "threshold": 1e9}
    unrelated = {("xx", "yy")}
    assert bucc_optimize(candidates, unrelated) == 0.0
    assert bucc_scores(candidates, unrelated)["f1"] == 0.0
    assert bucc_scores({}, gold) == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "threshold": 0.0}
    assert bucc_scores(candidates, set())["f1"] == 0.0


def test_bucc_optimize_midpoint_rule_last_item_and_ties():
    gold = {("s1", "t1"), ("s2", "t2"), ("s4", "t4"), ("s9", "t9")}  # s9 is never a candidate
    candidates = {("s1", "t1"): 1.5, ("s2", "t2"): 1.4, ("s3", "t3"): 1.2, ("s4", "t4"): 1.1}
    # F1 by cut: 0.4, 0.667 (thr (1.4+1.2)/2), 0.571, 0.75 at the last item -> its own score
    assert bucc_optimize(candidates, gold) == pytest.approx(1.1)
    assert bucc_f1(candidates, gold, 1.1)["f1"] == pytest.approx(75.0)
    candidates[("s5", "t5")] = 1.0
    assert bucc_optimize(candidates, gold) == pytest.approx((1.1 + 1.0) / 2)
    # Ties: a threshold equal to tied scores extracts all of them (>=), as the reference does.
    tied = {("s1", "t1"): 2.0, ("s3", "t3"): 2.0, ("s2", "t2"): 1.0}
    threshold = bucc_optimize(tied, {("s1", "t1")})
    assert threshold == 2.0
    assert bucc_f1(tied, {("s1", "t1")}, threshold)["precision"] == 50.0


def test_bucc_duplicate_texts_are_mined_once_and_kept_for_every_id_on_request():
    src_ids, src, tgt_ids, tgt, gold = _bucc_sample(seed=8, n_pairs=10, n_src_extra=0, n_tgt_extra=5)
    tgt_ids, tgt = tgt_ids + ["en-dup"], np.vstack([tgt, tgt[:1]])
    tgt_texts = [f"text {j}" for j in range(len(tgt_ids) - 1)] + ["text 0"]
    candidates = bucc_mine(
        src_ids,
        src,
        tgt_ids,
        tgt,
        src_texts=[f"src {i}" for i in range(len(src_ids))],
        tgt_texts=tgt_texts,
        duplicates="keep",
    )
    partners = {s for (s, t) in candidates if t == "en-000000"}
    assert partners and partners == {s for (s, t) in candidates if t == "en-dup"}
    with pytest.raises(DataError, match="texts"):
        bucc_mine(src_ids, src, tgt_ids, tgt, tgt_texts=tgt_texts[:-1])
    with pytest.raises(ConfigError, match="retrieval"):
        bucc_mine(src_ids, src, tgt_ids, tgt, retrieval="union")
    with pytest.raises(ConfigError, match="duplicates rule 'first'"):
        bucc_mine(src_ids, src, tgt_ids, tgt, duplicates="first")


def _with_repeats(seed: int):
    """A BUCC sample where sentences occur twice on each side (same text, same embedding): a gold
    source, the gold target of another source, and a distractor target. Returns the sample and
    {repeated id: the id it repeats}."""
    src_ids, src, tgt_ids, tgt, gold = _bucc_sample(seed=seed, n_pairs=20, n_src_extra=5, n_tgt_extra=8)
    partner = dict(gold)
    distractor = next(t for t in tgt_ids if t not in partner.values())
    copies = {"de-rep": src_ids[0], "en-rep": partner[src_ids[1]], "en-rep-distractor": distractor}
    src_texts, tgt_texts = list(src_ids), list(tgt_ids)  # the id as the text: distinct until copied
    for new_id, original in copies.items():
        if new_id.startswith("de"):
            row = src_ids.index(original)
            src_ids, src, src_texts = src_ids + [new_id], np.vstack([src, src[row : row + 1]]), src_texts + [original]
        else:
            row = tgt_ids.index(original)
            tgt_ids, tgt, tgt_texts = tgt_ids + [new_id], np.vstack([tgt, tgt[row : row + 1]]), tgt_texts + [original]
    return (src_ids, src, src_texts, tgt_ids, tgt, tgt_texts, gold), copies


def test_bucc_repeated_sentences_on_both_sides_are_never_predicted_by_default():
    (src_ids, src, src_texts, tgt_ids, tgt, tgt_texts, gold), copies = _with_repeats(seed=9)
    partner = dict(gold)
    args = (src_ids, src, tgt_ids, tgt)
    drop = bucc_mine(*args, src_texts=src_texts, tgt_texts=tgt_texts)  # default: XTREME's rule
    keep = bucc_mine(*args, src_texts=src_texts, tgt_texts=tgt_texts, duplicates="keep")
    repeated = set(copies) | set(copies.values())
    # keep: a mined repeated pair is predicted once per id carrying the text, with one score
    s0, s1 = src_ids[0], src_ids[1]
    assert keep[("de-rep", partner[s0])] == keep[(s0, partner[s0])]
    assert keep[(s1, "en-rep")] == keep[(s1, partner[s1])]
    # drop: the same mining, minus every pair that touches a repeated text (read_sent2id's rule)
    assert drop == {pair: score for pair, score in keep.items() if not set(pair) & repeated}
    assert (s0, partner[s0]) not in drop and (s1, partner[s1]) not in drop
    assert len(drop) < len(keep)
    # against gold that lists the repeated pairs too, keep is credited for them and drop is not
    dup_gold = gold | {("de-rep", partner[s0]), (s1, "en-rep")}
    assert bucc_scores(keep, dup_gold)["recall"] > bucc_scores(drop, dup_gold)["recall"]


def test_bucc_a_repeated_text_still_takes_its_neighbours_when_dropped():
    # Source "a" is closest to target "X", which occurs twice: under "max" retrieval the pair (a, X)
    # is taken first, so "a" is used up and gets no other partner; then the pair is dropped.
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 8)).astype(np.float32)
    src = base[:2]
    tgt = np.vstack([base[2], base[0] * 0.98 + base[2] * 0.02, base[0] * 0.98 + base[2] * 0.02, base[1]])
    args = (["a", "b"], src, ["t-other", "t-x1", "t-x2", "t-b"], tgt)
    texts = dict(src_texts=["A", "B"], tgt_texts=["O", "X", "X", "B'"])
    keep = bucc_mine(*args, **texts, duplicates="keep")
    drop = bucc_mine(*args, **texts)
    assert {("a", "t-x1"), ("a", "t-x2"), ("b", "t-b")} <= set(keep)
    assert set(drop) == {("b", "t-b")}  # no ("a", "t-other"): "a" was consumed by the repeated "X"


# --------------------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def tiny_encoder(tiny_checkpoint):
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_checkpoint)


SENTENCES = [
    "a short one",
    "",
    "a considerably longer sentence with many more words in it than the others",
    "mid length sentence here",
    "x",
    "Zwei Wörter",
    "another sentence of some length for padding",
]


def test_embed_sentences_shape_layer_choice_and_manual_mean(tiny_encoder, tiny_tokenizer):
    import torch

    emb = embed_sentences(tiny_encoder, tiny_tokenizer, SENTENCES, layer=1, batch_size=3, show_progress=False)
    assert emb.shape == (len(SENTENCES), tiny_encoder.config.hidden_size) and emb.dtype == np.float32
    other = embed_sentences(tiny_encoder, tiny_tokenizer, SENTENCES, layer=2, show_progress=False)
    assert not np.allclose(emb, other)
    encoded = tiny_tokenizer(SENTENCES[2], return_tensors="pt")
    assert encoded["input_ids"][0, 0] == tiny_tokenizer.cls_token_id  # <s> ... </s> are pooled too
    with torch.no_grad():
        states = tiny_encoder(**encoded, output_hidden_states=True).hidden_states[1][0]
    np.testing.assert_allclose(emb[2], states.mean(dim=0).numpy(), atol=1e-5)


def test_embed_sentences_independent_of_padding_and_order(tiny_encoder, tiny_tokenizer):
    one_by_one = embed_sentences(tiny_encoder, tiny_tokenizer, SENTENCES, layer=2, batch_size=1, show_progress=False)
    batched = embed_sentences(tiny_encoder, tiny_tokenizer, SENTENCES, layer=2, batch_size=4, show_progress=False)
    np.testing.assert_allclose(one_by_one, batched, atol=1e-5)
    order = list(range(len(SENTENCES)))
    random.Random(0).shuffle(order)
    shuffled = embed_sentences(
        tiny_encoder, tiny_tokenizer, [SENTENCES[i] for i in order], layer=2, batch_size=4, show_progress=False
    )
    np.testing.assert_allclose(shuffled, batched[order], atol=1e-5)


def test_embed_sentences_restores_mode_checks_layer_and_handles_no_sentences(tiny_encoder, tiny_tokenizer):
    tiny_encoder.train()
    embed_sentences(tiny_encoder, tiny_tokenizer, SENTENCES[:2], layer=0, show_progress=False)
    assert tiny_encoder.training
    tiny_encoder.eval()
    with pytest.raises(ConfigError, match="retrieval layer 3 is out of range"):
        embed_sentences(tiny_encoder, tiny_tokenizer, SENTENCES, layer=3)
    assert embed_sentences(tiny_encoder, tiny_tokenizer, [], layer=1).shape == (0, tiny_encoder.config.hidden_size)
