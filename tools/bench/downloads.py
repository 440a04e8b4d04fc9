"""Sections: the 1 GiB download's throughput against the machine's limits,
and the agent's memory during downloads."""

from __future__ import annotations

import os

from tools.bench import environment
from tools.bench import harness
from tools.bench import measure
from tools.bench import stats
from tools.bench.harness import DIRECT
from tools.bench.harness import GiB
from tools.bench.harness import MiB
from tools.bench.harness import say

LABELS = {
    'tmpfs_agent': 'tmpfs  agent over RPC (verified, fsync)',
    'tmpfs_glanceclient': 'tmpfs  glanceclient data() + checksum',
    'tmpfs_curl': 'tmpfs  curl',
    'sha512': 'memory sha512 of 1 GiB',
    'tmpfs_both': 'tmpfs  curl and sha512 at once',
    'disk_agent': 'disk   agent over RPC (verified, fsync)',
    'disk_glanceclient': 'disk   glanceclient + checksum + fsync',
    'disk_curl': 'disk   curl + sync',
    'disk_both': 'disk   curl + sync and sha512 at once',
}


def _cases(bench: harness.Bench) -> dict:
    env, client = bench.env, bench.client
    image = env.images['1g']
    tmpfs = os.path.join(env.tmpfs, 'throughput')
    disk = os.path.join(env.disk, 'throughput')
    data = measure.hash_input(GiB)
    return {
        'tmpfs_agent': lambda: measure.agent_download(
            env, DIRECT, image, tmpfs
        ),
        'tmpfs_glanceclient': lambda: measure.glanceclient_download(
            client, image, tmpfs, sync=False
        ),
        'tmpfs_curl': lambda: measure.curl_download(
            env, image, tmpfs, sync=False
        ),
        'sha512': lambda: measure.sha512_memory(data),
        'disk_agent': lambda: measure.agent_download(env, DIRECT, image, disk),
        'disk_glanceclient': lambda: measure.glanceclient_download(
            client, image, disk, sync=True
        ),
        'disk_curl': lambda: measure.curl_download(
            env, image, disk, sync=True
        ),
        'tmpfs_both': lambda: measure.curl_and_sha512(
            env, image, tmpfs, False, data
        ),
        'disk_both': lambda: measure.curl_and_sha512(
            env, image, disk, True, data
        ),
    }


def throughput(bench: harness.Bench) -> harness.Figures:
    """A 1 GiB download into tmpfs and onto disk by the agent, by
    python-glanceclient with its checksum (the reference's path) and by
    curl (the network limit), and sha512 in memory (the hashing limit)."""
    bench.need('1g')
    env = bench.env
    # Every 1 GiB path warm (the store's file in the page cache, tmpfs
    # pages) before anything is timed.
    warm = os.path.join(env.tmpfs, 'w')
    measure.agent_download(env, DIRECT, env.images['1g'], warm)
    measure.glanceclient_download(bench.client, env.images['1g'], warm, False)
    say('throughput, %d rounds' % bench.rounds)
    seconds = harness.interleaved(_cases(bench), bench.rounds, 'throughput')
    rates = {k: stats.rates_mb_s(GiB, v) for k, v in seconds.items()}
    return figures(rates)


def _limit(sha: list[float], curl: list[float]) -> list[float]:
    return stats.paired(min, sha, curl)


def figures(rates: dict[str, list[float]]) -> harness.Figures:
    sha = rates['sha512']
    limit = {
        where: _limit(sha, rates['%s_curl' % where])
        for where in ('tmpfs', 'disk')
    }
    ratio = stats.paired_ratios
    fig = harness.Figures(
        series={
            'tmpfs_vs_limit': ratio(rates['tmpfs_agent'], limit['tmpfs']),
            'disk_vs_limit': ratio(rates['disk_agent'], limit['disk']),
            'tmpfs_vs_reference': ratio(
                rates['tmpfs_agent'], rates['tmpfs_glanceclient']
            ),
            'tmpfs_vs_sha512': ratio(rates['tmpfs_agent'], sha),
            'disk_vs_curl': ratio(rates['disk_agent'], rates['disk_curl']),
            # Against both jobs run at once (when measured): what the
            # machine allows when hashing and receiving share its CPUs.
            **{
                '%s_vs_both' % where: ratio(
                    rates['%s_agent' % where], rates['%s_both' % where]
                )
                for where in ('tmpfs', 'disk')
                if '%s_both' % where in rates
            },
            # What the disk allows at best: no verified download outruns
            # its hash.
            'disk_ceiling_ratio': ratio(sha, rates['disk_curl']),
        },
        baselines={
            k: rates[k]
            for k in (
                'tmpfs_curl',
                'disk_curl',
                'sha512',
                'tmpfs_glanceclient',
                'tmpfs_both',
                'disk_both',
            )
            if k in rates
        },
        judged_by={
            'tmpfs_vs_limit': ['tmpfs_curl', 'sha512'],
            'disk_vs_limit': ['disk_curl', 'sha512'],
            'tmpfs_vs_reference': ['tmpfs_glanceclient'],
            'tmpfs_vs_sha512': ['sha512'],
            'disk_vs_curl': ['disk_curl'],
            'tmpfs_vs_both': ['tmpfs_both'],
            'disk_vs_both': ['disk_both'],
        },
        raw={
            'throughput': {k: stats.spread(v) for k, v in rates.items()},
            'throughput_mb_s_per_round': rates,
        },
    )
    for where in ('tmpfs', 'disk'):
        curl = stats.median(rates['%s_curl' % where])
        fig.notes['%s_vs_limit' % where] = (
            'limit %.0f MB/s: min(sha512 %.0f, curl %.0f)'
            % (stats.median(limit[where]), stats.median(sha), curl)
        )
        both = rates.get('%s_both' % where)
        if both:
            fig.notes['%s_vs_limit' % where] += (
                '; both at once %.0f MB/s, agent / that %.2f'
                % (
                    stats.median(both),
                    stats.median(fig.series['%s_vs_both' % where]),
                )
            )
    fig.lines.append(
        'Throughput, 1 GiB image, MB/s (median [min-max] of %d rounds)'
        % len(sha)
    )
    for key, label in LABELS.items():
        if key not in rates:
            continue
        s = stats.spread(rates[key])
        fig.lines.append(
            '  %-42s %6.0f  [%4.0f-%4.0f]'
            % (label, s['median'], s['min'], s['max'])
        )
    return fig


def rss(bench: harness.Bench) -> harness.Figures:
    """Peak RSS growth of the agent's worker during one download each of
    256 MiB, 1 GiB and 2 GiB."""
    bench.need('256m', '1g', '2g')
    growth = {}
    for name in ('256m', '1g', '2g'):
        # Onto disk: the page cache is not the agent's memory, and a small
        # machine's tmpfs may not hold 2 GiB.
        path = os.path.join(bench.env.disk, 'rss-%s' % name)
        environment.settle()
        with measure.RssPeak(bench.direct.worker) as peak:
            measure.agent_download(
                bench.env, DIRECT, bench.env.images[name], path
            )
        growth[name] = peak.growth / MiB
        say('RSS growth during a %s download: %.1f MiB' % (name, growth[name]))
    bench.drop('256m', '2g')
    return harness.Figures(
        values={'rss_growth_mib': max(growth.values())},
        raw={'rss_growth_mib': growth},
        lines=[
            'Agent RSS growth during a download, MiB: '
            + ', '.join('%s %.1f' % item for item in growth.items())
        ],
    )


SECTIONS = [
    harness.Section('throughput', throughput),
    harness.Section('rss', rss),
]
