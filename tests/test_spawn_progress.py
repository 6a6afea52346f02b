"""
The spawn page's steps (files/hub/labhub_progress.py): a pull summed up from the Engine API's
pull stream as recorded from a real engine (tests/cases/pull-stream/), and a swarm task's states.
"""

from __future__ import annotations

import importlib.util
import re

import pytest
from case_files import cases

from labhub import stack

# The hub image's module, as the image has it: loaded from files/hub, leaving sys.path alone.
_spec = importlib.util.spec_from_file_location(
    "labhub_progress", stack.HUB_CONTEXT / "labhub_progress.py"
)
progress = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(progress)


def replay(case: dict) -> list[dict]:
    """The spawn page's pull step after each event of the recorded stream."""
    pull = progress.PullProgress("lab 1.0")
    steps = [pull.event()]
    for event in case["events"]:
        pull.add(event)
        steps.append(pull.event())
    return steps


@pytest.mark.parametrize("case", cases("pull-stream"))
def test_a_pull_tells_its_layers_and_bytes_as_they_come_in(case):
    steps = replay(case)
    bars = [step["progress"] for step in steps]
    assert bars == sorted(bars), "the bar never goes back"
    assert bars[0] == progress.PULL_START and bars[-1] == progress.PULL_END
    # What the engine fetched: the layers it did not have, each as large as its last total says.
    sizes = {}
    for event in case["events"]:
        total = (event.get("progressDetail") or {}).get("total")
        if total:
            sizes[event["id"]] = total
    layers = {event["id"] for event in case["events"] if "progressDetail" in event}
    megabytes = f"{sum(sizes.values()) / 1e6:.1f} MB"
    assert steps[-1]["message"] == (
        f"Pulling the image lab 1.0: {len(layers)} of {len(layers)} layers done, "
        f"{megabytes} of {megabytes} downloaded"
    )
    # On the way, a part of it: some layers done, some megabytes of more downloaded.
    partial = [
        step
        for step in steps
        if (found := re.search(r"([\d.]+) MB of ([\d.]+) MB", step["message"]))
        and float(found[1]) < float(found[2])
    ]
    assert partial and all(
        progress.PULL_START <= step["progress"] < progress.PULL_END for step in partial
    )


def test_a_pull_of_layers_all_there_is_done_when_the_engine_says_so():
    pull = progress.PullProgress("lab 1.0")
    for event in cases("pull-stream")[0].values[0]["events"]:
        if event.get("status") == "Already exists":
            pull.add(event)
    assert pull.event()["progress"] == progress.PULL_START, "more layers may come"
    pull.add({"status": "Status: Image is up to date for 127.0.0.1:5000/lab:1.0"})
    assert pull.event()["progress"] == progress.PULL_END
    assert "downloaded" not in pull.event()["message"]


def test_an_error_in_the_stream_fails_the_pull_with_its_message():
    pull = progress.PullProgress("lab 1.0")
    # The Engine API's error object in a pull stream.
    message = "unauthorized: authentication required"
    with pytest.raises(progress.PullFailed, match=message):
        pull.add({"errorDetail": {"message": message}, "error": message})


def test_a_swarm_task_tells_where_it_is():
    placing, pulling, starting = (
        progress.task_step(state, "lab 1.0", "node1")
        for state in ("pending", "preparing", "starting")
    )
    assert pulling[1] == "Pulling the image lab 1.0 on node1"
    assert starting[1] == "Starting the lab's container on node1"
    assert progress.CREATE < placing[0] < pulling[0] < starting[0] < progress.WAIT
    assert progress.task_step("running", "lab 1.0", None) is None
