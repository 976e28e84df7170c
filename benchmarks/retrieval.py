"""Tatoeba/BUCC-style similarity search: hf_itt.metrics.retrieval_search (faiss, batched torch) vs a naive Python loop.

    python benchmarks/retrieval.py            # 10,000 x 10,000 embeddings of dimension 1024
    python benchmarks/retrieval.py --tiny     # CI smoke run

Embeddings are synthetic but shaped like the task: 10k "source" sentence vectors and 10k "target"
vectors, each target a noisy copy of its source, so top-1 is a real match and not a near-tie.

- Tatoeba: top-1 cosine neighbour of every target among the sources (``tatoeba_predictions``).
  faiss (exact IndexFlatIP) and torch (batched matmul + topk) run on all queries; the naive loop
  (one Python-level cosine per query-key pair, tracking the best) is timed on a subset of queries
  and extrapolated linearly to all queries (its cost is exactly linear in the number of queries).
- a stronger baseline, "per-query numpy": a Python loop over queries, each scored against all keys with
  one matrix-vector product (no batching across queries), also on a subset and extrapolated;
- BUCC: ``bucc_mine`` (k=4 neighbours both ways, ratio margin, greedy "max" pairing), faiss vs torch;
  the naive column extrapolates the same pair loop keeping 4 neighbours, both directions.

Every method's top-1 must agree on the queries it ran (asserted). Target: >= 20x over the naive loop.
Measurements alternate methods and repeat; the table reports medians. The torch backend runs on the
CPU whatever --device says (hf_itt.metrics.retrieval_search works on numpy arrays).
"""

from __future__ import annotations

import heapq

import numpy as np
from harness import base_parser, interleaved, machine_line, median, print_table, setup, spread, timed, verdict

TARGET = 20.0


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=10_000, help="sentences per side")
    parser.add_argument("--dim", type=int, default=1024, help="embedding dimension (XLM-R Large: 1024)")
    parser.add_argument("--naive-queries", type=int, default=40, help="queries the naive loop is timed on")
    parser.add_argument("--numpy-queries", type=int, default=500, help="queries the per-query numpy loop runs")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    setup(args)
    if args.tiny:
        args.sentences, args.dim, args.naive_queries, args.numpy_queries, args.repeats = 500, 64, 10, 50, 2
    return args


