"""
The one answer to "is there a hub here" (labhub.stack.hub_dir_state), as the deploy and the
restore read it, and the mark a rolled-back hub upgrade leaves (labhub.facts.hub_database).
"""

from __future__ import annotations

import pytest
from case_files import cases

from labhub import stack
from labhub.facts.hub_database import HubRollback
from labhub.settings import validate


@pytest.mark.parametrize("case", cases("hub-dir"))
def test_hub_dir_has_one_state_for_the_deploy_and_the_restore(case):
    settings = validate({})
    assert stack.hub_dir_state(case["folder"]) == case["state"]
    assert stack.hub_dir_problems(settings, case["folder"]) == case["problems"]["deploy"]
    assert (
        stack.hub_dir_problems(settings, case["folder"], restore=True)
        == case["problems"]["restore"]
    )


def test_a_rolled_back_upgrade_reads_back_from_its_mark():
    # As files/hub-upgrade.sh writes it.
    mark = [
        "at=2026-12-02T15:40:11Z",
        "previous=labhub/hub:2b9d0c3e1f4a",
        "failed=labhub/hub:4bd2c1a9e0f1",
        "reason=the new hub stopped (state: exited 0)",
        "outcome=rolled back",
    ]
    assert HubRollback().process(mark) == {
        "at": "2026-12-02T15:40:11Z",
        "previous": "labhub/hub:2b9d0c3e1f4a",
        "failed": "labhub/hub:4bd2c1a9e0f1",
        "reason": "the new hub stopped (state: exited 0)",
        "outcome": "rolled back",
    }
    assert HubRollback().process([]) is None
