"""How ``image-agent-client`` shows results: cliff's formatters, progress.

Results are shown with the formatters of cliff, as every OpenStack client
shows them: ``-f table`` (fitted to the terminal), ``json``, ``yaml`` and
``value``, with ``-c COLUMN`` to pick columns. Sizes and nested values are
cliff columns: human-readable in tables and ``value``, the API's own values
(bytes, lists, dicts) in ``json`` and ``yaml``.
"""

import argparse
from collections.abc import Callable
import contextlib
import itertools
import json
import shutil
import sys
import threading
import time
from typing import Any
from typing import TextIO

from cliff import columns
from cliff.formatters import json_format
from cliff.formatters import table as table_format
from cliff.formatters import value as value_format
from cliff.formatters import yaml_format
import prettytable

FORMATTERS = {
    'table': table_format.TableFormatter,
    'json': json_format.JSONFormatter,
    'value': value_format.ValueFormatter,
    'yaml': yaml_format.YAMLFormatter,
}
# Columns of lists in tables and "value", by command; json and yaml give
# every key the API returned. -c picks others in any format.
LIST_COLUMNS = {
    'detail': ('id', 'name', 'status', 'size', 'disk_format', 'visibility'),
    'get-stores': ('id', 'default', 'read-only', 'description'),
    'list-members': ('image_id', 'member_id', 'status', 'updated_at'),
    'cache-list': ('image_id', 'size', 'last_used', 'in_use'),
    'cache-evict': ('image_id', 'size', 'last_used'),
    'precache': ('host', 'image', 'status', 'size', 'fetched', 'error'),
}
SIZE_KEYS = frozenset({'size', 'fetched', 'bytes', 'virtual_size', 'max_size'})
_SPINNER = '|/-\\'


def human_size(size: float | None) -> str:
    if size is None:
        return '?'
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(size) < 1024 or unit == 'TiB':
            return ('%d %s' if unit == 'B' else '%.1f %s') % (size, unit)
        size /= 1024
    return str(size)


class SizeColumn(columns.FormattableColumn):
    """Bytes: "1.5 GiB" in tables, the number in json and yaml."""

    def human_readable(self) -> str:
        if self._value is None:
            return ''
        return human_size(self._value)

    def machine_readable(self) -> Any:
        return self._value


class DataColumn(columns.FormattableColumn):
    """A list or dict: compact JSON in tables, itself in json and yaml."""

    def human_readable(self) -> str:
        return json.dumps(self._value, sort_keys=True)

    def machine_readable(self) -> Any:
        return self._value


def _column(key: str, value: Any) -> Any:
    if key in SIZE_KEYS and isinstance(value, (int, float)):
        return SizeColumn(value)
    if isinstance(value, (dict, list)):
        return DataColumn(value)
    return value


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """``-f``, ``-c`` and the options of each cliff formatter."""
    group = parser.add_argument_group('output formatters')
    group.add_argument(
        '-f',
        '--format',
        choices=tuple(FORMATTERS),
        default='table',
        help='the output format (default: table)',
    )
    group.add_argument(
        '-c',
        '--column',
        action='append',
        default=[],
        dest='columns',
        metavar='COLUMN',
        help='show only this column; repeat to show several (they are '
        'shown in the order given)',
    )
    for formatter in FORMATTERS.values():
        formatter().add_argument_group(parser)


def _fit_to_terminal(args: argparse.Namespace, stdout: TextIO) -> None:
    """Tables on a terminal are as wide as the terminal, not wider."""
    if getattr(args, 'max_width', 0) or not stdout.isatty():
        return
    args.max_width = shutil.get_terminal_size().columns


def _rows(result: Any, command: str) -> list[dict] | None:
    """The rows of a list result, or None when the result is one item."""
    if command == 'precache':
        return precache_rows(result)
    if command == 'cache-list':
        return result.get('entries', [])
    if command == 'cache-evict' and isinstance(result, dict):
        return result.get('evicted', [])
    if isinstance(result, list):
        return [r if isinstance(r, dict) else {'value': r} for r in result]
    return None


