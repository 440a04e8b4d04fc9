"""How ``image-agent-client`` shows results: JSON, tables, progress."""

from collections.abc import Callable
import contextlib
import itertools
import json
import sys
import threading
import time
from typing import Any
from typing import TextIO

# Columns shown for lists, by command; other keys are left to --format json.
LIST_COLUMNS = {
    'detail': ('id', 'name', 'status', 'size', 'disk_format', 'visibility'),
    'get-stores': ('id', 'default', 'read-only', 'description'),
    'list-members': ('image_id', 'member_id', 'status', 'updated_at'),
    'cache-list': ('image_id', 'size', 'last_used', 'in_use'),
}
PRECACHE_HEADERS = ['Host', 'Image', 'Status', 'Size', 'From Glance', 'Error']
_SPINNER = '|/-\\'


def human_size(size: float | None) -> str:
    if size is None:
        return '?'
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(size) < 1024 or unit == 'TiB':
            return ('%d %s' if unit == 'B' else '%.1f %s') % (size, unit)
        size /= 1024
    return str(size)


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return '' if value is None else str(value)


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain-text table with a header line and aligned columns."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def line(cells):
        padded = (c.ljust(w) for c, w in zip(cells, widths, strict=True))
        return '| ' + ' | '.join(padded) + ' |'

    return '\n'.join(
        [rule, line(headers), rule, *(line(r) for r in rows), rule]
    )


def render(result: Any, fmt: str, command: str) -> str:
    """``result`` as text in ``fmt`` ("json" or "table")."""
    if fmt == 'json':
        return json.dumps(result, indent=2, sort_keys=True)
    if command == 'precache':
        return table(precache_rows(result), PRECACHE_HEADERS)
    if command == 'cache-list':
        lines = table(
            [
                [_cell(e.get(c)) for c in LIST_COLUMNS[command]]
                for e in result['entries']
            ],
            list(LIST_COLUMNS[command]),
        )
        limit = result.get('max_size')
        return '%s\n%s: %s used of %s' % (
            lines,
            result.get('directory'),
            human_size(result.get('size')),
            human_size(limit) if limit else 'no limit',
        )
    if isinstance(result, dict):
        rows = [[k, _cell(v)] for k, v in sorted(result.items())]
        return table(rows, ['Property', 'Value'])
    if isinstance(result, list):
        columns = LIST_COLUMNS.get(command)
        if columns is None:
            keys = {
                k for item in result if isinstance(item, dict) for k in item
            }
            columns = tuple(sorted(keys))
        rows = [
            [_cell(item.get(c)) for c in columns]
            for item in result
            if isinstance(item, dict)
        ]
        return table(rows, list(columns))
    return _cell(result)


class Progress:
    """A spinner with elapsed time, and bytes when a poller tells them.

    Drawn on ``stream`` (stderr) only when it is a terminal, so scripts and
    pipes see nothing but the final summary line.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO = sys.stderr,
        poll: Callable[[], tuple | None] | None = None,
        poll_interval: float = 1.0,
        enabled: bool | None = None,
    ) -> None:
        self.label = label
        self.stream = stream
        self.poll = poll
        self.poll_interval = poll_interval
        self.enabled = stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._done = threading.Event()
        # (bytes, size) or (bytes, size, rate in bytes/s) from ``poll``.
        self._known: tuple | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _line(self, frame: str) -> str:
        text = '%s %s %.1f s' % (frame, self.label, self.elapsed())
        if self._known is not None:
            done, size, *rate = self._known
            text += '  %s' % human_size(done)
            if size:
                text += ' / %s (%d%%)' % (human_size(size), 100 * done // size)
            if rate and rate[0]:
                text += '  %s/s' % human_size(rate[0])
        return text

    def run(self, call: Callable[[], Any]) -> Any:
        """Run ``call`` in a thread and animate until it returns."""
        outcome: dict[str, Any] = {}

        def target():
            try:
                outcome['result'] = call()
            except BaseException as e:  # re-raised in the caller's thread
                outcome['error'] = e
            finally:
                self._done.set()

        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        last_poll = 0.0
        for frame in itertools.cycle(_SPINNER):
            if self._done.wait(0.2):
                break
            if not self.enabled:
                continue
            if (
                self.poll
                and time.monotonic() - last_poll >= self.poll_interval
            ):
                last_poll = time.monotonic()
                # Progress is best effort: a failed poll leaves it as is.
                with contextlib.suppress(Exception):
                    self._known = self.poll() or self._known
            self.stream.write('\r\033[K' + self._line(frame))
            self.stream.flush()
        if self.enabled:
            self.stream.write('\r\033[K')
            self.stream.flush()
        worker.join()
        if 'error' in outcome:
            raise outcome['error']
        return outcome.get('result')

    def summary(self, size: int | None, reused: bool) -> str:
        elapsed = self.elapsed()
        if reused:
            return '%s: reused the identical file already there (%s)' % (
                self.label,
                human_size(size),
            )
        rate = (size or 0) / elapsed if elapsed > 0 else 0
        return '%s: %s in %.2f s (%s/s)' % (
            self.label,
            human_size(size),
            elapsed,
            human_size(rate),
        )


def precache_rows(result: dict[str, dict[str, dict]]) -> list[list[str]]:
    """One row per host and image of a pre-cache result."""
    rows = []
    for host, outcomes in result.items():
        for image_id, outcome in outcomes.items():
            error = ''
            if outcome.get('error'):
                error = '%s: %s' % (
                    outcome.get('error_class'),
                    outcome['error'].splitlines()[0],
                )
            size = outcome.get('size')
            rows.append(
                [
                    host,
                    image_id,
                    outcome['status'],
                    human_size(size) if size is not None else '',
                    human_size(outcome.get('fetched') or 0),
                    error,
                ]
            )
    return rows


class PrecacheBoard:
    """The per-host table of a running pre-cache, updated as hosts finish.

    On a terminal the table is redrawn in place; elsewhere one line per
    finished host is written.
    """

    def __init__(self, hosts: list[str], stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._hosts = list(hosts)
        self._state = dict.fromkeys(hosts, 'running')
        self._started = time.monotonic()
        self._lines = 0
        self._lock = threading.Lock()
        if self._tty:
            self._draw()

    def _row(self, host: str) -> list[str]:
        return [host, self._state[host]]

    def _draw(self) -> None:
        text = table(
            [self._row(h) for h in self._hosts], ['Host', 'Pre-cache']
        )
        if self._lines:
            self._stream.write('\x1b[%dA\x1b[J' % self._lines)
        self._stream.write(text + '\n')
        self._stream.flush()
        self._lines = text.count('\n') + 1

    def update(self, host: str, outcomes: dict, done: int, total: int):
        counts: dict[str, int] = {}
        for outcome in outcomes.values():
            counts[outcome['status']] = counts.get(outcome['status'], 0) + 1
        summary = ', '.join(
            '%d %s' % (n, status) for status, n in sorted(counts.items())
        )
        elapsed = time.monotonic() - self._started
        with self._lock:
            self._state[host] = '%s (%.1f s)' % (summary, elapsed)
            if self._tty:
                self._draw()
            else:
                self._stream.write(
                    '[%d/%d] %s: %s\n' % (done, total, host, self._state[host])
                )
                self._stream.flush()
