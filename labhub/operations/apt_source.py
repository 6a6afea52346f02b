"""
One apt source's lists, updated alone, from a repository whose signature verifies or not at all.

Plain ``apt-get update`` is not enough to trust a third-party repository: when a repository it
fetched before no longer verifies (signed by another key than its ``signed-by`` keyring), apt only
warns, keeps the old lists and exits 0. Here that is an error, and it is told as one line naming
the repository, not as apt's output.
"""

from __future__ import annotations

import shlex

from pyinfra import logger
from pyinfra.api import operation

from labhub.commands import reported

# How apt 2.x/3.x (gpgv or sqv) words a signature that does not verify, in the C locale.
SIGNATURE_WORDS = ("signature", "NO_PUBKEY", "is not signed", "BADSIG", "EXPKEYSIG", "REVKEYSIG")


def update_command(sources_file: str) -> str:
    """``apt-get update`` of the sources of ``sources_file`` alone, failing on any warning."""
    options = [
        f"Dir::Etc::SourceList={sources_file}",
        "Dir::Etc::SourceParts=-",
        # apt would otherwise delete the lists of every source it was not shown here.
        "APT::Get::List-Cleanup=0",
        # Makes a repository that fails to verify an error, not a warning over the old lists.
        "APT::Update::Error-Mode=any",
    ]
    # The C locale: apt's messages are read below.
    words = ["env", "LC_ALL=C", "apt-get", "update", "-q"]
    for option in options:
        words += ["-o", option]
    return " ".join(shlex.quote(word) for word in words)


def failure_message(repository: str, keyring: str, lines: list[str]) -> str:
    """The one line that tells the admin why apt refused ``repository``, from apt's output."""
    problems = [
        line.split(": ", 1)[1] for line in lines if line.startswith(("E: ", "W: ")) and ": " in line
    ]
    signature = [line for line in problems if any(word in line for word in SIGNATURE_WORDS)]
    if signature:
        # sqv and gpgv say which key signed the repository after apt's own wording.
        detail = signature[0].rsplit("error message is: ", 1)[-1]
        return (
            f"{repository}: its signature did not verify with the key in {keyring}, so apt "
            f"refused the repository and nothing was installed from it (apt: {detail})"
        )
    detail = problems[0] if problems else "no message"
    return f"{repository}: apt could not update its package lists (apt: {detail})"


@operation(is_idempotent=False)
def update(sources_file: str, repository: str, keyring: str):
    """
    Update the package lists of one apt source file only, failing the host with one clear line
    when the repository's signature does not verify against the source line's ``signed-by``
    keyring (or the repository cannot be fetched). The lists of the other sources are kept.

    + sources_file: the ``.list`` or ``.sources`` file of the repository
    + repository: the repository as the admin knows it (URL and suite), for the messages
    + keyring: the keyring its source line names, for the messages

    **Example:**

    .. code:: python

        apt_source.update(
            name="Update apt lists for Docker's repository",
            sources_file="/etc/apt/sources.list.d/docker.list",
            repository="https://download.docker.com/linux/debian trixie",
            keyring="/etc/apt/keyrings/docker.asc",
            _if=source.did_change,
        )
    """

    def report(host, status: bool, output) -> None:
        if not status:
            host.log_styled(
                failure_message(repository, keyring, output.output_lines),
                fg="red",
                log_func=logger.error,
            )

    yield reported(update_command(sources_file), report)
