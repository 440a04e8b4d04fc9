"""When a transfer may run: slots, sharing and cancel.

A bounded number of downloads and uploads run at once (``Slots``); the
same request made twice at once is one transfer whose outcome both callers
get (``SingleFlight``), each caller checked on its own; ``cancel_all``
abandons running and waiting transfers when the agent stops.
"""

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import dataclasses
import hashlib
import threading
from typing import Any

from image_agent import admission
from image_agent import exception
from image_agent import space
from image_agent.data import pipeline
from image_agent.formats import convert
from image_agent.formats import inspect
from image_agent.i18n import _
from image_agent.transfers import progress

SLOT_POLL = 0.5
SHUTTING_DOWN = _('the agent is shutting down')
# Errors that answer one caller's token: another caller sharing the
# transfer does not inherit them.
CALLERS_OWN = (exception.NotAuthorized, exception.ImageNotFound)


class _Flight:
    """One running transfer and the callers waiting for its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """Run one call per key at a time; concurrent callers share its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Any, _Flight] = {}

    def run(
        self,
        key: Any,
        func: Callable[[], Any],
        join: Callable[[], Any] | None = None,
        own_errors: tuple[type[BaseException], ...] = (),
    ) -> Any:
        """``func()``, or the outcome of the call of ``key`` running now.

        A caller that joins a running call first runs ``join()`` (its own
        check: a caller is never given what it may not have). An error in
        ``own_errors`` belongs to the caller that met it (a refusal of its
        token): one who joined does not inherit it, and runs again.
        """
        while True:
            with self._lock:
                flight = self._flights.get(key)
                leader = flight is None
                if leader:
                    flight = self._flights[key] = _Flight()
            if leader:
                return self._lead(key, flight, func)
            if join is not None:
                join()
            flight.done.wait()
            if flight.error is None:
                return flight.result
            if not isinstance(flight.error, own_errors):
                raise flight.error

    def _lead(self, key: Any, flight: _Flight, func: Callable[[], Any]) -> Any:
        try:
            flight.result = func()
            return flight.result
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()


def caller_key(context) -> str:
    """Who is asking, for transfers shared only by the same caller."""
    token = getattr(context, 'auth_token', None) or ''
    who = '%s/%s' % (
        getattr(context, 'user_id', None),
        getattr(context, 'project_id', None),
    )
    return hashlib.sha256((who + '\0' + token).encode()).hexdigest()


class Slots:
    """The download and upload slots of one agent."""

    def __init__(
        self, downloads: int, uploads: int, cancel: threading.Event
    ) -> None:
        self._cancel = cancel
        self._totals = {'downloads': downloads, 'uploads': uploads}
        self._slots = {
            kind: threading.BoundedSemaphore(total)
            for kind, total in self._totals.items()
        }

    @contextlib.contextmanager
    def held(
        self, kind: str, refused: Callable[[], Exception]
    ) -> Iterator[None]:
        """Hold a slot of ``kind``; ``refused()`` is raised when the agent
        stops while this waits for one."""
        slots = self._slots[kind]
        while not slots.acquire(timeout=SLOT_POLL):
            if self._cancel.is_set():
                raise refused() from pipeline.Cancelled()
        try:
            yield
        finally:
            slots.release()

    def usage(self) -> dict[str, dict[str, int]]:
        """Slots in use and in all, for the agent's reports."""
        return {
            kind: {
                'in_use': total - self._slots[kind]._value,  # noqa: SLF001
                'total': total,
            }
            for kind, total in self._totals.items()
        }


@dataclasses.dataclass
class Shared:
    """What the transfers of one agent share."""

    images: Any
    board: progress.Board
    slots: Slots
    space: space.SpaceLedger
    admission: admission.Admission
    cancel: threading.Event
    flights: SingleFlight = dataclasses.field(default_factory=SingleFlight)
    # How downloads are inspected (None: they are not) and converted.
    formats: inspect.Policy | None = None
    conversion: convert.Settings = dataclasses.field(
        default_factory=convert.Settings
    )
