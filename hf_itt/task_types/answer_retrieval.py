"""Answer retrieval over a multilingual pool: LAReQA, Mewsli-X (XTREME-R), scored with mAP@20.

rows       queries {"query_id": str, "query": str, "gold_ids": list[str]}, plus a second dataset of
           candidates {"candidate_id": str, "text": str, "context": str} (``candidate_pool``);
           always read through a task converter (``hf_itt.tasks.converters``)
features   queries: input_ids, attention_mask, example_id; candidates: (text, context) pairs, as
           XTREME-R's LAReQA encodes an answer with its context
score      every candidate ranked by cosine to each query; mAP@20
"""

from __future__ import annotations

from hf_itt.errors import TaskError
from hf_itt.metrics.retrieval import map_at_k
from hf_itt.metrics.retrieval_search import cosine_knn
from hf_itt.task_types.base import ScoringTools, TaskType

CANDIDATE_COLUMNS = ("candidate_id", "text", "context")


class AnswerRetrieval(TaskType):
    name = "answer_retrieval"
    columns = ("query_id", "query", "gold_ids")
    default_metric = "map_at_20"
    default_max_length = 512
    trainable = False
    candidate_pool = True

    def check_spec(self, spec, where):
        if not spec.converter:
            raise TaskError(f"{where}: answer_retrieval tasks need a `converter` (see hf_itt.tasks.converters)")

    def row_features(self, spec) -> dict:
        from datasets import List, Value

        return {"query_id": Value("string"), "query": Value("string"), "gold_ids": List(Value("string"))}

    def expected_columns(self, present: set) -> tuple[str, ...]:
        return CANDIDATE_COLUMNS if present.issuperset(CANDIDATE_COLUMNS) else self.columns

    def feature_columns(self, train: bool) -> dict:
        from datasets import Value

        return {**super().feature_columns(train), "example_id": Value("string")}

    def tokenize(self, batch, *, tokenizer, max_length, **_):
        if "candidate_id" in batch:  # an answer candidate is encoded as (answer sentence, its context)
            encoded = tokenizer(batch["text"], batch["context"], truncation="longest_first", max_length=max_length)
            ids = batch["candidate_id"]
        else:
            encoded = tokenizer(batch["query"], truncation=True, max_length=max_length)
            ids = batch["query_id"]
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "example_id": ids}

    def score(self, spec, data, ctx: ScoringTools, lang: str) -> dict[str, float]:
        """Rank every candidate by cosine to each query with the encoder's mean-pooled embeddings; the
        candidate pool is embedded once and shared by all languages."""
        queries, candidates = data
        key = ("candidates", candidates._fingerprint)
        if key not in ctx.cache:
            ctx.cache.clear()
            ctx.cache[key] = ctx.embed(list(candidates["text"]))
        candidate_ids = list(candidates["candidate_id"])
        k = min(20, len(candidate_ids))
        _, neighbours = cosine_knn(ctx.embed(list(queries["query"])), ctx.cache[key], k)
        rankings = [[candidate_ids[i] for i in row] for row in neighbours]
        return map_at_k(rankings, list(queries["gold_ids"]), k=20)
