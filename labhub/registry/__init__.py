"""
The lab's private registry as labhub reads and prunes it: the client that reads and deletes
(``client``, standard library only, run on the host by ``labhub.commands.registry_client_command``
and shipped into the hub image) and the pruning policy (``policy``).
"""

from __future__ import annotations

from pathlib import Path

CLIENT_SOURCE_FILE = Path(__file__).with_name("client.py")
