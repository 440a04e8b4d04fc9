"""Writes that bypass the page cache (O_DIRECT) where they can.

A download written through the page cache costs a copy of every byte into
it (about 0.2 s of CPU per GiB, measured) on a machine whose CPUs the
download already uses to receive and hash; with O_DIRECT the disk takes
the bytes from the agent's own buffers. Such a write needs its buffer
address, length and file offset aligned on the device's block size: the
agent's buffers are page-aligned mmaps, so every full buffer is; the rest
(the tail of the image, any piece of another shape) is written normally.
"""

import ctypes
import errno
import fcntl
import os

# The largest logical block size of common disks: aligned on it, a write
# is aligned on every smaller one.
ALIGN = 4096


def aligned(data, offset: int) -> bool:
    """Whether ``data`` (a buffer) at file ``offset`` can be written with
    O_DIRECT."""
    size = len(data)
    if not size or size % ALIGN or offset % ALIGN:
        return False
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(data))
    except (TypeError, ValueError):  # read-only (bytes): not our buffers
        return False
    return address % ALIGN == 0


class DirectWrites:
    """Switches O_DIRECT on a file descriptor on and off, write by write.

    ``usable`` becomes False for good when the filesystem refuses the flag
    (tmpfs before Linux 6.6, some network filesystems).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._on = False
        self.usable = hasattr(os, 'O_DIRECT')

    def set(self, on: bool) -> None:
        """O_DIRECT on or off for the next writes."""
        on = on and self.usable
        if on == self._on:
            return
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        flags = flags | os.O_DIRECT if on else flags & ~os.O_DIRECT
        try:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags)
        except OSError as e:
            if e.errno != errno.EINVAL or not on:
                raise
            self.usable = False
            return
        self._on = on

    def refused(self) -> None:
        """A write with O_DIRECT failed with EINVAL: never again."""
        self.set(False)
        self.usable = False
