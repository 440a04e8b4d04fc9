"""Figures collected by the fault tests, printed as one table at the end.

Each scenario gets a ``Row``: how many faults it injected, how many calls
it made, how many of those failed in a way the scenario does not allow, how
many ended in an expected typed error, how many failed because of a known
bug (each has a strict-xfail test of its own), and how many bytes were lost (a
destination that changed when it should not have, a finished download whose
bytes differ from the image). Tests count *before* they assert, so the
table tells what happened even when a test fails.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time

_LOCK = threading.Lock()


@dataclasses.dataclass
class Row:
    scenario: str
    faults: int = 0
    calls: int = 0
    failures: int = 0
    typed_errors: int = 0
    known_bugs: int = 0
    bytes_lost: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    outcome: str = ''
    seconds: float = 0.0
    errors: collections.Counter = dataclasses.field(
        default_factory=collections.Counter
    )

    def add(self, **counts: int) -> None:
        with _LOCK:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def error(self, error: BaseException) -> None:
        """Count one expected typed error by its class."""
        name = type(error).__name__.removesuffix('_Remote')
        with _LOCK:
            self.typed_errors += 1
            self.errors[name] += 1

    def note(self, text: str) -> None:
        with _LOCK:
            self.notes.append(text)


class Report:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.started = time.monotonic()

    def row(self, scenario: str) -> Row:
        with _LOCK:
            return self.rows.setdefault(scenario, Row(scenario))

    def lines(self) -> list[str]:
        rows = sorted(self.rows.values(), key=lambda r: r.scenario)
        headers = (
            'scenario',
            'result',
            'secs',
            'faults',
            'calls',
            'failures',
            'typed errs',
            'known bugs',
            'bytes lost',
        )
        table = [
            (
                r.scenario,
                r.outcome or '-',
                '%.1f' % r.seconds,
                str(r.faults),
                str(r.calls),
                str(r.failures),
                str(r.typed_errors),
                str(r.known_bugs),
                str(r.bytes_lost),
            )
            for r in rows
        ]
        table.append(
            (
                'TOTAL',
                '',
                '%.1f' % (time.monotonic() - self.started),
                str(sum(r.faults for r in rows)),
                str(sum(r.calls for r in rows)),
                str(sum(r.failures for r in rows)),
                str(sum(r.typed_errors for r in rows)),
                str(sum(r.known_bugs for r in rows)),
                str(sum(r.bytes_lost for r in rows)),
            )
        )
        widths = [
            max(len(headers[i]), *(len(t[i]) for t in table))
            for i in range(len(headers))
        ]

        def fmt(values) -> str:
            cells = [
                v.ljust(w) if i < 2 else v.rjust(w)
                for i, (v, w) in enumerate(zip(values, widths, strict=True))
            ]
            return ' | '.join(cells)

        rule = '-+-'.join('-' * w for w in widths)
        out = [fmt(headers), rule]
        out += [fmt(t) for t in table[:-1]]
        out += [rule, fmt(table[-1])]
        details = []
        for r in rows:
            extra = list(r.notes)
            if r.errors:
                extra.append(
                    'typed errors: '
                    + ', '.join(
                        '%s x%d' % (name, count)
                        for name, count in sorted(r.errors.items())
                    )
                )
            if extra:
                details.append('%s:' % r.scenario)
                details += ['    %s' % text for text in extra]
        if details:
            out += ['', *details]
        return out


REPORT = Report()
