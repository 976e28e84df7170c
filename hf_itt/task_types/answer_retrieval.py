"""Answer retrieval over a multilingual pool, with a trained dual encoder: LAReQA, Mewsli-X (XTREME-R).

rows       {"query_id": str, "query": str, "gold_ids": list[str]} (the queries), plus a second dataset of
           candidates {"candidate_id": str, "text": str, "context": str} (``candidate_pool``), read
           through a task converter (``hf_itt.tasks.converters``)
training   English (query, positive candidate) pairs {"query", "candidate", "context"}: from SQuAD rows
           (LAReQA: question -> the sentence holding the answer, with its paragraph) or from a
           query/candidate task (Mewsli-X: Wikipedia mention -> its entity)
features   train: input_ids, attention_mask, candidate_input_ids, candidate_attention_mask (a query and
           its positive candidate)
           eval:  input_ids, attention_mask, example_id (a query, or a candidate)
encoding   a query alone (``query_max_length`` tokens); a candidate's answer text and context as ONE segment,
           ``(text + context).replace("\\n", "")``, as XTREME-R encodes them (``max_length``)
model      XTREME-R's dual encoder (``BertForRetrieval``): both towers are the shared encoder; an
           embedding is the L2-normalised pooled <s> state (dense + tanh); the loss is the softmax
           cross-entropy of each query against the candidates of its batch (in-batch negatives), on
           similarities scaled by a learned logit scale (initialised to 100)
score      every candidate ranked by cosine to each query; mAP@20. With a dual-encoder head the head's
           embeddings are used (the XTREME-R protocol); a checkpoint without one (a bare encoder) falls
           back to mean-pooled hidden states of the retrieval layer, as BUCC/Tatoeba embed
"""

from __future__ import annotations

import re

import numpy as np

from hf_itt.errors import DataError, TaskError
from hf_itt.metrics.retrieval import map_at_k
from hf_itt.metrics.retrieval_search import cosine_knn
from hf_itt.predictions import ScoredSplit, ranking_predictions
from hf_itt.task_types.base import ENCODER_INPUTS, ScoringTools, TaskType

CANDIDATE_COLUMNS = ("candidate_id", "text", "context")
PAIR_COLUMNS = ("query", "candidate", "context")
CANDIDATE_INPUTS = ("candidate_input_ids", "candidate_attention_mask")
DEFAULT_QUERY_LENGTH = 96  # XTREME-R's LAReQA max_query_length
TOP_K = 20


def candidate_text(text: str, context: str) -> str:
    """A candidate as XTREME-R encodes it: the answer sentence directly followed by its context."""
    return (text + context).replace("\n", "")


