"""Peak memory of a training step, ZeRO-2 vs no ZeRO, on 2 DeepSpeed ranks; next to the estimates.

    python benchmarks/memory.py            # small XLM-R-shaped model, 2 CPU ranks (a few minutes)
    python benchmarks/memory.py --tiny     # CI smoke run
    python benchmarks/memory.py --device cuda --model-size large   # needs 2 GPUs for a real ZeRO-2 split

Launches ``deepspeed --num_gpus 2 benchmarks/ds_memory_worker.py`` (with ``DS_ACCELERATOR=cpu`` on CPU)
once with the shipped ZeRO-2 preset and once with the same config at ZeRO stage 0; both launches run
at the same time (peak RSS is per process). Each rank reports its RSS after building the model and its
peak RSS over DeepSpeed's setup and the training steps. The second table gives hf_itt.memory's and
DeepSpeed's own estimator's per-GPU model-state figures for XLM-R Large.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import REPO_ROOT, base_parser, load_tokenizer, machine_line, on_cuda, print_table, setup

MIB, GIB = 2**20, 2**30
WORKER = Path(__file__).resolve().parent / "ds_memory_worker.py"
STAGES = {0: "no ZeRO (stage 0)", 2: "ZeRO-2 (ds_configs/zero2.json)"}


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per launch")
    args = parser.parse_args(argv)
    setup(args)
    if args.tiny:
        args.seq_len, args.steps = 16, 2
    return args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(stage: int, out: Path, args) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    if not on_cuda(args):
        env["DS_ACCELERATOR"] = "cpu"
    command = [
        sys.executable,
        "-m",
        "deepspeed.launcher.runner",
        "--num_gpus",
        str(args.ranks),
        "--master_port",
        str(_free_port()),
        str(WORKER),
        "--stage",
        str(stage),
        "--out",
        str(out),
        "--model-size",
        args.model_size,
        "--batch-size",
        str(args.batch_size),
        "--seq-len",
        str(args.seq_len),
        "--steps",
        str(args.steps),
        *(["--tiny"] if args.tiny else []),
    ]
    log = open(out.with_suffix(".log"), "w")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def run_launches(args, folder: Path) -> dict[int, list[dict]]:
    processes = {stage: launch(stage, folder / f"stage{stage}", args) for stage in STAGES}
    records = {}
    for stage, process in processes.items():
        code = process.wait(timeout=args.timeout)
        log = (folder / f"stage{stage}.log").read_text(errors="replace")
        if code != 0:
            sys.exit(f"deepspeed launch for {STAGES[stage]} failed ({code}):\n{log[-4000:]}")
        records[stage] = sorted(
            (json.loads(p.read_text()) for p in (folder / f"stage{stage}").glob("rank*.json")), key=lambda r: r["rank"]
        )
    return records


def expected_growth(stage: int, parameters: int, ranks: int) -> float:
    """fp32 model-state bytes added by training (weights exist before): grads + Adam moments (+ ZeRO's
    fp32 partition copy), as DeepSpeed lays them out without mixed precision."""
    if stage == 0:
        return 12 * parameters  # 4 B gradients + 8 B Adam moments, all replicated
    return 16 * parameters / ranks  # 4 B fp32 partition + 4 B gradient partition + 8 B Adam, partitioned


def measured_rows(records: dict[int, list[dict]], ranks: int) -> list[list]:
    rows = []
    for stage, ranks_records in records.items():
        for record in ranks_records:
            base, parameters = record["rss_before_mib"], record["parameters"]
            peak = max(record["setup_peak_mib"], record["peak_rss_mib"])
            adam = 8 * parameters / (ranks if stage else 1) / MIB
            rows.append(
                [
                    STAGES[stage],
                    f"{record['rank']} of {record['world_size']}",
                    base,
                    record["setup_peak_mib"] - base,
                    record["rss_train_begin_mib"] - base,
                    record["peak_rss_mib"] - base,
                    peak,
                    expected_growth(stage, parameters, ranks) / MIB,
                    f"{record['optimizer_state_mib']:.0f} / {adam:.0f}",
                    "-" if record["cuda_peak_mib"] is None else record["cuda_peak_mib"],
                ]
            )
    return rows


def peak(record: dict) -> float:
    return max(record["setup_peak_mib"], record["peak_rss_mib"])


def estimate_rows() -> list[list]:
    """Per-GPU model states of XLM-R Large (+ a 3-way head), mixed precision: hf_itt.memory vs DeepSpeed."""
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    from hf_itt.memory import KNOWN_SHAPES, count_parameters, zero2_model_states

    total = count_parameters(KNOWN_SHAPES["xlm-roberta-large"]).total
    rows = []
    for gpus in (1, 2, 8):
        ours = zero2_model_states(total, gpus, 1, offload=False)[1]
        theirs = estimate_zero2_model_states_mem_needs(total, gpus, 1, cpu_offload=False)[1]
        name = "no ZeRO (1 GPU: nothing to partition)" if gpus == 1 else f"ZeRO-2 over {gpus} GPUs"
        rows.append([name, f"{total / 1e6:.0f}M", ours / GIB, theirs / GIB])
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    load_tokenizer(args.tiny)  # build the cached tokenizer once, before the ranks look for it
    with tempfile.TemporaryDirectory() as folder:
        records = run_launches(args, Path(folder))
    parameters = records[0][0]["parameters"]
    saving = [peak(r0) - peak(r2) for r0, r2 in zip(records[0], records[2])]
    print_table(
        "Memory: peak RSS of training steps, ZeRO-2 vs no ZeRO, 2 DeepSpeed ranks",
        [
            "config",
            "rank",
            "RSS after model build (MiB)",
            "engine setup: peak growth",
            "held after setup",
            "training steps: peak growth",
            "peak RSS (MiB)",
            "expected fp32 model-state growth",
            "Adam state measured / expected (MiB)",
            "CUDA peak (MiB)",
        ],
        measured_rows(records, args.ranks),
        [
            machine_line(args),
            f"model: {parameters / 1e6:.1f}M parameters ({args.model_size}); batch {args.batch_size} x {args.seq_len} "
            f"per rank, {args.steps} steps, fp32, launches with DS_ACCELERATOR={'cuda' if on_cuda(args) else 'cpu'}",
            f"ZeRO-2 lowers the per-rank peak by {', '.join(f'{s:.0f}' for s in saving)} MiB (ranks 0, 1); "
            f"expected from fp32 model states: {(expected_growth(0, parameters, args.ranks) - expected_growth(2, parameters, args.ranks)) / MIB:.0f} MiB",
            "growth columns are MiB above the RSS after model build: engine setup = DeepSpeed's initialize inside "
            "train() (flattened parameter copies, ZeRO's fp32 partition); steps = gradients, Adam states, activations, "
            "communication buffers; expected = fp32 gradients + Adam moments (+ ZeRO-2's fp32 partition copy)",
            *cpu_caveats(args),
        ],
    )
    print_table(
        "Estimates: XLM-R Large model states per GPU (bf16/fp16 mixed precision, Adam)",
        ["setup", "parameters", "hf_itt.memory (GiB)", "DeepSpeed estimate_zero2_model_states_mem_needs (GiB)"],
        estimate_rows(),
        [
            "activations are extra: python -m hf_itt.memory --batch 4 --seq-len 256 --bf16 --gpus 8 prints them",
            "not measurable here: no GPU; the CPU run above is fp32, so its bytes per parameter differ (16 vs 18+2)",
        ],
    )
    return 0


def cpu_caveats(args) -> list[str]:
    if on_cuda(args):
        return []
    return [
        "on CPU the measurement shows ZeRO-2's partitioning of gradients and Adam states, but NOT the GPU "
        "figures: DeepSpeed's CPU accelerator trains in fp32 (no 16-bit weights, no separate fp32 master copy), "
        "RSS includes Python/torch/DeepSpeed code (~the 'after model build' column minus the model), glibc may "
        "keep freed memory, dropout masks are full-width, and there is no CUDA context, caching allocator or "
        "NCCL buffers; compare growth with the fp32 column, not with the GPU estimates below"
    ]


if __name__ == "__main__":
    raise SystemExit(main())
