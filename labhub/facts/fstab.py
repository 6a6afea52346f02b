"""
Facts about ``/etc/fstab`` and what is mounted where.
"""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand


class FstabLines(FactBase[list[str]]):
    """
    The lines of ``/etc/fstab`` as they are, comments included (no file: no lines).

    .. code:: python

        [
            "# /etc/fstab: static file system information.",
            "UUID=0a3407de-... / ext4 errors=remount-ro 0 1",
            "//files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem,... 0 0",
        ]
    """

    default = list

    def command(self, path: str = "/etc/fstab") -> StringCommand:
        return StringCommand("cat", QuoteString(path), "2>/dev/null", "||", "true")

    def process(self, output) -> list[str]:
        return list(output)


class MountsAt(FactBase[list[str]]):
    """
    The file system types mounted at a path, lowest first: a systemd automount point that has
    been triggered shows ``autofs`` under the real file system. Nothing mounted: ``[]``.

    .. code:: python

        ["autofs", "cifs"]
    """

    default = list

    def command(self, path: str) -> StringCommand:
        # --raw escapes spaces, so each line is one path and one type.
        return StringCommand(
            "findmnt", "--noheadings", "--raw", "--output", "FSTYPE",
            "--mountpoint", QuoteString(path), "||", "true",
        )

    def process(self, output) -> list[str]:
        return [line.strip() for line in output if line.strip()]
