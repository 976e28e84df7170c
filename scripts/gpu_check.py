"""GPU check: joint multi-task training of an XLM-R-Large-sized encoder under DeepSpeed, with throughput.

    deepspeed --num_gpus 1 scripts/gpu_check.py --steps 300          # what run_scripts/gpu_check.sh runs
    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 scripts/gpu_check.py --tiny --steps 3   # CPU smoke (CI)

Stands alone on torch + transformers + DeepSpeed: a randomly initialised ``XLMRobertaModel`` (built from
its config, no download) shared by three heads (3-way classification, extractive QA, 17-tag tagging).
Each step trains one task on a task-homogeneous batch; the task comes from a schedule seeded by
(seed, step), so every rank picks the same one (ZeRO-2 aborts otherwise), and the choice is checked
across ranks with an all-reduce.

Reported: samples/s, tokens/s, peak CUDA memory and MFU. Model FLOPs per step (PaLM, Chowdhery et al.
2022, appendix B), for T tokens per step, sequence length s, L layers, hidden h:

    FLOPs = T * (6 * N + 12 * L * h * s)

N counts the parameters that take part in matrix products: the encoder layers plus the active head.
The embedding tables (256M of XLM-R Large's 560M parameters) are lookups and are left out. MFU divides
FLOPs/s by the H100's dense bf16 peak, 989 TFLOP/s (SXM; pass --peak-tflops for another card).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from torch import nn

TASKS = {"nli": 3, "qa": 2, "tagging": 17}  # task -> outputs of its head
H100_BF16_DENSE_TFLOPS = 989.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local_rank", type=int, default=-1)  # inserted by the deepspeed launcher
    parser.add_argument("--steps", type=int, default=300, help="timed steps")
    parser.add_argument("--warmup-steps", type=int, default=20, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=32, help="micro-batch per GPU")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--ds-config", default="ds_configs/zero2.json")
    parser.add_argument("--tiny", action="store_true", help="2-layer hidden-32 encoder: a CPU smoke run")
    parser.add_argument("--fp32", action="store_true", help="no bf16 (default on CPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", help="also write the results to this file (rank 0)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch, args.seq_len, args.warmup_steps = (
            min(args.batch, 4),
            min(args.seq_len, 16),
            min(args.warmup_steps, 1),
        )
    return args


def task_for_step(seed: int, step: int) -> str:
    """The same task on every rank: a pure function of (seed, step)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return list(TASKS)[int(torch.randint(len(TASKS), (1,), generator=generator))]


class JointModel(nn.Module):
    """One shared encoder, one head per task; only the active task's head runs in a step."""

    def __init__(self, config):
        super().__init__()
        from transformers import XLMRobertaModel

        self.encoder = XLMRobertaModel(config, add_pooling_layer=False)
        hidden = config.hidden_size
        self.heads = nn.ModuleDict(
            {
                "nli": nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, TASKS["nli"])),
                "qa": nn.Linear(hidden, TASKS["qa"]),
                "tagging": nn.Linear(hidden, TASKS["tagging"]),
            }
        )

    def forward(self, task: str, input_ids, attention_mask, labels):
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.heads[task](states[:, 0] if task == "nli" else states)
        if task == "qa":  # labels: (batch, 2) start/end token positions
            start, end = logits.float().unbind(-1)
            return (
                nn.functional.cross_entropy(start, labels[:, 0]) + nn.functional.cross_entropy(end, labels[:, 1])
            ) / 2
        return nn.functional.cross_entropy(logits.float().flatten(0, -2), labels.flatten())


