"""One rank of benchmarks/memory.py: a few MultiTaskTrainer steps under DeepSpeed; writes its memory.

Started by the deepspeed launcher (see benchmarks/memory.py), e.g.

    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 benchmarks/ds_memory_worker.py --stage 2 --out OUT

Peak RSS is the kernel's high-water mark (VmHWM). It is reset after the model and data are built and
again when training begins (DeepSpeed's engine and optimizer exist by then), so the engine setup and
the training steps get a peak each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from harness import SIZES, build_model, load_tokenizer, peak_rss_mib, reset_peak_rss


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)  # inserted by the deepspeed launcher
    parser.add_argument("--stage", type=int, choices=(0, 2), required=True, help="ZeRO stage (0: no ZeRO)")
    parser.add_argument("--out", required=True, help="folder for rank<N>.json")
    parser.add_argument("--model-size", choices=sorted(SIZES), default="small")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    return parser.parse_args()


def deepspeed_config(stage: int, hyper: dict) -> dict:
    """The shipped ZeRO-2 preset; stage 0 keeps everything else and turns ZeRO off."""
    from hf_itt.config.deepspeed import resolve_deepspeed_config

    config = resolve_deepspeed_config("ds_configs/zero2.json", hyper)
    if stage == 0:
        config["zero_optimization"] = {"stage": 0}
    return config


def phase_probe():
    """A callback that closes the setup phase at on_train_begin: records its peak, restarts the count."""
    from transformers import TrainerCallback

    class PhaseProbe(TrainerCallback):
        def __init__(self):
            self.setup_peak = self.train_begin = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.setup_peak = peak_rss_mib()
            self.train_begin = reset_peak_rss()

    return PhaseProbe()


def optimizer_state_mib(trainer) -> float:
    """Bytes of the optimizer's state tensors on this rank (Adam moments: partitioned under ZeRO-2)."""
    import torch

    optimizer = trainer.optimizer
    for _ in range(5):  # accelerate and DeepSpeed wrap the torch optimizer (.optimizer), possibly twice
        if not hasattr(optimizer, "optimizer"):
            break
        optimizer = optimizer.optimizer
    total = sum(
        t.numel() * t.element_size()
        for state in optimizer.state.values()
        for t in state.values()
        if isinstance(t, torch.Tensor) and t.dim() > 0
    )
    return total / 2**20


def main() -> None:
    import torch
    from workloads import ITT_TASKS, quiet, random_task_dataset

    from hf_itt.config.deepspeed import prepare_deepspeed_launch
    from hf_itt.training.trainer import MultiTaskTrainer

    args = parse_args()
    hyper = dict(
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=1e-5,
        max_steps=args.steps,
        warmup_steps=0,
        **prepare_deepspeed_launch(),
    )
    from transformers import TrainingArguments

    output_dir = tempfile.mkdtemp(prefix="ds-memory-")
    training_args = TrainingArguments(
        output_dir,
        deepspeed=deepspeed_config(args.stage, hyper),
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
        **hyper,
    )
    tokenizer = load_tokenizer(args.tiny)
    model = build_model("tiny" if args.tiny else args.model_size, tokenizer, {"mnli": ITT_TASKS["mnli"]})
    dataset = random_task_dataset(
        ITT_TASKS["mnli"], args.batch_size * 2 * args.steps, args.seq_len, model.config.encoder.vocab_size
    )
    parameters = sum(p.numel() for p in model.parameters())
    rss_before = reset_peak_rss()
    cuda = torch.cuda.is_available() and os.environ.get("DS_ACCELERATOR") != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    probe = phase_probe()
    trainer = quiet(
        MultiTaskTrainer(
            model=model,
            args=training_args,
            train_datasets={"mnli": dataset},
            processing_class=tokenizer,
            callbacks=[probe],
        )
    )
    trainer.train()
    record = {
        "rank": int(os.environ.get("RANK", 0)),
        "world_size": training_args.world_size,
        "stage": args.stage,
        "parameters": parameters,
        "rss_before_mib": rss_before,
        "setup_peak_mib": probe.setup_peak,
        "rss_train_begin_mib": probe.train_begin,
        "peak_rss_mib": peak_rss_mib(),
        "optimizer_state_mib": optimizer_state_mib(trainer),
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "steps": trainer.state.global_step,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, f"rank{record['rank']}.json").write_text(json.dumps(record))
    shutil.rmtree(output_dir, ignore_errors=True)  # nothing is saved there; don't litter /tmp


if __name__ == "__main__":
    main()