# ---- sentences of a context (LAReQA's answer = the sentence that holds the answer) ----------------------
_SENTENCE_END = re.compile(r"(?<=[.!?\u0964\u061f])\s+|(?<=[\u3002\uff01\uff1f])")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Approximate sentence breaks for contexts that come without ``sentence_breaks`` (SQuAD, the Hub copy
    of XQuAD-R): break after . ! ? । ؟ plus whitespace, and after 。！？. XTREME-R uses the breaks of its
    XQuAD-R files and a statistical splitter (sb_sed) for SQuAD: a documented approximation."""
    spans, start = [], 0
    for match in list(_SENTENCE_END.finditer(text)) + [None]:
        end = len(text) if match is None else match.start()
        piece = text[start:end]
        if piece.strip():
            left = start + len(piece) - len(piece.lstrip())
            spans.append((left, left + len(piece.strip())))
        start = end if match is None else match.end()
    return spans


def qa_pairs(rows) -> dict[str, list[str]]:
    """SQuAD rows as (question, answer sentence, paragraph) pairs; the first answer counts, and a question
    whose answer falls outside every sentence is skipped (as XTREME-R's processor does)."""
    pairs = {name: [] for name in PAIR_COLUMNS}
    for question, context, answers in zip(rows["question"], rows["context"], rows["answers"]):
        if not answers["answer_start"]:
            continue
        start = answers["answer_start"][0]
        sentence = next((context[s:e] for s, e in split_sentences(context) if s <= start < e), None)
        if sentence:
            for name, value in zip(PAIR_COLUMNS, (question, sentence, context)):
                pairs[name].append(value)
    return pairs


def pool_pairs(queries, candidates) -> dict[str, list[str]]:
    """Query/candidate rows as pairs of each query with its (first) gold candidate."""
    by_id = {
        cid: (text, context)
        for cid, text, context in zip(candidates["candidate_id"], candidates["text"], candidates["context"])
    }
    pairs = {name: [] for name in PAIR_COLUMNS}
    for query, gold in zip(queries["query"], queries["gold_ids"]):
        if gold and gold[0] in by_id:
            for name, value in zip(PAIR_COLUMNS, (query, *by_id[gold[0]])):
                pairs[name].append(value)
    return pairs


class AnswerRetrieval(TaskType):
    name = "answer_retrieval"
    hub_task = "sentence-similarity"
    columns = ("query_id", "query", "gold_ids")
    default_metric = "map_at_20"
    default_max_length = 256  # candidates (XTREME-R's max_answer_length); queries: query_max_length
    candidate_pool = True
    scores_without_head = True
    model_inputs = ENCODER_INPUTS + CANDIDATE_INPUTS
    label_names = CANDIDATE_INPUTS  # the "labels" of a dual encoder: its positives (so dev batches get a loss)

    def check_spec(self, spec, where):
        if not spec.converter:
            raise TaskError(f"{where}: answer_retrieval tasks need a `converter` (see hf_itt.tasks.converters)")

    def row_features(self, spec) -> dict:
        from datasets import List, Value

        return {"query_id": Value("string"), "query": Value("string"), "gold_ids": List(Value("string"))}

    def expected_columns(self, present: set) -> tuple[str, ...]:
        for columns in (PAIR_COLUMNS, CANDIDATE_COLUMNS):
            if present.issuperset(columns):
                return columns
        return self.columns

    def adapt_training_rows(self, data, source_spec, target_spec):
        """English training pairs from SQuAD-style QA rows or from a query/candidate task."""
        from datasets import Dataset

        if source_spec.task_type.candidate_pool:
            pairs = pool_pairs(*data)
        elif source_spec.type == "extractive_qa":
            pairs = qa_pairs(data)
        else:
            raise DataError(
                f"target {target_spec.name} trains a dual encoder on (query, answer) pairs; its training "
                f"task {source_spec.name} is a {source_spec.type} task with neither answers nor a "
                f"candidate pool"
            )
        if not pairs["query"]:
            raise DataError(f"task {source_spec.name}: no (query, answer) pair could be built for {target_spec.name}")
        return Dataset.from_dict(pairs)

    def describe_length(self, spec, max_length):
        query = getattr(spec, "query_max_length", None) or min(DEFAULT_QUERY_LENGTH, max_length)
        return f"{query} / {max_length} (query / candidate)"

    def feature_settings(self, spec, tokenizer, max_length, doc_stride):
        query_length = getattr(spec, "query_max_length", None) or min(DEFAULT_QUERY_LENGTH, max_length)
        return {"query_max_length": int(query_length)}

    def feature_columns(self, train: bool) -> dict:
        from datasets import List, Value

        base = super().feature_columns(train)
        if train:
            return {
                **base,
                "candidate_input_ids": List(Value("int32")),
                "candidate_attention_mask": List(Value("int8")),
            }
        return {**base, "example_id": Value("string")}

    def tokenize(self, batch, *, tokenizer, train, max_length, query_max_length, **_):
        if train:  # (query, positive) pairs
            query = tokenizer(batch["query"], truncation=True, max_length=query_max_length)
            texts = [candidate_text(text, context) for text, context in zip(batch["candidate"], batch["context"])]
            candidate = tokenizer(texts, truncation=True, max_length=max_length)
            return {
                "input_ids": query["input_ids"],
                "attention_mask": query["attention_mask"],
                "candidate_input_ids": candidate["input_ids"],
                "candidate_attention_mask": candidate["attention_mask"],
            }
        if "candidate_id" in batch:
            texts = [candidate_text(text, context) for text, context in zip(batch["text"], batch["context"])]
            encoded, ids = tokenizer(texts, truncation=True, max_length=max_length), batch["candidate_id"]
        else:
            encoded, ids = tokenizer(batch["query"], truncation=True, max_length=query_max_length), batch["query_id"]
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "example_id": ids}

    def collator(self, tokenizer, *, pad_to_multiple_of=None, **options):
        return PairCollator(tokenizer, pad_to_multiple_of)

    def build_head(self, num_labels, encoder_config):
        from hf_itt.task_types.heads import DualEncoderHead  # defers torch

        return DualEncoderHead(encoder_config.hidden_size)

    def forward(self, encode, head, inputs, targets):
        queries = head.embed(encode(**inputs))
        if "candidate_input_ids" not in targets:  # inference: one tower, embeddings out
            return {"logits": queries}
        candidates = head.embed(
            encode(input_ids=targets["candidate_input_ids"], attention_mask=targets["candidate_attention_mask"])
        )
        return head.in_batch_loss(queries, candidates)

    def score(self, spec, data, tools: ScoringTools, lang: str) -> dict[str, float]:
        """Rank every candidate by cosine to each query; the candidate pool is embedded once and shared by
        all languages of the task."""
        queries, candidates = data
        embed = self._head_embeddings if tools.has_head else self._layer_embeddings
        key = ("candidates", spec.name, candidates._fingerprint)
        if key not in tools.cache:
            tools.cache.clear()
            tools.cache[key] = embed(spec, candidates, tools)
        candidate_ids = list(candidates["candidate_id"])
        _, neighbours = cosine_knn(embed(spec, queries, tools), tools.cache[key], min(TOP_K, len(candidate_ids)))
        rankings = [[candidate_ids[i] for i in row] for row in neighbours]
        scores = map_at_k(rankings, list(queries["gold_ids"]), k=TOP_K)
        return ScoredSplit(scores, ranking_predictions(list(queries["query_id"]), rankings, k=TOP_K))

    @staticmethod
    def _head_embeddings(spec, rows, tools):

        _, outputs = tools.predict(spec, rows)
        return np.stack(outputs["logits"])

    @staticmethod
    def _layer_embeddings(spec, rows, tools):
        if "candidate_id" in rows.column_names:
            return tools.embed(
                [candidate_text(t, c) for t, c in zip(rows["text"], rows["context"])], max_length=spec.max_length
            )
        return tools.embed(list(rows["query"]), max_length=getattr(spec, "query_max_length", None))


class PairCollator:
    """Pads queries and candidates of a training batch separately (inference batches carry queries only)."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None):
        self.tokenizer, self.pad_to_multiple_of = tokenizer, pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        batch = self._pad([{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in features])
        if "candidate_input_ids" in features[0]:
            candidates = self._pad(
                [
                    {"input_ids": f["candidate_input_ids"], "attention_mask": f["candidate_attention_mask"]}
                    for f in features
                ]
            )
            batch["candidate_input_ids"] = candidates["input_ids"]
            batch["candidate_attention_mask"] = candidates["attention_mask"]
        return batch

    def _pad(self, rows: list[dict]) -> dict:
        return dict(self.tokenizer.pad(rows, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"))
