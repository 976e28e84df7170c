"""StageRunner: an experiment's ITT stages in order, then target fine-tuning and zero-shot evaluation.

Each ITT stage is one ``MultiTaskTrainer`` run (one task, or a joint mixture) that starts from the
previous stage's exported encoder on disk, so every stage gets a fresh Trainer (and DeepSpeed
engine). A stage is identified by a hash of everything that determines its weights; a finished or
published stage with that hash is reused instead of retrained, so experiments that share a prefix
train it once. Run layout (``config.run_dir``)::

    stages/<stage>/trainer/        Trainer output_dir: checkpoint-N (resume), logs
    stages/<stage>/checkpoint/     exported encoder + tokenizer + heads.safetensors + manifest + card
    targets/<task>/trainer/, targets/<task>/checkpoint/   target fine-tuning (full model, with head)
    targets/<task>/trainer/phase<i>-<task>/               a phased target's Trainer runs (XCOPA: siqa, copa)
    results/<task>.<split>.json    zero-shot results; report/ the report
"""

from __future__ import annotations

import logging
import shutil
import textwrap
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from hf_itt.config.experiment import ExperimentConfig
from hf_itt.errors import HfIttError, StageOrderError
from hf_itt.evaluation.bucc import stale_protocol
from hf_itt.evaluation.results import TaskResult, is_missing_split
from hf_itt.hub.manifest import read_manifest, redact_text
from hf_itt.metrics.scoring import METRIC_VERSION
from hf_itt.pipeline.checkpoints import HASH_FILE, last_checkpoint, resume_point
from hf_itt.pipeline.index import lookup, record
from hf_itt.pipeline.jobs import StageJob, build_jobs, select_job
from hf_itt.pipeline.locks import stage_lock
from hf_itt.pipeline.phases import progress as phase_progress
from hf_itt.pipeline.protocol import format_table, protocol_rows
from hf_itt.pipeline.target_eval import evaluate_target
from hf_itt.pipeline.train import TrainedStage, encoder_source, train_stage
from hf_itt.training.distributed import barrier, is_main_process, world_size

logger = logging.getLogger(__name__)


@dataclass
class StagePlan:
    """What the runner will do for one stage (printed by --dry-run, recorded in manifests)."""

    name: str
    kind: str  # "itt" | "from" | "target"
    stage_hash: str
    action: str  # "train" | "resume" | "reuse" | "download" | "evaluate-only"
    where: str = ""  # reused folder, published reference, or the checkpoint a resume starts from
    phases: list[str] = field(default_factory=list)  # a phased target's Trainer runs, in order


