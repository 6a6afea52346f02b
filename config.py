"""
pyinfra's configuration of labhub runs, read by the CLI before it loads the inventory (from the
directory pyinfra is run in: the project root). Bad settings are reported before pyinfra connects
to any server; deploy.py and each task validate them again when run from elsewhere.
"""

from pyinfra import state

from labhub.settings import validate_before_connecting

validate_before_connecting(state)