def _list_columns(
    rows: list[dict], command: str, args: argparse.Namespace
) -> list[str]:
    if args.columns:
        return list(args.columns)
    if args.format in ('table', 'value') and command in LIST_COLUMNS:
        return list(LIST_COLUMNS[command])
    return sorted({key for row in rows for key in row})


def emit(
    result: Any,
    command: str,
    args: argparse.Namespace,
    stdout: TextIO | None = None,
) -> None:
    """Write ``result`` of ``command`` in the format ``args`` ask for."""
    stdout = stdout or sys.stdout
    formatter = FORMATTERS[args.format]()
    _fit_to_terminal(args, stdout)
    rows = _rows(result, command)
    if rows is not None:
        names = _list_columns(rows, command, args)
        data = [[_column(n, row.get(n)) for n in names] for row in rows]
        formatter.emit_list(names, data, stdout, args)
        if command == 'cache-list' and args.format == 'table':
            print(cache_summary(result), file=sys.stderr)
        return
    if not isinstance(result, dict):
        result = {'value': result}
    names = list(args.columns) or sorted(result)
    data = [_column(n, result.get(n)) for n in names]
    formatter.emit_one(names, data, stdout, args)


def cache_summary(result: dict) -> str:
    limit = result.get('max_size')
    return '%s: %s used of %s' % (
        result.get('directory'),
        human_size(result.get('size')),
        human_size(limit) if limit else 'no limit',
    )


def precache_rows(result: dict[str, dict[str, dict]]) -> list[dict]:
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
            rows.append(
                {
                    'host': host,
                    'image': image_id,
                    'status': outcome['status'],
                    'size': outcome.get('size'),
                    'fetched': outcome.get('fetched') or 0,
                    'error': error,
                }
            )
    return rows


def _terminal_columns(stream: TextIO) -> int:
    try:
        return shutil.get_terminal_size().columns if stream.isatty() else 80
    except (AttributeError, ValueError, OSError):
        return 80


class Progress:
    """A spinner with elapsed time, and bytes when a poller tells them.

    Drawn on ``stream`` (stderr) only when it is a terminal, so scripts and
    pipes see nothing but the final summary line. The line is cut to the
    terminal's width: a longer one wraps, and each refresh would scroll.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO = sys.stderr,
        poll: Callable[[], tuple | None] | None = None,
        poll_interval: float = 1.0,
        enabled: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.label = label
        self.stream = stream
        self.poll = poll
        self.poll_interval = poll_interval
        self.enabled = stream.isatty() if enabled is None else enabled
        self.width = width
        self.started = time.monotonic()
        self._done = threading.Event()
        # (bytes, size) or (bytes, size, rate in bytes/s) from ``poll``.
        self._known: tuple | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _line(self, frame: str) -> str:
        figures = '%.1f s' % self.elapsed()
        if self._known is not None:
            done, size, *rate = self._known
            figures += '  %s' % human_size(done)
            if size:
                figures += ' / %s (%d%%)' % (
                    human_size(size),
                    100 * done // size,
                )
            if rate and rate[0]:
                figures += '  %s/s' % human_size(rate[0])
        width = (self.width or _terminal_columns(self.stream)) - 1
        # The figures are what changes: the label gives way to them.
        room = max(width - len(figures) - 3, 0)
        label = self.label
        if len(label) > room:
            label = label[: max(room - 1, 0)] + '~' if room else ''
        return ('%s %s %s' % (frame, label, figures))[:width]

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

    def _draw(self) -> None:
        board = prettytable.PrettyTable(['Host', 'Pre-cache'])
        board.align = 'l'
        for host in self._hosts:
            board.add_row([host, self._state[host]])
        text = board.get_string()
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
