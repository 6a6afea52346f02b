"""
Files that hold secrets: uploaded without their content ever being shown.
"""

from __future__ import annotations

import hashlib

from pyinfra import host, state
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.facts.files import File, Sha256File
from pyinfra.operations.util import files as file_utils

from labhub.facts.accounts import LoginUser
from labhub.facts.tree import files_at, is_managed


@operation()
def put(src: str, dest: str, user: str = "root", group: str = "root", mode: str = "0600"):
    """
    Upload a local secret file (a password, a key) to ``dest``, owned and private from the start.

    + src: the local file
    + dest: the file on the host
    + user: its owner
    + group: its group
    + mode: its mode

    In a folder labhub manages, ``dest`` is read in one command with the other files there
    (``labhub.facts.tree.files_at``); elsewhere, the file alone is read.

    Unlike ``files.put``, ``--diff`` never shows the content (only that the file would change),
    and the content is never readable by anyone but its owner on the host, not even for a moment:
    the file is created empty with its owner and mode before the upload fills it, and the upload's
    temporary file (under sudo the login user uploads first) is made private before it is written.
    The content is compared by SHA-256 checksum.

    **Example:**

    .. code:: python

        secret_files.put(
            name="Credentials of share leem",
            src="/home/admin/secrets/leem.cred",
            dest="/etc/labhub/credentials/leem",
        )
    """

    with open(src, "rb") as f:
        local_sum = hashlib.sha256(f.read()).hexdigest()

    if not is_managed(host, dest):
        remote = host.get_fact(File, path=dest)
        remote_sum = host.get_fact(Sha256File, path=dest) if remote else None
        current_mode = remote["mode"] if remote else None
    else:
        remote = files_at(host, dest).get(dest)
        remote_sum = remote["sha256"] if remote else None
        # The File fact gives modes as the digits of the octal mode: 600 for 0600.
        current_mode = int(oct(remote["mode"])[2:]) if remote else None
    if not remote or remote_sum != local_sum:
        if state.config.DIFF:
            host.log(
                f"Will {'modify' if remote else 'create'} {dest} (a secret: content not shown)"
            )
        if not remote:
            yield StringCommand(
                "install",
                "-m",
                mode,
                "-o",
                QuoteString(user),
                "-g",
                QuoteString(group),
                "/dev/null",
                QuoteString(dest),
            )
        temp = host.get_temp_filename()
        login = host.get_fact(LoginUser)
        yield StringCommand("install", "-m", "0600", "-o", QuoteString(login), "/dev/null", temp)
        yield FileUploadCommand(src, dest, remote_temp_filename=temp)
        yield StringCommand("rm", "-f", temp)

    if remote and (remote["user"] != user or remote["group"] != group):
        yield file_utils.chown(dest, user, group)
    if remote and current_mode != int(mode):
        yield file_utils.chmod(dest, mode)


# The SHA-256 of an empty file: a secret file that is there but empty is made again.
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@operation()
def generated(path: str):
    """
    A secret made on the host, once: 48 random letters and digits (about 285 bits, nothing any
    format must escape) in ``path``, root only (0600) from the start, its folder made when
    missing (root only too). A file that is there and not empty is kept; delete it to make a new one.

    + path: the file on the host, in a folder labhub manages (``labhub.facts.tree``)

    The secret never leaves the host and is never on a command line or in the output: the
    command that makes it reads ``/dev/urandom`` and writes the file, and only the file's checksum
    is ever read back.

    **Example:**

    .. code:: python

        secret_files.generated(name="The metrics token", path="/etc/labhub/metrics-token")
    """

    remote = files_at(host, path).get(path)
    if remote and remote["kind"] == "file" and remote["sha256"] != _EMPTY_SHA256:
        host.noop(f"{path} is made (a secret: content not shown)")
        return
    if state.config.DIFF:
        host.log(f"Will create {path} (a secret made on the host: content not shown)")
    # An empty folder in its place is what Docker makes of a bind whose file was missing.
    script = (
        'umask 077 && mkdir -p "$(dirname "$0")" && { [ ! -d "$0" ] || rmdir "$0"; } && '
        'tr -dc A-Za-z0-9 < /dev/urandom | head -c 48 > "$0.new" && mv "$0.new" "$0"'
    )
    yield StringCommand("sh", "-c", QuoteString(script), QuoteString(path))