class StageRunner:
    """Run an experiment: ``StageRunner(load_experiment(path)).run()``."""

    def __init__(self, config: ExperimentConfig, force: bool = False, publisher=None, dry_run: bool = False):
        from hf_itt.hub.publishers import make_publisher  # defers huggingface_hub

        self.config, self.force, self.dry_run = config, force, dry_run
        self.run_dir = config.run_dir
        local_root = config.resolve_path(config.hub.local_root) or config.hub.local_root
        self.publisher = (
            publisher
            if publisher is not None
            else make_publisher(
                config.hub.publisher, local_root=local_root, private=config.hub.private, publishing=not dry_run
            )
        )
        self.index_dir = Path(local_root) / "by-hash"
        self._tokenizer = None

    # ---- planning -------------------------------------------------------------------------------
    def jobs(self) -> list[StageJob]:
        """One job per ITT stage and per fine-tuned target, each with its hash (chained)."""

        # a dry run plans with the data it can see: an unreadable file gives a provisional hash, named below
        return build_jobs(self.config, world_size(), allow_missing_data=self.dry_run)

    def plan(self) -> list[StagePlan]:
        plans = []
        for job in self.jobs():
            found = None if self.force else self.find_finished(job)
            resume = None if self.force or found else self.resume_point(job)
            action = "reuse" if found else ("resume" if resume else "train")
            found = found or (None if not resume else resume if job.phased else Path(resume).name)
            if job.kind == "from":
                action, found = "download", job.source
            elif job.kind == "target" and job.is_retrieval:
                action, found = "evaluate-only", f"encoder: {job.encoder}"
            if job.unresolved:  # a dry run with data it cannot read: the hash is not the run's
                action += " (provisional hash: data missing)"
            phases = [phase.name for phase in job.phases()] if job.phased else []
            plans.append(StagePlan(job.name, job.kind, job.stage_hash, action, str(found or ""), phases))
        return plans

    @staticmethod
    def resume_point(job: StageJob) -> str | None:
        """The checkpoint a rerun resumes from; for a phased target, how far its phases got."""
        if not job.phased:
            return resume_point(job.trainer_dir, job.stage_hash)
        marker = job.trainer_dir / HASH_FILE
        if not marker.is_file() or marker.read_text().strip() != job.stage_hash:
            return None  # nothing yet, or another configuration's phases (set aside when the job starts)
        return phase_progress(job.phases(), job.stage_hash, last_checkpoint)

    def print_plan(self) -> None:
        """The stages (hash, what will happen) and the protocol they follow (``hf_itt.pipeline.protocol``)."""
        print(f"experiment {self.config.experiment} (seed {self.config.seed}) -> {self.run_dir}")
        for plan in self.plan():
            where = f"  [{plan.where}]" if plan.where else ""
            print(f"  {plan.kind:6} {plan.name:24} {plan.stage_hash}  {plan.action}{where}")
            if plan.phases:
                print(f"  {'':6} {'':24} phases: {' -> '.join(plan.phases)}")
        print("protocol:")
        print(textwrap.indent(format_table(protocol_rows(self.config, self.jobs())), "  "))

    def find_finished(self, job: StageJob) -> Path | None:
        """A verified checkpoint of ``job``'s hash: in this run, the local hash index, or published."""
        from hf_itt.hub.publishers import find_reusable_stage  # defers huggingface_hub

        local = [job.checkpoint_dir]
        if not self.config.hub.reuse:  # only this run's own finished stages
            return find_reusable_stage(job.stage_hash, local_dirs=tuple(local))
        indexed = lookup(self.index_dir, job.stage_hash)
        if indexed is not None:
            local.append(indexed)
        publisher = self.publisher if job.kind == "itt" else None
        return find_reusable_stage(
            job.stage_hash,
            local_dirs=tuple(local),
            publisher=publisher,
            repo_id=job.repo_id if publisher is not None else None,
        )

    # ---- running --------------------------------------------------------------------------------
    def run(self, report: bool = True) -> list[TrainedStage]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        done: list[TrainedStage] = []
        publishing = _publishing(self.publisher)
        with publishing:
            for job in self.jobs():
                started = time.time()
                stage = self.run_job(job, done, publishing)
                done.append(stage)
                if is_main_process():
                    print(stage.summary_line(time.time() - started), flush=True)
        if is_main_process():
            self.print_unpublished(publishing.outcomes)
        if report and is_main_process():
            self.write_report()
        return done

    def print_unpublished(self, outcomes) -> None:
        """A failed publish never fails the run (the stage is on disk), but it must not go unnoticed."""

        failed = [outcome for outcome in outcomes if not outcome.ok]
        if not failed:
            return
        print(f"{len(failed)} stage(s) finished but NOT published (they stay on disk, marked finished):")
        for outcome in failed:
            print(f"  {outcome.stage_dir} -> {outcome.repo_id}: {redact_text(str(outcome.error))}")
        local = f" --local-root {self.index_dir.parent}" if self.config.hub.publisher == "local" else ""
        print(
            f"publish them later with: hf-itt publish {self.run_dir} --publisher {self.config.hub.publisher}{local}",
            flush=True,
        )

    def run_job(self, job: StageJob, done: list[TrainedStage], publishing) -> TrainedStage:
        source = done[-1] if done and job.kind != "target" else self.last_itt(done)
        if job.kind == "from":
            return TrainedStage.from_reference(job)
        if job.kind == "target" and job.is_retrieval:
            return self.evaluate_only(job, self.encoder_target(job, done) if job.encoder_target else source)
        found = None if self.force else self.find_finished(job)
        if found is not None:
            return self.reuse(job, found, publishing)
        if job.kind != "itt":  # targets belong to their run folder: nothing to share, nothing to lock
            return self.train(job, source, publishing)
        with self.claim(job) as waited:
            found = self.find_finished(job) if waited and not self.force else None
            if found is not None:  # the run we waited for trained it
                return self.reuse(job, found, publishing)
            return self.train(job, source, publishing)

    @staticmethod
    def encoder_target(job: StageJob, done: list[TrainedStage]) -> TrainedStage:
        """The fine-tuned target whose model ``job`` embeds with (planned before it)."""
        return next(stage for stage in done if stage.job.kind == "target" and stage.job.name == job.encoder_target)

    def claim(self, job: StageJob):
        """The stage's lock among the runs sharing this hub folder; a single process waits for it (then
        reuses the stage), a multi-process launch fails at once (its other ranks cannot wait that long)."""

        if not is_main_process():
            return nullcontext(False)
        return stage_lock(self.index_dir.parent, job.stage_hash, wait=world_size() == 1, stage=job.name)

    def reuse(self, job: StageJob, found: Path, publishing) -> TrainedStage:
        stage = TrainedStage.reused(job, found)
        if is_main_process() and Path(found) == job.checkpoint_dir:
            self.index_and_publish(job, found, publishing)  # a kill may have come before either
        if job.kind == "target" and self.needs_results(job):
            self.evaluate_on_main(job, found)
        return stage

    def train(self, job: StageJob, source, publishing) -> TrainedStage:
        if self.force and is_main_process():  # a fresh start: no resume point, no health restart count
            shutil.rmtree(job.trainer_dir, ignore_errors=True)
            (job.stage_dir / "attempt.json").unlink(missing_ok=True)
        if is_main_process():
            set_aside_stale_trainer_dir(job)
        barrier()
        stage = train_stage(job, source, self.config)
        if is_main_process():
            self.index_and_publish(job, stage.checkpoint, publishing)
        barrier()
        return stage

    def run_stage(self, name: str, expect_hash: str | None = None) -> TrainedStage:
        """Run one job of the experiment (``itt:<stage>`` or ``target:<task>``), as a grid executor or a
        SLURM job does: the ITT stages before it must be finished already (a parent is never trained
        here, so each stage of a grid is trained by its own job), then the job trains or is reused."""

        jobs = self.jobs()
        position = select_job(jobs, name, expect_hash)
        needed = ("itt", "from")  # and the fine-tuned target a retrieval target embeds with
        done = [
            self.finished_prefix(job)
            for job in jobs[:position]
            if job.kind in needed or job.name == jobs[position].encoder_target
        ]
        publishing = _publishing(self.publisher)
        with publishing:
            started = time.time()
            stage = self.run_job(jobs[position], done, publishing)
            if is_main_process():
                print(stage.summary_line(time.time() - started), flush=True)
        if is_main_process():
            self.print_unpublished(publishing.outcomes)
        return stage

    def finished_prefix(self, job: StageJob) -> TrainedStage:
        if job.kind == "from":
            return TrainedStage.from_reference(job)
        found = self.find_finished(job)
        if found is None:
            raise StageOrderError(
                f"stage {job.name!r} (hash {job.stage_hash}) of {self.config.experiment} is not "
                f"finished, so the stages after it cannot start; run it first (a grid runs "
                f"parents before their dependants: rerun the grid)"
            )
        return TrainedStage.reused(job, found)

    def index_and_publish(self, job: StageJob, checkpoint, publishing) -> None:
        """Record the stage in the hash index (a target too: another experiment with the same chain reuses
        its fine-tuned model) and publish an ITT stage unless its manifest says it already is."""

        record(self.index_dir, job.stage_hash, checkpoint)
        if job.kind == "itt" and self.publisher is not None and read_manifest(checkpoint).status != "published":
            publishing.submit(checkpoint, job.repo_id)

    def needs_results(self, job: StageJob) -> bool:
        """Evaluate unless every split has a result of this very stage chain, metric version and
        protocol with no language that failed for a reason other than missing data (a crash or a bad
        file is worth another try)."""
        if self.force:
            return True
        for split in self.config.evaluation.splits:
            path = self.run_dir / "results" / f"{job.target}.{split}.json"
            if not path.is_file():
                return True
            try:
                result = TaskResult.load(path)
            except (ValueError, TypeError):  # unreadable or an older schema: evaluate again
                return True
            if result.stage_hash != job.stage_hash or not all(map(is_missing_split, result.failed.values())):
                return True
            if result.metric_version != METRIC_VERSION or stale_protocol(result, self.config.evaluation):
                return True
        return False

    def evaluate_on_main(self, job: StageJob, model_path) -> None:

        if is_main_process():
            evaluate_target(job, model_path, self.config)
        barrier()

    def evaluate_only(self, job: StageJob, source) -> TrainedStage:
        """Retrieval targets embed with the last ITT encoder (or the base model): nothing to train."""

        if self.needs_results(job):
            self.evaluate_on_main(job, encoder_source(source, self.config)[0])
            return TrainedStage(job, None, "evaluated")
        return TrainedStage(job, None, "reused")

    @staticmethod
    def last_itt(done: list[TrainedStage]) -> TrainedStage | None:
        itt = [stage for stage in done if stage.job.kind in ("itt", "from")]
        return itt[-1] if itt else None

    def write_report(self) -> None:
        from hf_itt.report.build import build_report  # defers matplotlib

        results = self.run_dir / "results"
        if not any(results.glob("*.json")):
            return
        try:
            path = build_report([results], out=self.run_dir / "report")
            print(f"report: {path}")
        except HfIttError as err:  # a report problem never loses the results already written
            logger.warning("report not written: %s", err)


def set_aside_stale_trainer_dir(job: StageJob) -> None:
    """Trainer checkpoints belong to one stage hash: after a config change, move the old ones aside
    (never delete them) so the new configuration starts fresh instead of resuming the old one."""
    marker = job.trainer_dir / HASH_FILE
    if job.trainer_dir.is_dir() and (not marker.is_file() or marker.read_text().strip() != job.stage_hash):
        old = marker.read_text().strip() if marker.is_file() else "unknown"
        target = job.stage_dir / f"trainer.stale-{old}-{int(time.time())}"
        logger.warning(
            "%s holds checkpoints of another configuration (hash %s, now %s): moved to %s",
            job.trainer_dir,
            old,
            job.stage_hash,
            target,
        )
        job.trainer_dir.rename(target)
        (job.stage_dir / "attempt.json").unlink(missing_ok=True)
    job.trainer_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(job.stage_hash)


def _publishing(publisher):
    from hf_itt.hub.publishers import AsyncPublisher  # defers huggingface_hub

    return AsyncPublisher(publisher) if publisher is not None else _NoPublisher()


class _NoPublisher:
    outcomes: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def submit(self, *args, **kwargs):
        return None


__all__ = ["StageRunner", "StagePlan"]
