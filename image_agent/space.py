"""Disk space promised to running transfers, per filesystem.

``statvfs`` tells what is free now, not what the transfers already running
will still write: two downloads that each fit alone both pass a bare
free-space check and then both fail halfway, and a cache fill followed by
its copy needs the image's size twice. So every transfer reserves its bytes
before the first one is written, and a new reservation is granted only when
what is free, less what other reservations still have to write, less the
margin (``[agent] free_space_margin_mb``), holds it. A reservation is
released when its transfer ends, however it ends.

Bytes already written by a running transfer show in ``statvfs`` as used:
only the rest of each reservation (its size less what its file holds) is
subtracted, so nothing is counted twice.

An image without a recorded size reserves everything free beyond the
margin and the other reservations: its stream is cut there (``limit``), so
a server that never stops cannot fill the disk.
"""

import collections
import os
import threading

from image_agent import exception


class Reservation:
    """Bytes promised to one transfer on one filesystem.

    ``limit`` is what the transfer may write: the image's size, or for an
    image of unknown size the space that was free for it.
    """

    def __init__(
        self, ledger: 'SpaceLedger', device: int, limit: int, sized: bool
    ) -> None:
        self.limit = limit
        self.sized = sized
        self.written = 0
        self._ledger = ledger
        self._device = device

    @property
    def outstanding(self) -> int:
        """Bytes still to be written (already written ones show as used)."""
        return max(0, self.limit - self.written)

    def release(self) -> None:
        self._ledger.release(self, self._device)

    def __enter__(self) -> 'Reservation':
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class SpaceLedger:
    """The reservations of one agent, by filesystem (device)."""

    def __init__(self, margin: int = 0) -> None:
        """``margin``: bytes every filesystem keeps free, in bytes."""
        self.margin = margin
        self._lock = threading.Lock()
        self._held: dict[int, list[Reservation]] = collections.defaultdict(
            list
        )

    def available(self, directory: str) -> int:
        """Free bytes under ``directory`` not promised to a transfer."""
        with self._lock:
            return self._available(directory)[1]

    def reserve(
        self, directory: str, image_id: str, size: int | None
    ) -> Reservation:
        """Promise ``size`` bytes under ``directory`` to a transfer.

        ``size`` None or 0 (unknown): everything free beyond the margin.
        Raises InsufficientSpace when it does not fit.
        """
        with self._lock:
            device, available = self._available(directory)
            sized = bool(size)
            limit = size if sized else available - self.margin
            if limit <= 0 or limit + self.margin > available:
                raise exception.InsufficientSpace(
                    path=directory,
                    image_id=image_id,
                    needed=max(limit, 1) + self.margin,
                    available=max(available, 0),
                )
            reservation = Reservation(self, device, limit, sized)
            self._held[device].append(reservation)
            return reservation

    def release(self, reservation: Reservation, device: int) -> None:
        with self._lock:
            held = self._held.get(device, [])
            if reservation in held:
                held.remove(reservation)
            if not held:
                self._held.pop(device, None)

    def reserved(self) -> int:
        """Bytes promised and not yet written, on every filesystem."""
        with self._lock:
            return sum(
                r.outstanding for held in self._held.values() for r in held
            )

    def _available(self, directory: str) -> tuple[int, int]:
        st = os.statvfs(directory)
        device = os.stat(directory).st_dev
        free = st.f_bavail * st.f_frsize
        promised = sum(r.outstanding for r in self._held.get(device, ()))
        return device, free - promised
