"""Figures of a benchmark run: statistics, targets, table, JSON, chart."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from typing import Any

MB = 1e6


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    """The ``p`` percentile (0-100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[rank]


def spread(values: list[float]) -> dict[str, float]:
    return {
        'median': median(values),
        'min': min(values),
        'max': max(values),
        'n': len(values),
    }


def rates_mb_s(size: int, seconds: list[float]) -> list[float]:
    return [size / MB / s for s in seconds]


def paired_ratios(top: list[float], bottom: list[float]) -> list[float]:
    """Ratio of each round's pair (measured close in time)."""
    return [a / b for a, b in zip(top, bottom, strict=True)]


@dataclasses.dataclass
class Target:
    """One goal of the issue: ``key`` compared with ``limit``."""

    key: str
    label: str
    limit: float
    higher_is_better: bool
    unit: str = 'x'

    def met(self, value: float) -> bool:
        if self.higher_is_better:
            return value >= self.limit
        return value <= self.limit

    def describe(self) -> str:
        sign = '>=' if self.higher_is_better else '<='
        return '%s %g%s' % (sign, self.limit, '' if self.unit == 'x' else '')


TARGETS = [
    Target(
        'tmpfs_vs_reference', 'tmpfs: agent / glanceclient+checksum', 1.3, True
    ),
    Target('tmpfs_vs_sha512', 'tmpfs: agent / sha512 in memory', 0.85, True),
    Target('disk_vs_curl', 'disk: agent / curl + sync', 0.95, True),
    Target('rss_growth_mib', 'agent RSS growth (largest)', 16, False, 'MiB'),
    Target('show_ratio', 'show p50: agent / direct glanceclient', 1.2, False),
    Target('ping_ratio', 'ping p50: agent / raw no-op RPC', 1.3, False),
    Target(
        'concurrent_ratio', '4 downloads: aggregate / one download', 0.9, True
    ),
    Target(
        'ping_p99_ms_during_downloads',
        'ping p99 during 4 downloads',
        25,
        False,
        'ms',
    ),
    Target(
        'resume_refetch_mib',
        'Glance killed half way: fetched again',
        8,
        False,
        'MiB',
    ),
    Target(
        'dedupe_fetch_ratio',
        '2 identical downloads: fetched / image size',
        1.0,
        False,
    ),
]


def evaluate(results: dict[str, Any]) -> dict[str, dict]:
    """Each target with its measured value and whether it is met."""
    verdicts = {}
    for target in TARGETS:
        value = results.get(target.key)
        verdicts[target.key] = {
            'label': target.label,
            'target': target.describe(),
            'value': value,
            'met': None if value is None else target.met(value),
        }
    return verdicts


def _fmt(value: Any, unit: str = '') -> str:
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        text = '%.2f' % value if abs(value) < 100 else '%.0f' % value
    else:
        text = str(value)
    return text + unit


def table(results: dict[str, Any]) -> str:
    """The run as text: the raw figures, then every target."""
    raw = results['raw']
    lines = [
        'Throughput, 1 GiB image, MB/s (median [min-max] of %d rounds)'
        % results['rounds']
    ]
    for key, label in (
        ('tmpfs_agent', 'tmpfs  agent over RPC (verified, fsync)'),
        ('tmpfs_glanceclient', 'tmpfs  glanceclient data() + checksum'),
        ('tmpfs_curl', 'tmpfs  curl'),
        ('sha512', 'memory sha512 of 1 GiB'),
        ('disk_agent', 'disk   agent over RPC (verified, fsync)'),
        ('disk_glanceclient', 'disk   glanceclient + checksum + fsync'),
        ('disk_curl', 'disk   curl + sync'),
    ):
        s = raw['throughput'][key]
        lines.append(
            '  %-42s %6.0f  [%4.0f-%4.0f]'
            % (label, s['median'], s['min'], s['max'])
        )
    lines.append('')
    lines.append('Latency, ms (p50 / p99)')
    for key, label in (
        ('show_agent', 'show via agent'),
        ('show_direct', 'show, direct glanceclient (warm)'),
        ('ping_agent', 'ping via agent'),
        ('ping_raw', 'raw oslo.messaging no-op call'),
        ('ping_during_downloads', 'ping during 4 downloads (every 10 ms)'),
    ):
        s = raw['latency_ms'][key]
        lines.append('  %-42s %6.2f / %6.2f' % (label, s['p50'], s['p99']))
    lines.append('')
    rss = raw['rss_growth_mib']
    lines.append(
        'Agent RSS growth during a download, MiB: '
        + ', '.join('%s %.1f' % (k, v) for k, v in rss.items())
    )
    conc = raw['concurrent']
    lines.append(
        '4 x 512 MiB at once: %.0f MB/s aggregate vs %.0f MB/s for one'
        % (conc['aggregate_mb_s'], conc['single_mb_s'])
    )
    kill = raw['resume']
    lines.append(
        'Glance killed half way: %.2f MiB fetched again, %.2f s in all '
        '(%.2f s without a kill), %d requests, verified: %s'
        % (
            kill['refetch_mib'],
            kill['seconds'],
            kill['seconds_unkilled'],
            kill['requests'],
            kill['verified'],
        )
    )
    dedupe = raw['dedupe']
    lines.append(
        '2 identical downloads at once: %.0f MiB fetched for a %.0f MiB '
        'image' % (dedupe['fetched_mib'], dedupe['size_mib'])
    )
    lines.append('')
    lines.append(
        'Ratios are medians of the per-round ratios [min-max]; "of medians"'
        ' divides the medians.'
    )
    lines.append(
        '%-46s %10s %10s  %-4s %s'
        % ('Target', 'measured', 'target', 'met', 'spread')
    )
    spreads = raw['ratios']
    of_medians = raw['ratios_of_medians']
    for key, verdict in results['targets'].items():
        extra = ''
        if key in spreads:
            extra = '[%.2f-%.2f], of medians %.2f' % (
                spreads[key]['min'],
                spreads[key]['max'],
                of_medians[key],
            )
        lines.append(
            '%-46s %10s %10s  %-4s %s'
            % (
                verdict['label'],
                _fmt(verdict['value']),
                verdict['target'],
                {True: 'yes', False: 'NO', None: '?'}[verdict['met']],
                extra,
            )
        )
    lines.append('')
    lines.append('Limits of this machine, measured in the same run:')
    lines.append(
        '  %-44s %10s  (a verified download is never faster than its '
        'hash)'
        % (
            'disk: sha512 / curl + sync',
            _fmt(results.get('disk_ceiling_ratio')),
        )
    )
    lines.append(
        '  %-44s %10s  (raw no-op RPC + direct show, over direct show)'
        % ('show p50 floor', _fmt(results.get('show_floor_ratio')))
    )
    return '\n'.join(lines)


def write_json(results: dict[str, Any], output_dir: str) -> str:
    path = os.path.join(output_dir, 'bench.json')
    with open(path, 'w') as f:
        json.dump(results, f, indent=2, sort_keys=True)
    return path


def draw_chart(results: dict[str, Any], output_dir: str) -> str | None:
    """A bar chart of the throughput comparison, or None without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use('Agg')
        from matplotlib import pyplot
    except ImportError:
        return None
    throughput = results['raw']['throughput']
    bars = [
        ('agent', 'tmpfs_agent', 'disk_agent'),
        ('glanceclient\n+checksum', 'tmpfs_glanceclient', 'disk_glanceclient'),
        ('curl', 'tmpfs_curl', 'disk_curl'),
    ]
    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    width = 0.38
    for offset, column, label in ((0, 1, 'tmpfs'), (width, 2, 'disk')):
        xs = [i + offset for i in range(len(bars))]
        stats = [throughput[bar[column]] for bar in bars]
        heights = [s['median'] for s in stats]
        errors = [
            [s['median'] - s['min'] for s in stats],
            [s['max'] - s['median'] for s in stats],
        ]
        axes.bar(xs, heights, width, yerr=errors, capsize=4, label=label)
    sha = throughput['sha512']['median']
    axes.axhline(sha, color='grey', linestyle='--', label='sha512 in memory')
    axes.set_xticks([i + width / 2 for i in range(len(bars))])
    axes.set_xticklabels([bar[0] for bar in bars])
    axes.set_ylabel('MB/s (median, min-max)')
    axes.set_title(
        '1 GiB verified download, same run, %d rounds' % results['rounds']
    )
    axes.legend()
    figure.tight_layout()
    path = os.path.join(output_dir, 'throughput.png')
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
