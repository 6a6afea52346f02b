"""
What the spawn page shows of a lab's start (JupyterHub's ``Spawner.progress`` events): the image
pulled, with how much of it is done, read from the Engine API's pull stream (``POST
/images/create``: one JSON object a line, each a layer's status), then the container created and
its server waited for. Pure: the spawner (labhub_lab.py) feeds it the stream.
"""

from __future__ import annotations

# Where each step of a spawn is on the page's bar (out of 100): the hub's own "Server requested"
# is 0 and "Server ready" 100; the pull fills PULL_START..PULL_END as its layers come in.
PULL_START, PULL_END = 5, 60
CREATE, WAIT = 65, 80


class PullFailed(Exception):
    """The engine's pull stream reported an error (its message)."""


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"


class PullProgress:
    """
    One pull's layers as its stream tells them, summed up as one step of the spawn page. A
    layer's download and its extraction count half each; a layer the engine already has
    ("Already exists") is done at once and counts for nothing to fetch.
    """

    def __init__(self, name: str) -> None:
        self.name = name  # the image, as people say it: lab 1.0
        # Layer id -> [bytes downloaded, bytes extracted, size or None, done, already there]
        self.layers: dict[str, list] = {}
        self.finished = False

    def add(self, event: dict) -> None:
        """One object of the pull stream; PullFailed when it is the stream's error."""
        if event.get("error") or event.get("errorDetail"):
            detail = event.get("errorDetail") or {}
            raise PullFailed(event.get("error") or detail.get("message") or "the pull failed")
        status, layer = event.get("status", ""), event.get("id")
        if status.startswith("Status:"):  # the last line: "Downloaded newer image for ..."
            self.finished = True
        if not layer or status.startswith("Pulling from"):
            return  # the image's own lines (its name, its digest)
        state = self.layers.setdefault(layer, [0, 0, None, False, False])
        detail = event.get("progressDetail") or {}
        if status == "Downloading":
            state[0], state[2] = detail.get("current", state[0]), detail.get("total") or state[2]
        elif status in ("Verifying Checksum", "Download complete"):
            state[0] = state[2] or state[0]
        elif status == "Extracting":
            state[1], state[2] = detail.get("current", state[1]), detail.get("total") or state[2]
            state[0] = state[2] or state[0]
        elif status == "Pull complete":
            state[3] = True
        elif status == "Already exists":
            state[3] = state[4] = True

    def fraction(self) -> float:
        """How much of the pull is done, 0 to 1: the mean of the layers to fetch."""
        fetched = [state for state in self.layers.values() if not state[4]]
        if self.finished or not fetched:
            return 1.0 if self.finished else 0.0
        done = 0.0
        for downloaded, extracted, size, complete, _ in fetched:
            if complete:
                done += 1
            elif size:
                done += min(downloaded + extracted, 2 * size) / (2 * size)
        return done / len(fetched)

    def event(self) -> dict:
        """The spawn page's progress event for the pull so far."""
        layers = len(self.layers)
        complete = sum(1 for state in self.layers.values() if state[3])
        downloaded = sum(state[0] for state in self.layers.values() if not state[4])
        size = sum(state[2] or 0 for state in self.layers.values() if not state[4])
        message = f"Pulling the image {self.name}"
        if layers:
            message += f": {complete} of {layers} layers done"
            if size:
                message += f", {_megabytes(downloaded)} of {_megabytes(size)} downloaded"
        return {
            "progress": round(PULL_START + (PULL_END - PULL_START) * self.fraction()),
            "message": message,
        }


def task_step(state: str | None, image: str, node: str | None) -> tuple[int, str] | None:
    """
    The spawn page's step for a lab's swarm task in ``state`` (its ``Status.State``), or None
    for a state that is no step of a start. The swarm tells no amounts of a node's pull, and
    its pull is part of the task's start, so it counts against ``start_timeout`` there.
    """
    where = f"on {node}" if node else "on its node"
    # After the service is created (CREATE), before the server is waited for (WAIT).
    if state in ("new", "pending", "assigned", "accepted"):
        return CREATE + 3, "The swarm is placing the lab on a node"
    if state == "preparing":
        return CREATE + 5, f"Pulling the image {image} {where}"
    if state in ("ready", "starting"):
        return WAIT - 5, f"Starting the lab's container {where}"
    return None
