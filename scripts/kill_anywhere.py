#!/usr/bin/env python
"""Kill-anywhere check: SIGKILL the tiny 3-stage chain at random points, rerun it, compare.

    python scripts/kill_anywhere.py [--runs 20] [--seed 0] [--checkpoint DIR] [--workdir DIR] [--keep]

1. Runs the chain (tests/fixtures/experiments/tiny_chain.yaml, a tiny offline checkpoint) once,
   uninterrupted, watching its folder: every file or folder that appears is a possible kill point
   ("event": Trainer checkpoint-N files, full/, checkpoint.partial/, manifests, the hash index,
   published copies, results, the report; half-written temp files included).
2. N times, in a fresh folder: starts the same command, SIGKILLs its process group at a random
   event (plus a random small delay) or at a random time, reruns the same command (sometimes
   killed again) until it exits by itself.
3. Checks each trial: the rerun exits 0; every stage/target weight file equals the uninterrupted
   run's (exact tensors) and the result JSONs hold the same numbers; no stage that was finished
   before a rerun was trained again (same inode and mtime of its weights, and the runner says
   "reused"); every ``checkpoint/`` folder and published copy verifies with
   ``hf_itt.hub.manifest.verify_checkpoint`` after every attempt (a partial folder never looks
   finished); publishing status and the local hash index end as in the uninterrupted run.

Prints ``kill-anywhere: K/N runs recovered exactly`` and exits 1 when K < N.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHAIN = REPO / "tests" / "fixtures" / "experiments" / "tiny_chain.yaml"
CORPUS = REPO / "tests" / "fixtures" / "corpus.txt"
STATUS_LINE = re.compile(r"^\[(itt|target|from)\] (\S+): (\w+) ")
# tempfile names (".name.k3j_x9a1.tmp") differ on every run: match them by pattern
TEMP_NAME = re.compile(r"^(\..+?\.)[A-Za-z0-9_]{6,12}(\.(?:tmp|old))$")
ATTEMPTS_LIMIT = 6


# ---------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class KillPoint:
    """Kill when ``pattern`` (a glob under the trial folder) exists, ``delay`` s later; or at ``at`` s."""

    pattern: str | None = None
    delay: float = 0.0
    at: float | None = None

    def describe(self) -> str:
        if self.pattern is None:
            return f"time {self.at:.2f}s"
        return f"event {self.pattern}" + (f" +{self.delay:.2f}s" if self.delay else "")


@dataclass
class Attempt:
    returncode: int
    killed: bool
    seconds: float
    output: str


def chain_command(checkpoint: Path, root: Path, config: Path = CHAIN) -> list[str]:
    return [
        sys.executable,
        str(REPO / "run_itt.py"),
        "--config",
        str(config),
        f"model.name_or_path={checkpoint}",
        f"output_dir={root}/run",
        f"hub.local_root={root}/hub",
    ]


def run_attempt(command: list[str], root: Path, kill: KillPoint | None, log: Path) -> Attempt:
    """Run ``command`` once; SIGKILL its whole process group at ``kill`` (if reached before it exits)."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    started, killed, seen_at = time.time(), False, None
    existing = matches(kill, root)
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True
        )
        while process.poll() is None:
            now = time.time() - started
            if kill is not None and seen_at is None and reached(kill, root, now, existing):
                seen_at = now
            if seen_at is not None and now >= seen_at + kill.delay:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                killed = True
                break
            time.sleep(0.002)
    return Attempt(process.returncode, killed, time.time() - started, log.read_text(encoding="utf-8", errors="replace"))


def matches(kill: KillPoint | None, root: Path) -> set[str]:
    if kill is None or kill.pattern is None:
        return set()
    return set(glob.glob(str(root / kill.pattern)))


def reached(kill: KillPoint, root: Path, now: float, existing: set[str]) -> bool:
    """The kill time has come, or the event's file appeared (files a killed attempt left do not count)."""
    if kill.pattern is None:
        return now >= kill.at
    return bool(matches(kill, root) - existing)