def embeddings(count: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    source = rng.standard_normal((count, dim), dtype=np.float32)
    target = source + 0.8 * rng.standard_normal((count, dim), dtype=np.float32)
    return source, target


def naive_knn(queries: np.ndarray, keys: np.ndarray, k: int) -> list[list[int]]:
    """One cosine per (query, key) pair in a Python loop; the k best keys per query."""
    key_norms = [float(np.linalg.norm(key)) for key in keys]
    neighbours = []
    for query in queries:
        query_norm = float(np.linalg.norm(query))
        scores = [float(np.dot(query, key)) / (query_norm * norm) for key, norm in zip(keys, key_norms)]
        neighbours.append(heapq.nlargest(k, range(len(scores)), key=scores.__getitem__))
    return neighbours


def per_query_numpy(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Top-1 per query, one matrix-vector product per query."""
    keys = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    return np.array([int(np.argmax(keys @ (query / np.linalg.norm(query)))) for query in queries])


def main(argv=None) -> int:
    from hf_itt.metrics.retrieval_search import bucc_mine, tatoeba_predictions

    args = parse_args(argv)
    source, target = embeddings(args.sentences, args.dim, args.seed)
    subset = min(args.naive_queries, args.sentences)
    numpy_subset = min(args.numpy_queries, args.sentences)
    src_ids, tgt_ids = [f"s{i}" for i in range(args.sentences)], [f"t{i}" for i in range(args.sentences)]
    mine = lambda backend: bucc_mine(src_ids, source, tgt_ids, target, backend=backend)  # noqa: E731
    out: dict[str, object] = {}

    def store(name, function):
        return lambda: timed(lambda: out.__setitem__(name, function()))

    measurements = {
        "tatoeba faiss": store("tatoeba faiss", lambda: tatoeba_predictions(source, target, backend="faiss")),
        "tatoeba torch": store("tatoeba torch", lambda: tatoeba_predictions(source, target, backend="torch")),
        "tatoeba naive": store("tatoeba naive", lambda: naive_knn(target[:subset], source, 1)),
        "tatoeba numpy": store("tatoeba numpy", lambda: per_query_numpy(target[:numpy_subset], source)),
        "bucc faiss": store("bucc faiss", lambda: mine("faiss")),
        "bucc torch": store("bucc torch", lambda: mine("torch")),
        "bucc naive": store(
            "bucc naive", lambda: (naive_knn(source[:subset], target, 4), naive_knn(target[:subset], source, 4))
        ),
    }
    times = interleaved(measurements, args.repeats)
    check_agreement(out, subset)
    if not np.array_equal(out["tatoeba numpy"], out["tatoeba faiss"][:numpy_subset]):
        raise AssertionError("the per-query numpy loop and hf_itt disagree on top-1 neighbours")
    scale = args.sentences / subset
    naive = {task: median(times[f"{task} naive"]) * scale for task in ("tatoeba", "bucc")}
    rows = []
    for task in ("tatoeba", "bucc"):
        rows.append(
            [
                task,
                "naive Python loop (extrapolated)",
                f"{subset} of {args.sentences}",
                naive[task],
                spread([t * scale for t in times[f"{task} naive"]]),
                "1.00x",
            ]
        )
        if task == "tatoeba":
            numpy_scale = args.sentences / numpy_subset
            seconds = median(times["tatoeba numpy"]) * numpy_scale
            rows.append(
                [
                    task,
                    "per-query numpy loop (extrapolated)",
                    f"{numpy_subset} of {args.sentences}",
                    seconds,
                    spread([t * numpy_scale for t in times["tatoeba numpy"]]),
                    f"{naive[task] / seconds:.1f}x",
                ]
            )
        for backend in ("faiss", "torch"):
            seconds = median(times[f"{task} {backend}"])
            rows.append(
                [
                    task,
                    f"hf_itt.metrics.retrieval_search, {backend}",
                    args.sentences,
                    seconds,
                    spread(times[f"{task} {backend}"]),
                    f"{naive[task] / seconds:.1f}x",
                ]
            )
    worst = min(naive[task] / median(times[f"{task} {b}"]) for task in ("tatoeba", "bucc") for b in ("faiss", "torch"))
    accuracy = float(np.mean(out["tatoeba faiss"] == np.arange(args.sentences)))
    print_table(
        "Similarity search: hf_itt.metrics.retrieval_search vs a naive Python loop",
        ["search", "method", "queries run", "median (s)", "range (s)", "speed-up vs naive"],
        rows,
        [
            machine_line(args),
            f"{args.sentences:,} x {args.sentences:,} embeddings, dimension {args.dim}; {args.repeats} interleaved repeats",
            f"the naive loop ran {subset} queries per direction; its time is scaled by {scale:g} (linear in queries)",
            f"same top-1 asserted: faiss = torch on all queries, = naive on the {subset} it ran; "
            f"synthetic pair accuracy {100 * accuracy:.1f}%",
            f"slowest hf_itt backend vs naive: {verdict(worst, TARGET)}",
            f"vs the per-query numpy loop (Tatoeba): faiss "
            f"{median(times['tatoeba numpy']) * args.sentences / numpy_subset / median(times['tatoeba faiss']):.1f}x, torch "
            f"{median(times['tatoeba numpy']) * args.sentences / numpy_subset / median(times['tatoeba torch']):.1f}x",
        ],
    )
    return 0


def check_agreement(out: dict, subset: int) -> None:
    faiss_top, torch_top = out["tatoeba faiss"], out["tatoeba torch"]
    naive_top = np.array([best[0] for best in out["tatoeba naive"]])
    if not np.array_equal(faiss_top, torch_top):
        raise AssertionError(f"faiss and torch disagree on {int((faiss_top != torch_top).sum())} top-1 neighbours")
    if not np.array_equal(faiss_top[:subset], naive_top):
        raise AssertionError(
            f"hf_itt and the naive loop disagree on {int((faiss_top[:subset] != naive_top).sum())} top-1 neighbours"
        )
    faiss_pairs, torch_pairs = out["bucc faiss"], out["bucc torch"]
    if set(faiss_pairs) != set(torch_pairs):
        raise AssertionError(
            f"bucc_mine found different pairs with faiss and torch ({len(set(faiss_pairs) ^ set(torch_pairs))} differ)"
        )
    worst = max((abs(faiss_pairs[pair] - torch_pairs[pair]) for pair in faiss_pairs), default=0.0)
    if worst > 1e-4:  # float32 sums in a different order: scores equal up to rounding
        raise AssertionError(f"bucc_mine margin scores differ by up to {worst:.2g} between faiss and torch")


if __name__ == "__main__":
    raise SystemExit(main())
