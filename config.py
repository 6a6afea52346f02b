"""
pyinfra's configuration of labhub runs, read by the CLI before it loads the inventory (from the
directory pyinfra runs in: the project root). With it, bad settings are reported before pyinfra
connects to any server; run from elsewhere, deploy.py and each task still refuse them before any
operation, once connected.
"""

from pyinfra import state

from labhub.settings import validate_before_connecting

validate_before_connecting(state)
