"""What of a stage graph is already done: the same checks a run makes before it trains or evaluates.

A node's status is one of ``todo`` (to train, or to evaluate for an ``eval`` node), ``evaluate`` (a
target whose model is finished but whose results are missing), ``finished`` / ``published`` (a
verified checkpoint with that hash, in a run folder, the local index or the publisher) and ``done``
(a target or evaluation whose results are all there, of this very stage chain).
"""

from __future__ import annotations

import logging
from pathlib import Path

from hf_itt.errors import HubError
from hf_itt.hub.manifest import read_manifest
from hf_itt.pipeline.graph import StageGraph, StageNode

logger = logging.getLogger(__name__)


class UncheckedPublisher:
    """Stands in for the Hub when it is not consulted: every lookup finds nothing (says why)."""

    def __init__(self, reason: str):
        self.reason = reason

    def fetch(self, repo_id: str, revision: str = "main") -> Path:
        raise HubError(f"the Hub was not checked ({self.reason})")

    def publish(self, *args, **kwargs):
        raise HubError(f"the Hub was not checked ({self.reason})")


def runners_for(graph: StageGraph, check_hub: bool) -> tuple[dict, list[str]]:
    """One StageRunner per run (by label) and notes on what could not be checked."""
    from hf_itt.pipeline.runner import StageRunner  # defers torch, transformers

    runners, notes = {}, set()
    for run in graph.runs:
        publisher = None
        if run.config.hub.publisher == "hub" and not check_hub:
            publisher = UncheckedPublisher("not asked to; pass --check-hub")
        try:
            runner = StageRunner(run.config, publisher=publisher)
        except HubError as err:
            runner = StageRunner(run.config, publisher=UncheckedPublisher(" ".join(str(err).split())))
        if isinstance(runner.publisher, UncheckedPublisher):
            notes.add(f"stages published on the Hub were not looked for: {runner.publisher.reason}")
        runners[run.label] = runner
    return runners, sorted(notes)


def fill_status(graph: StageGraph, check_hub: bool = False) -> list[str]:
    """Set every node's status; returns notes on what was not checked."""
    runners, notes = runners_for(graph, check_hub)
    for node in graph.nodes.values():
        node.status = node_status(node, runners[node.run.label])
    return notes


def node_status(node: StageNode, runner) -> str:
    if node.provisional:  # its hash is not final, so nothing with that hash can be finished
        return "todo"
    job = node.job
    if node.kind == "eval":
        return "todo" if runner.needs_results(job) else "done"
    found = runner.find_finished(job)
    if found is None:
        return "todo"
    if node.kind == "target":
        return "evaluate" if runner.needs_results(job) else "done"

    return "published" if read_manifest(found).status == "published" else "finished"
