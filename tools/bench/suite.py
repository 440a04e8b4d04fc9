"""The benchmark suite of the download engine and the agent.

    python -m tools.bench.suite OUTPUT_DIR [--rounds 5] [--only a,b]
    python -m tools.bench.suite --compare BEFORE.json AFTER.json

(``tools/bench/run.sh OUTPUT_DIR`` prepares a venv and runs this.) Brings
up the project's test deployment (Keystone, two Glance servers) and uses the
machine's RabbitMQ; starts two agents (one talking to Glance directly, one
through counting relays) and a raw oslo.messaging no-op server, then runs
the sections (all, or those ``--only`` names) in one run, each interleaved
and repeated; see SECTIONS. Prints a table (each figure with its spread,
and what the run was too noisy to judge), writes ``bench.json``,
``bench.txt`` and ``throughput.png`` into OUTPUT_DIR.

A section is a function ``run(bench) -> harness.Figures``; add one to
SECTIONS (with its module's ``SECTIONS`` list) and it gets ``--only``, the
noise check, targets (``targets.TARGETS``) and the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from typing import Any

from tools.bench import compare
from tools.bench import concurrent
from tools.bench import downloads
from tools.bench import environment
from tools.bench import formats
from tools.bench import harness
from tools.bench import latency
from tools.bench import recovery
from tools.bench import report
from tools.bench import stats
from tools.bench import targets
from tools.bench import uploads
from tools.bench.harness import GiB
from tools.bench.harness import say

# In the order they run: the throughput first, on a machine that has done
# nothing else yet.
SECTIONS: list[harness.Section] = [
    *downloads.SECTIONS,
    *latency.SECTIONS,
    *concurrent.SECTIONS,
    *recovery.SECTIONS,
    *uploads.SECTIONS,
    *formats.SECTIONS,
]


def _p2p(bench: harness.Bench) -> harness.Figures:
    # Imported when run: it reuses the test fixtures.
    from tools.bench import p2p

    return p2p.section(bench)


# Run only when --only names them (root, many agents, minutes each).
BY_HAND: list[harness.Section] = [
    harness.Section(
        'p2p',
        _p2p,
        '20 agents pre-cache 256 MiB through a Glance capped at 100 MB/s, '
        'with and without peers (tools/bench/p2p.py)',
    ),
]


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def summarize(
    figures: dict[str, harness.Figures], threshold: float
) -> dict[str, Any]:
    """bench.json: every section's figures at top level (a series as its
    median), their spreads, the baselines' noise, the targets."""
    results: dict[str, Any] = {
        'sections': list(figures),
        'spreads': {},
        'values': [],
        'noise': {},
        'noise_threshold': threshold,
        'notes': {},
        'raw': {},
        'text': {},
    }
    judged_by: dict[str, list[str]] = {}
    for name, fig in figures.items():
        for key, series in fig.series.items():
            results[key] = stats.median(series)
            results['spreads'][key] = stats.spread(series)
        results.update(fig.values)
        results['values'] += sorted(fig.values)
        results['noise'].update(targets.noise(fig.baselines))
        judged_by.update(fig.judged_by)
        results['notes'].update(fig.notes)
        _merge(results['raw'], fig.raw)
        results['raw'].setdefault('baselines', {}).update(
            {k: stats.spread(v) for k, v in fig.baselines.items()}
        )
        results['text'][name] = fig.lines
    # The per-round ratios' spreads where the first format kept them.
    results['raw']['ratios'] = results['spreads']
    results['noisy'] = targets.noisy(judged_by, results['noise'], threshold)
    results['targets'] = targets.evaluate(results)
    return results


def run(env: environment.Environment, args) -> dict[str, Any]:
    bench = harness.Bench(env, args)
    figures: dict[str, harness.Figures] = {}
    try:
        for section in SECTIONS + BY_HAND:
            if section.name in args.only:
                say('section %s' % section.name)
                figures[section.name] = section.run(bench)
    finally:
        bench.close()
    results = summarize(figures, args.noise_threshold)
    results['rounds'] = args.rounds
    if args.rounds < 2:
        results['noisy'] = []  # one value each: the noise is unknown
        results['targets'] = targets.evaluate(results)
    return results


def check_space(tmpfs: str, disk: str) -> None:
    """Fail early, and say why, on a machine too small for the run."""
    for path, needed in ((tmpfs, 2.5 * GiB), (disk, 10 * GiB)):
        st = os.statvfs(path)
        free = st.f_bavail * st.f_frsize
        if free < needed:
            raise SystemExit(
                'bench: %s has %.1f GiB free, the run needs %.1f GiB'
                % (path, free / GiB, needed / GiB)
            )


def parse(argv: list[str] | None) -> argparse.Namespace:
    names = [s.name for s in SECTIONS + BY_HAND]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('output_dir', nargs='?')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--concurrent-rounds', type=int, default=3)
    parser.add_argument('--calls', type=int, default=300)
    parser.add_argument(
        '--only',
        default=','.join(s.name for s in SECTIONS),
        help='comma-separated sections to run, of: %s' % ', '.join(names),
    )
    parser.add_argument(
        '--noise-threshold',
        type=float,
        default=stats.NOISE_THRESHOLD,
        help='a baseline whose (max-min)/median over the rounds is above '
        'this makes the figures divided by it too noisy to judge',
    )
    parser.add_argument(
        '--compare',
        nargs=2,
        metavar=('BEFORE_JSON', 'AFTER_JSON'),
        help='print two runs side by side and exit',
    )
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(',') if s.strip()]
    unknown = set(args.only) - set(names)
    if unknown:
        parser.error('unknown sections: %s' % ', '.join(sorted(unknown)))
    if not args.compare and not args.output_dir:
        parser.error('OUTPUT_DIR is needed')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.compare:
        return compare.main(args.compare)
    os.makedirs(args.output_dir, exist_ok=True)
    # The agents' configs and logs stay with the results.
    workdir = os.path.join(args.output_dir, 'agents')
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    check_space('/dev/shm', '/var/tmp')
    tmpfs = tempfile.mkdtemp(prefix='image-agent-bench-', dir='/dev/shm')
    disk = tempfile.mkdtemp(prefix='image-agent-bench-', dir='/var/tmp')
    machine = {
        'cpus': os.cpu_count(),
        'kernel': platform.release(),
        'python': platform.python_version(),
        'loadavg_at_start': os.getloadavg(),
    }
    env = environment.Environment(workdir, tmpfs, disk)
    try:
        env.start()
        results = run(env, args)
    finally:
        env.close()
    machine['loadavg_at_end'] = os.getloadavg()
    results['machine'] = machine
    text = report.table(results)
    print(text)
    with open(os.path.join(args.output_dir, 'bench.txt'), 'w') as f:
        f.write(text + '\n')
    say('wrote %s' % report.write_json(results, args.output_dir))
    chart = report.draw_chart(results, args.output_dir)
    say('wrote %s' % chart if chart else 'no chart')
    return 0


if __name__ == '__main__':
    sys.exit(main())