def encoder_config(tiny: bool):
    from transformers import XLMRobertaConfig

    from hf_itt.demo.tiny import encoder_config as tiny_config
    from hf_itt.memory import KNOWN_SHAPES

    if tiny:
        return tiny_config(vocab_size=1000)
    s = KNOWN_SHAPES["xlm-roberta-large"]
    return XLMRobertaConfig(
        vocab_size=s.vocab_size,
        hidden_size=s.hidden_size,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads,
        intermediate_size=s.intermediate_size,
        max_position_embeddings=s.max_positions,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


def make_batch(task: str, args, vocab_size: int, rank: int, step: int, device) -> dict:
    """Random full-length sequences (no padding, so tokens/s counts real tokens) and labels of the task."""
    generator = torch.Generator().manual_seed(args.seed * 7919 + rank * 1_000_003 + step)
    b, s = args.batch, args.seq_len
    input_ids = torch.randint(5, vocab_size, (b, s), generator=generator)
    input_ids[:, 0], input_ids[:, -1] = 0, 2
    labels = {
        "nli": lambda: torch.randint(0, TASKS["nli"], (b,), generator=generator),
        "qa": lambda: torch.randint(1, s - 1, (b, 2), generator=generator).sort(dim=-1).values,
        "tagging": lambda: torch.randint(0, TASKS["tagging"], (b, s), generator=generator),
    }[task]()
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    return {key: value.to(device) for key, value in batch.items()}


def matmul_parameters(model: JointModel, task: str) -> int:
    """Parameters in matrix products for one step of ``task``: encoder layers + the active head."""
    return sum(p.numel() for p in model.encoder.encoder.parameters()) + sum(
        p.numel() for p in model.heads[task].parameters()
    )


def step_flops(matmul_params: int, config, batch: int, seq_len: int) -> float:
    """Model FLOPs of one training step on one rank: T * (6N + 12 L h s)."""
    tokens = batch * seq_len
    attention = 12 * config.num_hidden_layers * config.hidden_size * seq_len
    return tokens * (6 * matmul_params + attention)


def build_engine(args, model: JointModel, hidden_size: int, world_size: int):
    import deepspeed

    from hf_itt.config.deepspeed import fill_auto_values, resolve_deepspeed_config

    hyper = {
        "per_device_train_batch_size": args.batch,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-5,
        "weight_decay": 0.01,
        "bf16": not args.fp32,
        "world_size": world_size,
        "max_steps": args.steps + args.warmup_steps,
        "use_cpu": args.device == "cpu",
    }
    config = resolve_deepspeed_config(args.ds_config, hyper)
    config = fill_auto_values(
        config, hyper, num_training_steps=hyper["max_steps"], hidden_size=hidden_size, warmup_steps=args.warmup_steps
    )
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
    return engine


def check_lockstep(task: str, device) -> None:
    """Every rank must train the same task in a step; a mismatch aborts ZeRO-2 or corrupts training."""
    import torch.distributed as dist

    index = torch.tensor([list(TASKS).index(task)], device=device)
    low, high = index.clone(), index.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if low.item() != high.item():
        raise RuntimeError(f"ranks disagree on the task of this step: {task} here, indices {low.item()}..{high.item()}")


def train(args) -> dict:
    import deepspeed

    from hf_itt.config.deepspeed import release_shm_allreduce_buffer

    deepspeed.init_distributed()
    release_shm_allreduce_buffer()  # on CPU DeepSpeed never frees its 66 MB /dev/shm buffer per rank
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device, int(os.environ.get("LOCAL_RANK", 0)) if args.device == "cuda" else 0)
    if args.device == "cuda":
        torch.cuda.set_device(device)
    else:
        args.fp32 = True
    torch.manual_seed(args.seed)
    config = encoder_config(args.tiny)
    with torch.device(device):  # initialise on the GPU: XLM-R Large's init on CPU alone takes many seconds
        model = JointModel(config)
    if args.gradient_checkpointing:
        model.encoder.gradient_checkpointing_enable()
    # Count before DeepSpeed: ZeRO-3 leaves empty placeholders in place of partitioned parameters.
    counts = {task: matmul_parameters(model, task) for task in TASKS}
    counts["total"] = sum(p.numel() for p in model.parameters())
    engine = build_engine(args, model, config.hidden_size, world_size)
    flops, losses, tasks_seen = 0.0, [], {name: 0 for name in TASKS}
    started = None
    for step in range(args.warmup_steps + args.steps):
        if step == args.warmup_steps:
            _synchronize(args.device)
            started = time.perf_counter()
        task = task_for_step(args.seed, step)
        if world_size > 1:  # a no-op on one GPU, where it would only add a sync per step
            check_lockstep(task, device)
        loss = engine(task, **make_batch(task, args, config.vocab_size, rank, step, device))
        engine.backward(loss)
        engine.step()
        if step >= args.warmup_steps:
            flops += step_flops(counts[task], config, args.batch, args.seq_len) * world_size
            tasks_seen[task] += 1
        losses.append(loss.detach())  # no .item() here: it would sync every step
    _synchronize(args.device)
    elapsed = time.perf_counter() - started
    losses = [value.item() for value in (losses[0], losses[-1])]
    return summarize(args, config, counts["total"], world_size, elapsed, flops, losses, tasks_seen)


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def summarize(args, config, total_params, world_size, elapsed, flops, losses, tasks_seen) -> dict:
    samples = args.steps * args.batch * world_size
    achieved = flops / elapsed
    return {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "world_size": world_size,
        "ds_config": args.ds_config,
        "precision": "fp32" if args.fp32 else "bf16",
        "parameters": total_params,
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "micro_batch": args.batch,
        "seq_len": args.seq_len,
        "timed_steps": args.steps,
        "seconds": round(elapsed, 3),
        "samples_per_s": round(samples / elapsed, 2),
        "tokens_per_s": round(samples * args.seq_len / elapsed, 1),
        "model_tflops_per_s": _significant(achieved / 1e12),
        "mfu": _significant(achieved / (args.peak_tflops * 1e12 * world_size)),
        "peak_tflops_per_gpu": args.peak_tflops,
        "peak_cuda_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device == "cuda" else None,
        "gradient_checkpointing": args.gradient_checkpointing,
        "tasks_seen": tasks_seen,
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
    }


def _significant(value: float) -> float:
    return float(f"{value:.4g}")


def main(argv=None) -> None:
    args = parse_args(argv)
    result = train(args)
    if int(os.environ.get("RANK", 0)) == 0:
        print("GPU_CHECK " + json.dumps(result), flush=True)
        if args.json_out:
            with open(args.json_out, "w", encoding="utf-8") as handle:
                json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
