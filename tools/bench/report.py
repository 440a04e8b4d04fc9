"""A benchmark run as text, JSON and a chart.

python -m tools.bench.report OUTPUT_DIR/bench.json   (the table again)
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from tools.bench import stats

MET = {True: 'yes', False: 'NO'}


def _fmt(value: Any) -> str:
    if value is None:
        return '-'
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if abs(value) >= 100:
        return '%.0f' % value
    return '%.2f' % value


def _spread(results: dict, key: str) -> str:
    s = results.get('spreads', {}).get(key)
    if not s:
        return ''
    return '[%s-%s]' % (_fmt(s['low']), _fmt(s['high']))


def noise_lines(results: dict[str, Any]) -> list[str]:
    """What the run could not judge, and by how much."""
    threshold = results.get('noise_threshold', stats.NOISE_THRESHOLD)
    if results.get('rounds', 2) < 2:
        return ['Noise: not judged (one round).']
    loud = {k: v for k, v in results.get('noise', {}).items() if v > threshold}
    if not loud:
        return [
            'Noise: every baseline within %.0f%% of itself over the rounds.'
            % (threshold * 100)
        ]
    lines = [
        'TOO NOISY TO JUDGE %s: baselines apart from themselves by more '
        'than %.0f%% over the rounds:'
        % (', '.join(results.get('noisy', [])), threshold * 100)
    ]
    for name, value in sorted(loud.items()):
        lines.append('  %-40s %5.0f%%' % (name, value * 100))
    return lines


def target_lines(results: dict[str, Any]) -> list[str]:
    lines = [
        'Figures are medians of per-round values, spread [min-max] (p10-p90'
        ' from %d values)' % stats.PERCENTILE_SPREAD_FROM,
        '%-42s %8s %-13s %8s  %-10s %s'
        % ('Target', 'measured', 'spread', 'target', 'met', 'limit'),
    ]
    notes = results.get('notes', {})
    for key, verdict in results.get('targets', {}).items():
        met = MET[verdict['met']] + (' (noisy)' if verdict['noisy'] else '')
        lines.append(
            '%-42s %8s %-13s %8s  %-10s %s'
            % (
                verdict['label'],
                _fmt(verdict['value']),
                _spread(results, key),
                verdict['target'],
                met,
                notes.get(key, ''),
            )
        )
    return lines


def other_lines(results: dict[str, Any]) -> list[str]:
    """The top-level figures that are not targets."""
    shown = set(results.get('targets', {}))
    keys = [
        k
        for k in sorted(results.get('spreads', {}))
        + sorted(results.get('values', []))
        if k not in shown
    ]
    if not keys:
        return []
    lines = ['Other figures:']
    for key in keys:
        lines.append(
            '  %-40s %8s %-13s %s'
            % (
                key,
                _fmt(results.get(key)),
                _spread(results, key),
                results.get('notes', {}).get(key, ''),
            )
        )
    return lines


def table(results: dict[str, Any]) -> str:
    """The run as text: each section's figures, the noise, the targets."""
    lines: list[str] = []
    for section_lines in results.get('text', {}).values():
        lines += section_lines + ['']
    lines += noise_lines(results) + ['']
    lines += target_lines(results) + ['']
    lines += other_lines(results)
    return '\n'.join(lines).rstrip()


def write_json(results: dict[str, Any], output_dir: str) -> str:
    path = os.path.join(output_dir, 'bench.json')
    with open(path, 'w') as f:
        json.dump(results, f, indent=2, sort_keys=True)
    return path


def draw_chart(results: dict[str, Any], output_dir: str) -> str | None:
    """A bar chart of the throughput comparison, or None without
    matplotlib or without the throughput section."""
    throughput = results.get('raw', {}).get('throughput')
    try:
        import matplotlib

        matplotlib.use('Agg')
        from matplotlib import pyplot
    except ImportError:
        return None
    if not throughput:
        return None
    bars = [
        ('agent', 'tmpfs_agent', 'disk_agent'),
        ('glanceclient\n+checksum', 'tmpfs_glanceclient', 'disk_glanceclient'),
        ('curl', 'tmpfs_curl', 'disk_curl'),
    ]
    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    width = 0.38
    for offset, column, label in ((0, 1, 'tmpfs'), (width, 2, 'disk')):
        xs = [i + offset for i in range(len(bars))]
        s = [throughput[bar[column]] for bar in bars]
        heights = [x['median'] for x in s]
        errors = [
            [x['median'] - x['min'] for x in s],
            [x['max'] - x['median'] for x in s],
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        print(table(json.load(f)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
