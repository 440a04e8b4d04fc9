"""What the running transfers have done: ``ping``'s list and the
``image.download.*`` / ``image.upload.*`` notifications."""

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import dataclasses
import datetime
import os
import threading
import time
from typing import Any

from image_agent.data import pipeline


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclasses.dataclass
class Progress:
    """What a running transfer has done so far (reported by ``ping``)."""

    kind: str
    image_id: str | None
    path: str
    size: int | None
    started_at: str
    started: float = dataclasses.field(default_factory=time.monotonic)
    bytes: int = 0
    fetched: int | None = None
    resumes: int | None = None
    # Whose transfer it is: ping shows a caller only its project's.
    project_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        return {
            'kind': self.kind,
            'image_id': self.image_id,
            'path': self.path,
            'size': self.size,
            'bytes': self.bytes,
            'started_at': self.started_at,
            'elapsed': round(elapsed, 3),
            # Bytes per second since the start.
            'rate': round(self.bytes / elapsed) if elapsed > 0 else 0,
        }


def _notify_none(context, event: str, payload: dict, error: bool = False):
    """The notifier used when none is given: send nothing."""


class Board:
    """The running transfers, and the notifications about them."""

    def __init__(
        self, notify: Callable[..., None] | None = None, interval: float = 0
    ) -> None:
        self.notify = notify or _notify_none
        self._interval = interval
        self._active: dict[int, Progress] = {}
        self._lock = threading.Lock()

    def new(self, context, kind: str, image_id, path: str, size) -> Progress:
        """The progress of a transfer about to start."""
        return Progress(
            kind,
            image_id,
            path,
            size,
            now(),
            project_id=getattr(context, 'project_id', None),
        )

    @contextlib.contextmanager
    def running(
        self,
        context,
        progress: Progress,
        payload: dict,
        translate: Callable[[BaseException], BaseException],
    ) -> Iterator[None]:
        """Notify the start; list ``progress`` while the body runs; notify
        an error as ``translate`` makes it (and raise that)."""
        event = 'image.%s' % progress.kind
        self.notify(context, event + '.start', dict(payload))
        key = id(progress)
        with self._lock:
            self._active[key] = progress
        try:
            yield
        except BaseException as e:
            error = translate(e)
            self.notify(
                context,
                event + '.error',
                self.payload(payload, progress, error=error),
                error=True,
            )
            if error is not e:
                raise error from e
            raise
        finally:
            with self._lock:
                self._active.pop(key, None)

    def status(self, project_id: str | None = None) -> list[dict[str, Any]]:
        """The running transfers; with ``project_id``, that project's only."""
        with self._lock:
            return [
                p.as_dict()
                for p in self._active.values()
                if project_id is None or p.project_id == project_id
            ]

    def reporter(self, context, progress: Progress) -> Callable[[int], None]:
        """Count written bytes; notify ``image.download.progress`` at most
        every ``progress_interval`` seconds (never when it is 0)."""
        last = [progress.started]
        payload = {'image_id': progress.image_id, 'path': progress.path}

        def report(written: int) -> None:
            progress.bytes = written
            now = time.monotonic()
            if self._interval and (now - last[0] >= self._interval):
                last[0] = now
                self.notify(
                    context,
                    'image.download.progress',
                    self.payload(payload, progress),
                )

        return report

    @staticmethod
    def payload(payload: dict, progress: Progress, error=None) -> dict:
        """The payload of a progress, end or error notification."""
        payload = dict(payload)
        status = progress.as_dict()
        payload['bytes'] = progress.bytes
        payload['size'] = progress.size
        payload['duration'] = status['elapsed']
        payload['rate'] = status['rate']
        if progress.kind == 'download':
            payload['fetched'] = progress.fetched
            payload['resumes'] = progress.resumes
        if error is not None:
            payload['error'] = str(error)
            payload['error_class'] = type(error).__name__
        return payload


class CancellableReader:
    """A file wrapper that counts what is read and stops on cancel; reads
    of more than ``piece`` bytes (when given) return at most that."""

    def __init__(
        self,
        source,
        progress: Progress,
        cancel: threading.Event,
        piece: int | None = None,
    ):
        self._source = source
        self._progress = progress
        self._cancel = cancel
        self._piece = piece

    def read(self, size: int = -1) -> bytes:
        if self._cancel.is_set():
            raise pipeline.Cancelled()
        if self._piece is not None and size is not None and size > 0:
            size = min(size, self._piece)
        data = self._source.read(size)
        self._progress.bytes += len(data)
        return data

    def tell(self) -> int:
        return self._source.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._source.seek(offset, whence)
        self._progress.bytes = position
        return position
