"""
Shell commands whose output labhub reads once they ran, to tell the admin what happened in its
own words.
"""

from __future__ import annotations

from collections.abc import Callable

from pyinfra import host
from pyinfra.api import FunctionCommand, StringCommand
from pyinfra.api.util import print_host_combined_output

from labhub.pyinfra_api import connector_arguments


def reported(command: str, report: Callable, live: bool = False) -> FunctionCommand:
    """
    A shell command run by pyinfra as a ``FunctionCommand`` that hands the host, its success and
    its output to ``report(host, status, output)`` once it ran. Called inside an operation: it
    runs with that operation's connector arguments (``_sudo``...), and a failure's output is
    printed as pyinfra prints a failed command's. With ``live``, its output is printed line by
    line as it comes (progress of a long command), whatever the verbosity.
    """
    arguments = connector_arguments(host)

    def run(state, host) -> bool:
        printed = live or state.print_output
        status, output = host.run_shell_command(StringCommand(command),
                                                print_output=printed, **arguments)
        if not status and not printed:
            print_host_combined_output(host, output)
        report(host, status, output)
        return status

    return FunctionCommand(run, (), {})
