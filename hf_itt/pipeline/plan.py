"""`hf-itt plan`: the grid as a graph of unique stages, its compute, and running it once per stage.

hf-itt plan run_scripts/paper/grid.txt --seeds 1 2 3                 # print the plan
hf-itt plan GRID --seeds 1 2 3 --gpu h100 --utilization 0.5 --all    # every node, priced on H100
hf-itt plan GRID --seeds 1 2 3 --execute local --workers 4           # run it here, 4 worker processes
hf-itt plan GRID --seeds 1 2 3 --execute slurm --gpus 8              # one SLURM job per unique stage
hf-itt plan GRID --seeds 1 2 3 hub.namespace=my-org                 # key=value overrides for every run
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict

from hf_itt.errors import ConfigError
from hf_itt.pipeline.compute import (
    DEFAULT_UTILIZATION,
    EVAL_FLOPS_PER_PARAM,
    GPUS,
    TRAIN_FLOPS_PER_PARAM,
    ComputeModel,
    NodeCost,
    count_parameters,
    gpu_hours,
)
from hf_itt.pipeline.executor import run_local
from hf_itt.pipeline.graph import StageGraph, build_graph, load_runs
from hf_itt.pipeline.grid_status import fill_status
from hf_itt.pipeline.prepare import run_prepare
from hf_itt.pipeline.slurm import submit

OVERRIDE = re.compile(r"^[A-Za-z_][\w.\[\]-]*=")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hf-itt plan",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[1:]),
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="GRID_OR_CONFIG|key=value",
        help="grid files (.txt, one YAML per line) or experiment YAMLs; key=value overrides for every run",
    )
    p.add_argument(
        "--seeds", nargs="+", metavar="SEED", help="seeds of every experiment (default: each file's own seed)"
    )
    p.add_argument(
        "--gpus",
        type=int,
        default=1,
        help="GPUs per stage job: the world size the stage hashes "
        "are computed for (default 1); >1 launches each stage with deepspeed",
    )
    p.add_argument(
        "--gpu", choices=sorted(GPUS), default="a100", help="GPU the estimate is priced on (bf16 dense peak)"
    )
    p.add_argument(
        "--utilization",
        type=float,
        default=DEFAULT_UTILIZATION,
        help=f"fraction of the peak a run achieves (model FLOPs utilisation; default {DEFAULT_UTILIZATION})",
    )
    p.add_argument("--parameters", type=int, help="encoder parameters, when the plan cannot read the model config")
    p.add_argument("--sample-rows", type=int, default=1000, help="local rows tokenized per task to measure tokens")
    p.add_argument("--check-hub", action="store_true", help="look for published stages on the Hub (downloads them)")
    p.add_argument("--all", action="store_true", help="list every node, not a summary of targets and evaluations")
    p.add_argument(
        "--execute",
        choices=("local", "slurm"),
        help="run the graph: here with --workers processes, or as SLURM jobs with dependencies",
    )
    p.add_argument("--workers", type=int, default=1, help="local: worker processes (each runs one stage at a time)")
    p.add_argument(
        "--gpus-per-worker",
        type=int,
        default=None,
        help="local: GPUs of each worker (default --gpus when CUDA is visible, else 0: CPU)",
    )
    p.add_argument("--logs", default="grid_logs", help="folder of the per-stage logs (and SLURM's job record)")
    p.add_argument("--report", default="report", help="report folder written after the grid")
    p.add_argument(
        "--sbatch-args",
        default="",
        help="slurm: extra sbatch options for every job, e.g. '--partition gpu --time 48:00:00'",
    )
    return p


def parse_args(argv: list[str] | None):
    """Seeds are the integers right after --seeds; what follows them (overrides, files) is an item."""
    args = parser().parse_intermixed_args(argv)
    if args.seeds:
        count = next((i for i, seed in enumerate(args.seeds) if not seed.lstrip("-").isdigit()), len(args.seeds))
        args.items += args.seeds[count:]
        args.seeds = [int(seed) for seed in args.seeds[:count]]
        if not args.seeds:
            raise ConfigError("--seeds needs at least one integer, e.g. --seeds 1 2 3")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workers < 1 or args.gpus < 1 or not 0 < args.utilization <= 1:
        raise ConfigError("--workers and --gpus must be >= 1 and --utilization in (0, 1]")
    paths = [item for item in args.items if not OVERRIDE.match(item)]
    overrides = tuple(item for item in args.items if OVERRIDE.match(item))
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # the plan tokenizes samples of local data: no bars between its lines
    runs = load_runs(paths, args.seeds, overrides)
    run_prepare_hooks(runs)
    graph = build_graph(runs, world_size=args.gpus)

    notes = fill_status(graph, check_hub=args.check_hub or args.execute is not None)
    print_plan(graph, args, notes)
    if args.execute == "local":
        return run_local(
            graph, workers=args.workers, gpus_per_worker=args.gpus_per_worker, logs=args.logs, report=args.report
        )
    if args.execute == "slurm":
        submit(graph, gpus=args.gpus, logs=args.logs, report=args.report, sbatch_args=args.sbatch_args)
    return 0


def run_prepare_hooks(runs) -> None:
    """As --dry-run does: a `prepare:` hook builds data or a base model that the stage hashes read."""

    seen = set()
    for run in runs:
        if run.config.prepare and run.config_file not in seen:
            seen.add(run.config_file)
            run_prepare(run.config)


# ---- printing ---------------------------------------------------------------------------------------
def print_plan(graph: StageGraph, args, notes: list[str]) -> None:
    costs = price(graph, args)
    files = len({run.config_file for run in graph.runs})
    seeds = " ".join(map(str, args.seeds)) if args.seeds else "each file's own"
    print(
        f"grid: {len(graph.runs)} runs ({files} experiment files x seeds {seeds}); world size {graph.world_size}; "
        f"stage hashes as run_itt.py computes them"
    )
    print_counts(graph)
    print_stages(graph, costs, args)
    print_compute(graph, costs, args)
    for note in notes:
        print(f"note: {note}")


def print_counts(graph: StageGraph) -> None:
    itt, target, evals = graph.of_kind("itt"), graph.of_kind("target"), graph.of_kind("eval")
    unique, naive = len(itt) + len(target), graph.naive["itt"] + graph.naive["target"]
    print(
        f"unique stages: {unique} to train (ITT {len(itt)}, target fine-tunings {len(target)}); "
        f"naive count: {naive} (ITT {graph.naive['itt']}, targets {graph.naive['target']}); "
        f"reuse saves {naive - unique} trainings"
    )
    print(
        f"evaluations: {len(target) + len(evals)} (each run scores every target into its own results; "
        f"{len(evals)} without a fine-tuning of their own)"
    )
    status = Counter(node.status for node in graph.nodes.values())
    print("status: " + ", ".join(f"{count} {name}" for name, count in sorted(status.items())))
    provisional = graph.provisional()
    if provisional:
        reasons = sorted({reason for node in provisional for reason in node.provisional})
        print(f"provisional hashes: {len(provisional)} nodes (data not readable here: {'; '.join(reasons)})")


def print_stages(graph: StageGraph, costs: dict[str, NodeCost], args) -> None:
    params = costs["__parameters__"]
    shown = graph.nodes.values() if args.all else graph.of_kind("itt")
    width = max([16, *(len(node.key) for node in shown)])
    print(
        f"\n{'key':{width}} {'kind':6} {'first run: job':30} {'runs':>4} {'parent':16} {'status':9} {'GPU-h':>8}  sizes"
    )
    for node in shown:
        cost = costs[node.key]
        print(
            f"{node.key:{width}} {node.kind:6} {node.run.label + ': ' + node.ref:30.30} {len(node.users):>4} "
            f"{(node.parent or 'base')[:16]:16} {node.status:9} {fmt_hours(cost, params, args):>8}  "
            f"{'; '.join(cost.sources + [f'unknown: {u}' for u in cost.unknown])}"
        )
    if not args.all:
        groups = defaultdict(list)
        for node in graph.of_kind("target", "eval"):
            groups[(node.kind, node.job.name)].append(node)
        print(f"\n{'target':14} {'kind':6} {'nodes':>5} {'to run':>6} {'GPU-h':>9}  sizes (first node)")
        for (kind, name), nodes in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
            total = sum(costs[n.key].flops(params) for n in nodes) if params else None
            unknown = any(costs[n.key].unknown for n in nodes)
            hours = (
                "?"
                if params is None
                else f"{gpu_hours(total, args.gpu, args.utilization):.1f}" + ("+?" if unknown else "")
            )
            first = costs[nodes[0].key]
            todo = sum(not n.done for n in nodes)
            print(
                f"{name:14} {kind:6} {len(nodes):>5} {todo:>6} {hours:>9}  "
                f"{'; '.join(first.sources + [f'unknown: {u}' for u in first.unknown])}"
            )


def fmt_hours(cost: NodeCost, params: int | None, args) -> str:
    if params is None:
        return "?"
    text = f"{gpu_hours(cost.flops(params), args.gpu, args.utilization):.1f}"
    return text + ("+?" if cost.unknown else "")


def price(graph: StageGraph, args) -> dict:
    model = ComputeModel(sample_rows=args.sample_rows)
    costs: dict = {key: model.node_cost(node, graph) for key, node in graph.nodes.items()}
    first = graph.runs[0].config.model
    params, source = (
        (args.parameters, "--parameters") if args.parameters else count_parameters(first.name_or_path, first.revision)
    )
    costs["__parameters__"], costs["__parameter_source__"] = params, f"{first.name_or_path}: {source}"
    return costs


def print_compute(graph: StageGraph, costs: dict, args) -> None:
    params = costs["__parameters__"]
    name, peak = GPUS[args.gpu]
    print(
        f"\ncompute: {costs['__parameter_source__']}, "
        + (f"{params:,} parameters" if params else "parameters unknown")
        + f"; {TRAIN_FLOPS_PER_PARAM} x parameters FLOPs per trained token, {EVAL_FLOPS_PER_PARAM} x per evaluated "
        f"token; {name} bf16 dense peak {peak / 1e12:.0f} TFLOP/s at {args.utilization:.0%} utilisation"
    )
    if params is None:
        print("GPU-hours: unknown without the parameter count (give --parameters N)")
        return
    totals = compute_totals(graph, costs, params)
    hours = {key: gpu_hours(value, args.gpu, args.utilization) for key, value in totals.items()}
    print(
        f"FLOPs, unique stages: {totals['unique']:.3g} (training {totals['train']:.3g}, evaluation "
        f"{totals['eval']:.3g}); naive: {totals['naive']:.3g}; still to run: {totals['todo']:.3g}"
    )
    print(
        f"GPU-hours, unique stages: {hours['unique']:,.1f} (training {hours['train']:,.1f}, evaluation "
        f"{hours['eval']:,.1f}); naive (every run trains its own stages): {hours['naive']:,.1f}; reuse saves "
        f"{hours['naive'] - hours['unique']:,.1f} ({1 - hours['unique'] / max(hours['naive'], 1e-12):.0%})"
    )
    print(f"GPU-hours still to run (not finished, published or done): {hours['todo']:,.1f}")
    measured = sum(costs[key].measured for key in graph.nodes)
    bound = sum(costs[key].bound for key in graph.nodes)
    print(
        f"token counts: measured on local data for {measured} nodes; the max_length bound for {bound} (no local "
        f"data or no tokenizer offline: an upper estimate, as batches are padded only to their longest row)"
    )
    unknown = [node for node in graph.nodes.values() if costs[node.key].unknown]
    if unknown:
        what = sorted({u for node in unknown for u in costs[node.key].unknown})
        print(f"not in the totals (size unknown; {len(unknown)} nodes have a part left out): {'; '.join(what)}")


def compute_totals(graph: StageGraph, costs: dict, params: int) -> dict[str, float]:
    totals = dict.fromkeys(("train", "eval", "naive", "todo"), 0.0)
    trainers = Counter(node.stage_hash for node in graph.of_kind("eval") if not node.job.is_retrieval)
    for node in graph.nodes.values():
        cost = costs[node.key]
        train, evaluate = cost.flops(params, evaluate=False), cost.flops(params, train=False)
        totals["train"] += train
        totals["eval"] += evaluate
        trainings = len(node.users) if node.kind == "itt" else 1 + trainers[node.stage_hash] * (node.kind == "target")
        totals["naive"] += train * trainings + evaluate
        totals["todo"] += train * (node.status == "todo") + evaluate * (node.status in ("todo", "evaluate"))
    totals["unique"] = totals["train"] + totals["eval"]
    return totals
