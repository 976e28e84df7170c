"""A real pretrained multilingual encoder on CPU: MultiTaskTrainer vs plain Trainer, retrieval, peak memory.

    python benchmarks/real_model.py                       # builds multilingual-e5-small once into the cache
    python benchmarks/real_model.py --base runs/real_cpu/e5-small
    python benchmarks/real_model.py --tiny --base DIR     # CI smoke run (a few steps, a few sentences)

The encoder is multilingual-e5-small (12 layers, hidden 384, XLM-R's 250,002-piece vocabulary, 117.7M
parameters, 96M of them the word embedding) built by ``hf-itt build-base e5-small`` (extra ``realbase``).

1. Training throughput: English XQuAD QA features (hf_itt preprocessing, 256 tokens, stride 64) padded to
   256 tokens, so every batch of every run has the same shape; plain ``transformers.Trainer`` vs
   ``MultiTaskTrainer`` on that one task, same initial weights, seed, batch size and steps, interleaved
   rounds (ABBA), paired medians; once with every parameter training and once with the freeze of
   run_scripts/real_cpu.yaml (embeddings and layers 0-9). Target: MultiTaskTrainer >= 0.98x.
2. Retrieval: Tatoeba pairs of 13 languages, both sides embedded at layer 7 of 12 (mean-pooled) by
   ``hf_itt.metrics.retrieval_search.embed_sentences`` (length-sorted batches) vs the same batch size in file
   order (the usual loop); identical embeddings asserted; then top-1 search per language.
3. Peak RSS of each part (the process's high-water mark, reset before the part).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import (
    CACHE_DIR,
    base_parser,
    interleaved,
    machine_line,
    median,
    peak_rss_mib,
    print_table,
    reset_peak_rss,
    setup,
    shared_data,
    spread,
    timed,
    verdict,
)
from trainer_overhead import multitask_run, plain_run

TARGET = 0.98
STUDY_FREEZE = ["embeddings."] + [f"encoder.layer.{i}." for i in range(10)]  # as run_scripts/real_cpu.yaml
TATOEBA = ["ar", "de", "es", "fr", "he", "hi", "ja", "ru", "sw", "th", "tr", "vi", "zh"]


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--base", help="a built e5-small folder (default: build one into the benchmark cache)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run (the first is not timed)")
    parser.add_argument(
        "--rounds", type=int, default=6, help="interleaved rounds of the plain vs MultiTaskTrainer pair"
    )
    parser.add_argument("--pairs", type=int, default=200, help="Tatoeba pairs per language")
    parser.add_argument("--retrieval-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of the retrieval comparison")
    args = parser.parse_args(argv)
    setup(args)
    if args.tiny:
        args.batch_size, args.seq_len, args.steps, args.rounds, args.pairs, args.repeats = 2, 64, 2, 1, 6, 1
    return args


def real_base(args) -> Path:
    from hf_itt.bases import build_base

    return build_base("e5-small", Path(args.base) if args.base else CACHE_DIR / "e5-small")


# ------------------------------------------------------------------------------------------ training


def qa_features(tokenizer, args):
    """English XQuAD training features, padded to --seq-len (identical batch shapes for every run)."""
    from hf_itt.task_types.features import preprocess
    from hf_itt.tasks.loading import load_split
    from hf_itt.tasks.registry import get_task

    spec = get_task("squad_v1")
    rows = load_split("xquad", "validation", lang="en", data_files=str(shared_data() / "xquad"))
    rows = rows.select(range(args.batch_size * (args.steps + 1) * 2))
    stride = min(64, args.seq_len // 4)
    features = preprocess(rows, spec, tokenizer, split_role="train", max_length=args.seq_len, doc_stride=stride)

    def pad(batch):
        padded = tokenizer.pad(
            {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]},
            padding="max_length",
            max_length=args.seq_len,
        )
        return {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"]}

    return features.map(pad, batched=True)


def training_runs(args, base: Path, tokenizer, out: str):
    import torch

    from hf_itt.training.freezing import freeze_encoder
    from hf_itt.training.modeling import MultiTaskModel

    features = qa_features(tokenizer, args)
    runs = []
    for label, frozen in (("all parameters train", []), ("real_cpu.yaml freeze", STUDY_FREEZE)):
        torch.manual_seed(args.seed)
        model = MultiTaskModel.from_encoder(str(base), {"squad_v1": {"type": "extractive_qa"}})
        freeze_encoder(model, frozen)
        plain = plain_run(args, tokenizer, model, features, out)
        multi = multitask_run("MultiTaskTrainer, 1 task", args, tokenizer, model, {"squad_v1": features}, out)
        plain.name, multi.name = f"plain Trainer ({label})", f"MultiTaskTrainer ({label})"
        runs.append((label, model, plain, multi))
    return runs


def train_table(args, base: Path, tokenizer) -> None:
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as out:
        for label, model, plain, multi in training_runs(args, base, tokenizer, out):
            reset_peak_rss()
            results = {plain.name: [], multi.name: []}
            for index in range(args.rounds):
                for run in (plain, multi) if index % 2 == 0 else (multi, plain):
                    results[run.name].append(run())
            peak = peak_rss_mib()
            ratios = [median(p["times"]) / median(m["times"]) for p, m in zip(results[plain.name], results[multi.name])]
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            for run in (plain, multi):
                times = [t for result in results[run.name] for t in result["times"]]
                tokens = median(result["tokens_per_s"] for result in results[run.name])
                ratio = f"{median(ratios):.3f} ({spread(ratios)})" if run is multi else "1"
                rows.append(
                    [
                        run.name,
                        f"{trainable / 1e6:.1f}M",
                        len(times),
                        median(times),
                        spread(times),
                        tokens,
                        ratio,
                        f"{peak:,.0f}",
                    ]
                )
            notes.append(f"{label}: MultiTaskTrainer throughput vs plain Trainer {verdict(median(ratios), TARGET)}")
            del model, plain, multi
    print_table(
        "Real encoder: MultiTaskTrainer vs plain Trainer (QA, multilingual-e5-small)",
        [
            "run",
            "trainable",
            "steps timed",
            "median step (s)",
            "step range (s)",
            "real tokens/s",
            "throughput vs plain: paired median (range)",
            "peak RSS of the pair (MiB)",
        ],
        rows,
        [
            machine_line(args),
            f"batch {args.batch_size} x {args.seq_len} tokens (English XQuAD QA windows padded "
            f"to {args.seq_len}), {args.steps} steps per run (first untimed), {args.rounds} ABBA rounds, same "
            "initial weights every run",
            *notes,
        ],
    )


# ------------------------------------------------------------------------------------------ retrieval


def file_order_embeddings(model, tokenizer, sentences, *, layer: int, batch_size: int, max_length: int):
    """The usual loop: batches in file order, padded to the batch's longest sentence, mean-pooled."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(sentences), batch_size):
            batch = tokenizer(
                sentences[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch, output_hidden_states=True).hidden_states[layer]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(out)


def retrieval_table(args, base: Path, tokenizer) -> None:
    import real_data
    from transformers import AutoModel

    from hf_itt.metrics.retrieval_search import cosine_knn, default_retrieval_layer, embed_sentences

    model = AutoModel.from_pretrained(base, add_pooling_layer=False).eval()
    layer = default_retrieval_layer(model.config)
    languages = TATOEBA[:2] if args.tiny else TATOEBA
    pairs = real_data.tatoeba(shared_data(), languages, args.pairs)
    sentences = [s for rows in pairs.values() for s in list(rows["source_sentence"]) + list(rows["target_sentence"])]
    tokens = sum(len(ids) for ids in tokenizer(sentences, truncation=True, max_length=128)["input_ids"])
    reset_peak_rss()
    kwargs = {"layer": layer, "batch_size": args.retrieval_batch, "max_length": 128}
    outputs = {}

    def run(name, function):
        def measure():
            start = time.perf_counter()
            outputs[name] = function()
            return time.perf_counter() - start

        return measure

    results = interleaved(
        {
            "hf_itt embed_sentences (length-sorted)": run(
                "sorted", lambda: embed_sentences(model, tokenizer, sentences, show_progress=False, **kwargs)
            ),
            "file-order batches": run("file", lambda: file_order_embeddings(model, tokenizer, sentences, **kwargs)),
        },
        args.repeats,
    )
    peak = peak_rss_mib()
    assert np.allclose(outputs["sorted"], outputs["file"], atol=1e-3), "the two loops embed differently"
    search, accuracy, offset = [], [], 0
    for rows in pairs.values():
        n = len(rows)
        source, target = outputs["sorted"][offset : offset + n], outputs["sorted"][offset + n : offset + 2 * n]
        offset += 2 * n
        search.append(timed(lambda: cosine_knn(target, source, 1)))
        accuracy.append(float((cosine_knn(target, source, 1)[1][:, 0] == np.arange(n)).mean()))
    base_time = median(results["file-order batches"])
    rows = [
        [
            name,
            len(sentences),
            median(times),
            spread(times),
            len(sentences) / median(times),
            tokens / median(times),
            f"{base_time / median(times):.2f}x",
        ]
        for name, times in results.items()
    ]
    print_table(
        "Real encoder: Tatoeba embedding throughput (multilingual-e5-small, layer 7 of 12)",
        ["loop", "sentences", "median time (s)", "range (s)", "sentences/s", "real tokens/s", "speed vs file order"],
        rows,
        [
            machine_line(args),
            f"{len(pairs)} languages x {args.pairs} pairs, both sides; batch "
            f"{args.retrieval_batch}, max 128 tokens; identical embeddings (atol 1e-3); peak RSS {peak:,.0f} MiB",
            f"top-1 search (cosine_knn) per language: median {1000 * median(search):.1f} ms for {args.pairs} "
            f"queries x {args.pairs} keys; mean top-1 accuracy {100 * np.mean(accuracy):.1f} % (layer {layer})",
        ],
    )


def main(argv=None) -> int:
    from transformers import AutoTokenizer

    args = parse_args(argv)
    reset_peak_rss()
    base = real_base(args)
    tokenizer = AutoTokenizer.from_pretrained(base)
    print(f"base: {base} (peak RSS so far {peak_rss_mib():,.0f} MiB); pid {os.getpid()}")
    train_table(args, base, tokenizer)
    retrieval_table(args, base, tokenizer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