class FolderWatcher(threading.Thread):
    """Records, in order, every path that appears under ``root`` (polled every ``interval`` s)."""

    def __init__(self, root: Path, interval: float = 0.01):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.events: list[tuple[float, str]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        seen, started = set(), time.time()
        while not self._stop_event.is_set():
            for path in self.snapshot():
                if path not in seen:
                    seen.add(path)
                    self.events.append((time.time() - started, path))
            time.sleep(self.interval)

    def snapshot(self) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(self.root):
            for name in dirs + files:
                found.append(event_pattern(Path(folder, name).relative_to(self.root)))
        return found

    def stop(self) -> list[tuple[float, str]]:
        self._stop_event.set()
        self.join()
        return self.events


def event_pattern(relative: Path) -> str:
    parts = [TEMP_NAME.sub(r"\1*\2", part) for part in relative.parts]
    return "/".join(glob.escape(part) if "*" not in part else part for part in parts)


# ----------------------------------------------------------------------------------------- checks
def stage_folders(root: Path) -> list[Path]:
    """Every folder that claims to be a finished stage: run checkpoints and published copies."""
    run = root / "run"
    folders = [p for p in sorted(run.glob("stages/*/checkpoint")) + sorted(run.glob("targets/*/checkpoint"))]
    folders += [
        p.parent for p in sorted((root / "hub").glob("*/*/*/stage_manifest.json")) if not p.parent.name.startswith(".")
    ]
    return folders


def unverifiable(root: Path) -> list[str]:
    from hf_itt.errors import HfIttError
    from hf_itt.hub.manifest import verify_checkpoint

    problems = []
    for folder in stage_folders(root):
        try:
            verify_checkpoint(folder)
        except HfIttError as err:
            problems.append(f"{folder.relative_to(root)} does not verify: {err}")
    return problems


def finished_stages(root: Path) -> dict[str, tuple[int, int]]:
    """{stage folder: (inode, mtime_ns) of its weights} for every run checkpoint that verifies."""
    from hf_itt.errors import HfIttError
    from hf_itt.hub.manifest import verify_checkpoint

    finished = {}
    for folder in stage_folders(root):
        if "run" not in folder.relative_to(root).parts[:1]:
            continue
        try:
            verify_checkpoint(folder)
        except HfIttError:
            continue
        weights = folder / "model.safetensors"
        finished[str(folder.relative_to(root))] = (weights.stat().st_ino, weights.stat().st_mtime_ns)
    return finished


def retrained(before: dict[str, tuple[int, int]], root: Path, output: str) -> list[str]:
    problems = []
    statuses = {(m.group(1), m.group(2)): m.group(3) for m in map(STATUS_LINE.match, output.splitlines()) if m}
    for folder, stamp in before.items():
        weights = root / folder / "model.safetensors"
        now = (weights.stat().st_ino, weights.stat().st_mtime_ns) if weights.exists() else None
        if now != stamp:
            problems.append(f"{folder} was finished before the rerun but its weights were rewritten")
        kind = "itt" if folder.startswith("run/stages/") else "target"
        status = statuses.get((kind, Path(folder).parent.name))
        if status is not None and status != "reused":
            problems.append(f"{folder} was finished before the rerun but the runner says {status!r}")
    return problems


def weight_files(root: Path) -> dict[str, Path]:
    run = root / "run"
    files = sorted(run.glob("stages/*/checkpoint/*.safetensors")) + sorted(
        run.glob("targets/*/checkpoint/*.safetensors")
    )
    return {str(path.relative_to(root)): path for path in files}


def numbers(value, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a result JSON (paths, names and dates are not results)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in numbers(item, f"{prefix}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in numbers(item, f"{prefix}[{i}]").items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix: float(value)}
    return {}


def result_numbers(root: Path) -> dict[str, dict[str, float]]:
    return {
        path.name: numbers(json.loads(path.read_text(encoding="utf-8")))
        for path in sorted((root / "run" / "results").glob("*.json"))
    }


def publish_state(root: Path) -> dict[str, object]:
    from hf_itt.hub.manifest import read_manifest

    state: dict[str, object] = {
        p.parent.parent.name: read_manifest(p.parent).status
        for p in sorted((root / "run").glob("stages/*/checkpoint/stage_manifest.json"))
    }
    state["index"] = sorted(p.name for p in (root / "hub" / "by-hash").glob("*.json"))
    return state


def compare_with_reference(reference: Path, root: Path) -> list[str]:
    import torch
    from safetensors.torch import load_file

    problems = []
    expected, got = weight_files(reference), weight_files(root)
    if expected.keys() != got.keys():
        problems.append(
            f"weight files differ: missing {sorted(expected.keys() - got.keys())}, "
            f"extra {sorted(got.keys() - expected.keys())}"
        )
    for name in sorted(expected.keys() & got.keys()):
        left, right = load_file(str(expected[name])), load_file(str(got[name]))
        changed = [key for key in left if key not in right or not torch.equal(left[key], right[key])]
        if changed or left.keys() != right.keys():
            problems.append(f"{name}: tensors differ from the uninterrupted run ({(changed or ['keys'])[:3]})")
    want, have = result_numbers(reference), result_numbers(root)
    if want.keys() != have.keys():
        problems.append(f"result files differ: {sorted(want)} vs {sorted(have)}")
    for name in sorted(want.keys() & have.keys()):
        diff = [
            key
            for key in want[name].keys() | have[name].keys()
            if not same_number(want[name].get(key), have[name].get(key))
        ]
        if diff:
            problems.append(f"results/{name}: numbers differ at {sorted(diff)[:3]}")
    if not (root / "run" / "report" / "report.md").is_file():
        problems.append("report/report.md missing")
    if publish_state(reference) != publish_state(root):
        problems.append(f"publish/index state {publish_state(root)} != uninterrupted {publish_state(reference)}")
    return problems


def same_number(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


# ----------------------------------------------------------------------------------------- trials
@dataclass
class Trial:
    index: int
    kills: list[KillPoint]
    attempts: list[Attempt] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def kills_done(self) -> int:
        return sum(attempt.killed for attempt in self.attempts)

    def line(self) -> str:
        status = "OK" if self.ok else "FAIL: " + " | ".join(self.problems)
        return (
            f"run {self.index + 1}: kill at "
            + ", then ".join(k.describe() for k in self.kills)
            + f" -> {self.kills_done} kill(s), {len(self.attempts)} attempt(s), "
            f"{sum(a.seconds for a in self.attempts):.0f}s: {status}"
        )


def run_trial(trial: Trial, command_for, reference: Path, root: Path) -> Trial:
    """Kill at each of ``trial.kills`` in turn, then rerun until the command exits by itself."""
    plan = list(trial.kills)
    while len(trial.attempts) < ATTEMPTS_LIMIT:
        before = finished_stages(root)
        kill = plan.pop(0) if plan else None
        attempt = run_attempt(command_for(root), root, kill, root / f"attempt{len(trial.attempts)}.log")
        trial.attempts.append(attempt)
        trial.problems += unverifiable(root) + retrained(before, root, attempt.output)
        if trial.problems or not attempt.killed:
            break
    last = trial.attempts[-1]
    if last.killed:
        trial.problems.append(f"still killed after {ATTEMPTS_LIMIT} attempts")
    elif last.returncode != 0:
        trial.problems.append(f"rerun exited {last.returncode}: {tail(last.output)}")
    if not trial.problems:
        trial.problems += compare_with_reference(reference, root)
    return trial


def tail(output: str, lines: int = 6) -> str:
    useful = [line for line in output.splitlines() if line.strip() and "it/s]" not in line]
    return " / ".join(useful[-lines:])


def random_kills(rng: random.Random, events: list[tuple[float, str]], duration: float) -> list[KillPoint]:
    """1-3 kill points: mostly file events of the uninterrupted run, some at pure random times."""
    kills = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        if rng.random() < 0.3 or not events:
            kills.append(KillPoint(at=round(rng.uniform(0.5, duration), 2)))
        else:
            kills.append(KillPoint(pattern=rng.choice(events)[1], delay=rng.choice([0.0, 0.0, 0.005, 0.02, 0.1, 0.5])))
    return kills


def reference_run(command_for, root: Path) -> tuple[Attempt, list[tuple[float, str]]]:
    root.mkdir(parents=True, exist_ok=True)
    watcher = FolderWatcher(root)
    watcher.start()
    attempt = run_attempt(command_for(root), root, None, root / "attempt0.log")
    events = watcher.stop()
    if attempt.returncode != 0:
        raise SystemExit(f"the uninterrupted run failed ({attempt.returncode}): {tail(attempt.output, 20)}")
    return attempt, [(t, path) for t, path in events if not path.endswith(".log")]


def tiny_checkpoint(folder: Path) -> Path:
    from hf_itt.demo.tiny import build_checkpoint

    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return build_checkpoint(folder, lines * 3, vocab_size=600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="number of killed runs (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points")
    parser.add_argument("--checkpoint", type=Path, help="base checkpoint (default: build a tiny one)")
    parser.add_argument("--config", type=Path, default=CHAIN, help="experiment YAML (default: the tiny chain)")
    parser.add_argument("--workdir", type=Path, help="folder for the runs (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the run folders (failed trials are always kept)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kill-anywhere-"))
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint or tiny_checkpoint(work / "tiny-checkpoint")
    command_for = lambda root: chain_command(checkpoint, root, args.config.resolve())  # noqa: E731
    reference = work / "reference"
    first, events = reference_run(command_for, reference)
    print(f"uninterrupted run: {first.seconds:.0f}s, {len(events)} file events", flush=True)
    rng, recovered, kills = random.Random(args.seed), 0, 0
    for index in range(args.runs):
        trial = killed_trial(index, rng, events, first.seconds, command_for, reference, work / f"run{index + 1:02d}")
        recovered += trial.ok
        kills += trial.kills_done
        if trial.ok and not args.keep:
            shutil.rmtree(work / f"run{index + 1:02d}", ignore_errors=True)
    print(f"kill-anywhere: {recovered}/{args.runs} runs recovered exactly ({kills} SIGKILLs in all; folders: {work})")
    return 0 if recovered == args.runs else 1


def killed_trial(index, rng, events, duration, command_for, reference: Path, root: Path, draws: int = 3) -> Trial:
    """One trial; kill points the run passed before reaching them (a faster machine) are drawn again."""
    for _ in range(draws):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        trial = run_trial(Trial(index, random_kills(rng, events, duration)), command_for, reference, root)
        print(trial.line(), flush=True)
        if trial.kills_done or not trial.ok:
            break
    return trial


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
