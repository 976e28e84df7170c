"""Shared plumbing of the benchmark scripts: arguments, model sizes, tokenizer, timing, memory, tables.

Every script compares two (or more) ways of doing the same work *in the same process*, interleaving
the measurements (A, B, A, B, ...) and reporting medians, because the machines these run on are noisy.
``--tiny`` shrinks everything so CI runs a script in seconds; the default size is "small but
realistic": an XLM-R-shaped encoder with the real 250,002-token vocabulary (so embedding and
optimizer costs are real); ``--model-size large`` is XLM-R Large's shape (use it on a GPU).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HF_ITT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CACHE_DIR = Path(os.environ.get("HF_ITT_BENCH_CACHE", Path.home() / ".cache" / "hf_itt" / "benchmarks"))
XLMR_VOCAB = 250_002

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class ModelSize:
    hidden: int
    layers: int
    heads: int
    vocab: int | None  # None: the tokenizer's own (tiny runs)


SIZES = {
    "tiny": ModelSize(32, 2, 2, None),
    "small": ModelSize(256, 4, 4, XLMR_VOCAB),
    "base": ModelSize(768, 12, 12, XLMR_VOCAB),
    "large": ModelSize(1024, 24, 16, XLMR_VOCAB),
}


# ------------------------------------------------------------------------------------------ arguments


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="seconds-long CI run (tiny model and workload)")
    parser.add_argument(
        "--model-size",
        choices=sorted(SIZES),
        default="small",
        help="small: 4 layers, hidden 256, vocab 250,002 (default); large: XLM-R Large's shape",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: steadier timings on a shared machine; 0: torch's choice)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def setup(args) -> None:
    """Apply --tiny / --threads; seed everything."""
    import datasets
    import torch
    from transformers import set_seed

    datasets.disable_progress_bars()
    if args.tiny:
        args.model_size = "tiny"
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)


def on_cuda(args) -> bool:
    return str(args.device).startswith("cuda")


# ------------------------------------------------------------------------------------------ tokenizer and model


def shared_data(required: bool = True) -> Path | None:
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    if required:
        sys.exit(
            f"real data samples not found at {SHARED_DATA}: set HF_ITT_SHARED_DATA to the folder holding "
            "xquad/, tatoeba/, xcopa/ and ud/"
        )
    return None


def corpus_texts(data: Path) -> list[str]:
    """Every sentence/paragraph of the real samples (XQuAD, Tatoeba, XCOPA, UD) to train a vocabulary on."""
    import json

    texts: list[str] = []
    for path in sorted(data.glob("xquad/xquad.*.json")):
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                texts += [paragraph["context"], *(qa["question"] for qa in paragraph["qas"])]
    for path in sorted(data.glob("tatoeba/tatoeba.*-eng.*")):
        texts += path.read_text(encoding="utf-8").splitlines()
    for path in sorted(data.glob("xcopa/data/*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [row["premise"], row["choice1"], row["choice2"]]
    for path in sorted(data.glob("ud/*/*.conllu")):
        texts += [
            line[len("# text = ") :]
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("# text = ")
        ]
    return [text for text in texts if text.strip()]


def load_tokenizer(tiny: bool):
    """An XLM-R tokenizer trained offline (hf_itt.demo.tiny.build_tokenizer), cached under CACHE_DIR.

    Default: a 32,000-piece Unigram vocabulary trained on the real samples (about two minutes, once).
    Tiny: 600 pieces on the test fixture corpus (a second). XLM-R's own 250k vocabulary splits words
    a little less, so real lengths here are slightly longer than XLM-R's (padding savings are
    understated, not overstated).
    """
    from transformers import AutoTokenizer

    from hf_itt.demo.tiny import build_tokenizer

    name, vocab = ("tokenizer-fixture-600", 600) if tiny else ("tokenizer-shared-32000", 32_000)
    folder = CACHE_DIR / name
    if not (folder / "tokenizer_config.json").is_file():
        if tiny:
            corpus = (REPO_ROOT / "tests" / "fixtures" / "corpus.txt").read_text(encoding="utf-8")
            texts = [line for line in corpus.splitlines() if line.strip()] * 3
        else:
            texts = corpus_texts(shared_data())
        print(f"training a {vocab}-piece tokenizer into {folder} (once) ...", file=sys.stderr)
        tokenizer = build_tokenizer(texts, vocab_size=vocab)
        folder.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def encoder_config(size_name: str, tokenizer, max_positions: int = 514):
    from hf_itt.demo.tiny import encoder_config as tiny_encoder_config

    size = SIZES[size_name]
    return tiny_encoder_config(
        size.vocab or len(tokenizer),
        hidden_size=size.hidden,
        num_layers=size.layers,
        num_heads=size.heads,
        max_positions=max_positions,
    )


def build_model(size_name: str, tokenizer, tasks: dict, seed: int = 0):
    """A randomly initialised MultiTaskModel (XLM-R-shaped encoder + one head per task)."""
    import torch

    from hf_itt.training.modeling import MultiTaskConfig, MultiTaskModel

    torch.manual_seed(seed)
    return MultiTaskModel(MultiTaskConfig(encoder=encoder_config(size_name, tokenizer), tasks=tasks))


def model_line(model) -> str:
    encoder = model.config.encoder
    params = sum(p.numel() for p in model.parameters())
    return (
        f"model: {encoder.num_hidden_layers} layers, hidden {encoder.hidden_size}, vocab {encoder.vocab_size:,}, "
        f"{params / 1e6:.1f}M parameters"
    )


# ------------------------------------------------------------------------------------------ timing


def interleaved(measurements: dict[str, Callable[[], object]], repeats: int) -> dict[str, list]:
    """Run every measurement once per round, ``repeats`` rounds (A, B, A, B ...); results per name."""
    results: dict[str, list] = {name: [] for name in measurements}
    for _ in range(repeats):
        for name, measure in measurements.items():
            results[name].append(measure())
    return results


def timed(function: Callable[[], object], sync: Callable[[], None] | None = None) -> float:
    if sync:
        sync()
    start = time.perf_counter()
    function()
    if sync:
        sync()
    return time.perf_counter() - start


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def spread(values: Sequence[float]) -> str:
    """'min-max' of repeated measurements, to show the noise next to a median."""
    return f"{min(values):.3g}-{max(values):.3g}"


def cuda_sync(args) -> Callable[[], None] | None:
    if not on_cuda(args):
        return None
    import torch

    return torch.cuda.synchronize


# ------------------------------------------------------------------------------------------ memory


def _status_mib(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1)) / 1024


def release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so the next peak starts from live memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; returns the current RSS in MiB."""
    release_free_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    return _status_mib("VmHWM")


# ------------------------------------------------------------------------------------------ output


def machine_line(args) -> str:
    import torch

    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name() if on_cuda(args) and torch.cuda.is_available() else cpu
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"machine: {device}; {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, load {load:.1f}; "
        f"torch {torch.__version__}, python {platform.python_version()}"
    )


def print_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], notes: Sequence[str] = ()
) -> None:
    """A markdown table (pasteable into BENCHMARKS.md) with a title and notes."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
    for row in rows:
        print("| " + " | ".join(_cell(value) for value in row) + " |")
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def verdict(value: float, target: float) -> str:
    return f"{value:.3f}x ({'meets' if value >= target else 'misses'} >= {target:g}x)"
