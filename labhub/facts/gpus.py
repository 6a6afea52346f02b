"""
Facts about a server's NVIDIA GPUs and the NVIDIA container toolkit that hands them to
containers. Read by the hub task (a single server's labs get GPUs by device id) and the Docker
task (a swarm's GPU nodes advertise them); ``labhub.gpus`` says what follows from them.
"""

from __future__ import annotations

import re

from pyinfra.api import FactBase

# nvidia-smi -L: one line a GPU, its MIG instances indented below it.
_GPU_LINE = re.compile(r"GPU (?P<index>\d+): (?P<name>.+?) \(UUID: (?P<uuid>GPU-[0-9a-fA-F-]+)\)")
_MIG_LINE = re.compile(
    r"\s+MIG (?P<name>\S+)\s+Device\s+(?P<index>\d+): \(UUID: (?P<uuid>MIG-[0-9a-zA-Z/-]+)\)"
)
_VERSION = re.compile(r"version:?\s+v?(\d+)\.(\d+)\.(\d+)(?:[-~]\S*)?", re.IGNORECASE)


class Gpus(FactBase[dict]):
    """
    The server's GPUs as ``nvidia-smi -L`` lists them, with the MIG instances of a partitioned
    GPU; ``problem``: what nvidia-smi said instead of a list (a driver that does not answer),
    empty when it listed GPUs or found none. No nvidia-smi: no GPU.

    .. code:: python

        {
            "gpus": [
                {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-4b2f...", "mig": []},
            ],
            "problem": "",
        }
    """

    requires_command = "nvidia-smi"

    @staticmethod
    def default() -> dict:
        return {"gpus": [], "problem": ""}

    def command(self) -> str:
        return "nvidia-smi -L 2>&1 || true"

    def process(self, output) -> dict:
        gpus: list[dict] = []
        other = []
        for line in output:
            gpu = _GPU_LINE.fullmatch(line.strip())
            mig = _MIG_LINE.fullmatch(line.rstrip())
            if gpu:
                gpus.append(
                    {
                        "index": int(gpu["index"]),
                        "name": gpu["name"],
                        "uuid": gpu["uuid"],
                        "mig": [],
                    }
                )
            elif mig and gpus:
                gpus[-1]["mig"].append(
                    {"index": int(mig["index"]), "name": mig["name"], "uuid": mig["uuid"]}
                )
            elif line.strip():
                other.append(line.strip())
        # "No devices were found" is an answer: no GPU. Anything else is a driver's complaint.
        problem = "" if gpus or other == ["No devices were found"] else " ".join(other)
        return {"gpus": gpus, "problem": problem}


class ContainerToolkit(FactBase[str | None]):
    """
    The version of the NVIDIA container toolkit (``nvidia-ctk``; before it existed, its
    ``nvidia-container-cli``, numbered alike), or None when neither is installed.

    .. code:: python

        "1.17.8"
    """

    def command(self) -> str:
        return (
            "nvidia-ctk --version 2>/dev/null || nvidia-container-cli --version 2>/dev/null || true"
        )

    def process(self, output) -> str | None:
        for line in output:
            match = _VERSION.search(line)
            if match:
                return ".".join(match.groups())
        return None
