"""Two benchmark runs side by side: a before/after table.

    python -m tools.bench.compare BEFORE/bench.json AFTER/bench.json

(also ``tools/bench/run.sh --compare A B``). Works with every bench.json
format so far: a figure one run does not have is shown as "-". Needs
nothing but the standard library.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tools.bench import stats
from tools.bench import targets

SKIP = {'rounds', 'noise_threshold'}
TARGETS = {t.key: t for t in targets.TARGETS}


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if not _num(value):
        return '-'
    return '%.0f' % value if abs(value) >= 100 else '%.2f' % value


def _spread(run: dict, key: str) -> dict | None:
    """A figure's spread: ``spreads`` (low/high), or the old
    ``raw.ratios`` (min/max)."""
    s = run.get('spreads', {}).get(key) or run.get('raw', {}).get(
        'ratios', {}
    ).get(key)
    if not s:
        return None
    return {
        'low': s.get('low', s.get('min')),
        'high': s.get('high', s.get('max')),
    }


def _cell(value: Any, s: dict | None) -> str:
    text = _fmt(value)
    if s and _num(value):
        text += ' [%s-%s]' % (_fmt(s['low']), _fmt(s['high']))
    return text


def _change(a: Any, b: Any) -> str:
    if not (_num(a) and _num(b)) or not a:
        return '-'
    return 'x%.2f' % (b / a)


def _met(run: dict, key: str) -> str:
    value = run.get(key)
    if key not in TARGETS or not _num(value):
        return '-'
    text = 'yes' if TARGETS[key].met(value) else 'NO'
    return text + ('?' if key in run.get('noisy', ()) else '')


def derive(run: dict) -> list[str]:
    """The figures of today's format that a run of an older one lacks,
    computed from its raw figures where it has them (into ``run``); the
    keys derived."""
    derived = []
    raw = run.get('raw', {})
    rates = raw.get('throughput_mb_s_per_round', {})
    for where in ('tmpfs', 'disk'):
        key = '%s_vs_limit' % where
        names = ('%s_agent' % where, 'sha512', '%s_curl' % where)
        if key in run or not all(n in rates for n in names):
            continue
        agent, sha, curl = (rates[n] for n in names)
        series = stats.paired(lambda a, s, c: a / min(s, c), agent, sha, curl)
        run[key] = stats.median(series)
        run.setdefault('spreads', {})[key] = stats.spread(series)
        derived.append(key)
    latency = raw.get('latency_ms', {})
    parts = ('show_agent', 'ping_raw', 'show_direct')
    if 'show_overhead_ms' not in run and all(p in latency for p in parts):
        agent, rpc, direct = (latency[p]['p50'] for p in parts)
        run['show_overhead_ms'] = agent - rpc - direct
        derived.append('show_overhead_ms')
    dedupe = raw.get('dedupe', {})
    if 'dedupe_extra_kib_per_joiner' not in run and 'fetched_mib' in dedupe:
        extra = (dedupe['fetched_mib'] - dedupe['size_mib']) * 1024
        run['dedupe_extra_kib_per_joiner'] = extra
        derived.append('dedupe_extra_kib_per_joiner')
    if 'noisy' not in run and rates:
        noise = targets.noise(
            {
                n: rates[n]
                for n in ('tmpfs_curl', 'disk_curl', 'sha512')
                if n in rates
            }
        )
        judged_by = {
            'tmpfs_vs_limit': ['tmpfs_curl', 'sha512'],
            'disk_vs_limit': ['disk_curl', 'sha512'],
        }
        run['noisy'] = targets.noisy(judged_by, noise)
        run['noise'] = noise
        derived.append('noisy')
    return derived


def figure_keys(a: dict, b: dict) -> list[str]:
    """Targets first (in their order), then every other number."""
    present = {
        k
        for run in (a, b)
        for k, v in run.items()
        if _num(v) and k not in SKIP
    }
    first = [k for k in TARGETS if k in present]
    return first + sorted(present - set(first))


def _nested(run: dict, *path: str) -> dict:
    for key in path:
        run = run.get(key) or {}
    return run


def table(a: dict, b: dict, names: tuple[str, str] = ('A', 'B')) -> str:
    row = '%-36s %-24s %-24s %7s %9s %s'
    lines = [
        'A: %s' % names[0],
        'B: %s' % names[1],
        '',
        row
        % ('figure', 'A [spread]', 'B [spread]', 'B/A', 'target', 'met A/B'),
    ]
    for key in figure_keys(a, b):
        target = TARGETS[key].describe() if key in TARGETS else ''
        lines.append(
            row
            % (
                key,
                _cell(a.get(key), _spread(a, key)),
                _cell(b.get(key), _spread(b, key)),
                _change(a.get(key), b.get(key)),
                target,
                '%s/%s' % (_met(a, key), _met(b, key)) if target else '',
            )
        )
    for title, path in (
        ('Downloads, MB/s', ('raw', 'throughput')),
        ('Uploads, MB/s', ('raw', 'upload_throughput')),
    ):
        ta, tb = _nested(a, *path), _nested(b, *path)
        if not (ta or tb):
            continue
        lines += ['', title]
        for key in sorted(set(ta) | set(tb)):
            sa, sb = ta.get(key) or {}, tb.get(key) or {}
            lines.append(
                row
                % (
                    '  ' + key,
                    _cell(sa.get('median'), _minmax(sa)),
                    _cell(sb.get('median'), _minmax(sb)),
                    _change(sa.get('median'), sb.get('median')),
                    '',
                    '',
                )
            )
    la, lb = _nested(a, 'raw', 'latency_ms'), _nested(b, 'raw', 'latency_ms')
    if la or lb:
        lines += ['', 'Latency, ms (p50 / p99)']
        for key in sorted(set(la) | set(lb)):
            pa, pb = la.get(key) or {}, lb.get(key) or {}
            lines.append(
                row
                % (
                    '  ' + key,
                    '%s / %s' % (_fmt(pa.get('p50')), _fmt(pa.get('p99'))),
                    '%s / %s' % (_fmt(pb.get('p50')), _fmt(pb.get('p99'))),
                    _change(pa.get('p50'), pb.get('p50')),
                    '',
                    '',
                )
            )
    lines += ['']
    for name, run in (('A', a), ('B', b)):
        if run.get('derived'):
            lines.append(
                '%s is of an older format: %s computed from its raw figures'
                % (name, ', '.join(run['derived']))
            )
        noisy = run.get('noisy')
        lines.append(
            '%s too noisy to judge: %s'
            % (name, '-' if noisy is None else ', '.join(noisy) or 'nothing')
        )
    return '\n'.join(lines)


def _minmax(s: dict) -> dict | None:
    if 'min' not in s:
        return None
    return {'low': s['min'], 'high': s['max']}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    runs = []
    for path in argv:
        with open(path) as f:
            run = json.load(f)
        run['derived'] = derive(run)
        runs.append(run)
    print(table(runs[0], runs[1], (argv[0], argv[1])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
