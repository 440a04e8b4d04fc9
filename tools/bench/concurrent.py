"""Section: four downloads at once against one, the ping latency meanwhile
against a control, and the machine's own limit of both."""

from __future__ import annotations

from collections.abc import Callable
import os
import threading
import time

from tools.bench import environment
from tools.bench import harness
from tools.bench import latency
from tools.bench import measure
from tools.bench import stats
from tools.bench.harness import DIRECT
from tools.bench.harness import say

AT_ONCE = 4


def at_once(jobs: list[Callable[[], object]]) -> float:
    """Seconds until every job, each started in a thread of its own at
    the same time, has ended."""
    threads = [threading.Thread(target=job) for job in jobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


class _Round:
    """One round's figures; ``rates`` in MB/s by case."""

    def __init__(self) -> None:
        self.rates: dict[str, float] = {}
        self.pings: list[float] = []
        self.controls: list[float] = []
        self.loaded_controls: list[float] = []


def _pinged(bench: harness.Bench, jobs: list, round_: _Round) -> float:
    """``at_once(jobs)`` with the agent and the raw no-op server pinged
    every 10 ms meanwhile (the latencies kept in ``round_``)."""
    env = bench.env
    with (
        measure.Pinger(
            lambda: env.api.ping(env.context, host=DIRECT)
        ) as pinger,
        measure.Pinger(latency.noop_call(bench)) as control,
    ):
        seconds = at_once(jobs)
    round_.pings += pinger.latencies
    round_.controls += control.latencies
    return seconds


def _raw_server_downloads(bench: harness.Bench, image: dict) -> None:
    """``AT_ONCE`` downloads of ``image`` inside the raw no-op server."""
    paths = [
        os.path.join(bench.env.tmpfs, 'raw-server-%d' % i)
        for i in range(AT_ONCE)
    ]
    url = bench.env.file_url(image['id'])
    latency.noop_call(bench, 'load_start', url=url, paths=paths)()
    latency.noop_call(bench, 'load_wait')()


def _one_round(bench: harness.Bench, image: dict, data: memoryview) -> _Round:
    """The agent's download alone and ``AT_ONCE`` of them (pinged); then
    the machine's limit the same way: curl and sha512 at once (the two
    jobs of a verified download, nothing linking them), alone and
    ``AT_ONCE`` of them, pinged as the agent was; then ``AT_ONCE``
    downloads inside the raw server, pinged: the ping latency of any
    Python server whose process moves the bytes."""
    env = bench.env
    size = image['size'] / stats.MB
    path = os.path.join(env.tmpfs, 'concurrent-%d')
    agent = [
        lambda i=i: measure.agent_download(env, DIRECT, image, path % i)
        for i in range(AT_ONCE)
    ]
    machine = [
        lambda i=i: measure.curl_and_sha512(env, image, path % i, False, data)
        for i in range(AT_ONCE)
    ]
    result = _Round()
    environment.settle()
    result.rates['single'] = size / agent[0]()
    environment.settle()
    result.rates['aggregate'] = AT_ONCE * size / _pinged(bench, agent, result)
    environment.settle()
    result.rates['machine_single'] = size / machine[0]()
    environment.settle()
    pinged = _Round()  # the agent is idle here: not its pings
    result.rates['machine_aggregate'] = (
        AT_ONCE * size / _pinged(bench, machine, pinged)
    )
    environment.settle()
    loaded = _Round()
    seconds = _pinged(
        bench, [lambda: _raw_server_downloads(bench, image)], loaded
    )
    result.rates['raw_server_aggregate'] = AT_ONCE * size / seconds
    result.loaded_controls = loaded.controls
    return result


def concurrent(bench: harness.Bench) -> harness.Figures:
    """One 512 MiB download, then four at once, with pings of the agent
    and of the raw no-op server (the control) every 10 ms meanwhile; the
    same for curl and sha512 at once, the machine's limit."""
    bench.need('512m')
    env = bench.env
    image = env.images['512m']
    data = measure.hash_input(image['size'])
    # The image's file back in Glance's page cache: it has not been read
    # since the upload, and the machine may have paged it out since.
    measure.agent_download(env, DIRECT, image, os.path.join(env.tmpfs, 'w'))
    rounds = []
    for number in range(bench.args.concurrent_rounds):
        rounds.append(_one_round(bench, image, data))
        r = rounds[-1]
        say(
            'concurrent round %d/%d: one %.0f MB/s, four %.0f MB/s, ping '
            'p99 %.1f ms (control %.1f ms); machine: one %.0f MB/s, four '
            '%.0f MB/s'
            % (
                number + 1,
                bench.args.concurrent_rounds,
                r.rates['single'],
                r.rates['aggregate'],
                stats.percentile(r.pings, 99),
                stats.percentile(r.controls, 99),
                r.rates['machine_single'],
                r.rates['machine_aggregate'],
            )
        )
    return concurrent_figures(
        [r.rates['single'] for r in rounds],
        [r.rates['aggregate'] for r in rounds],
        [r.pings for r in rounds],
        [r.controls for r in rounds],
        limits=(
            [r.rates['machine_single'] for r in rounds],
            [r.rates['machine_aggregate'] for r in rounds],
        ),
        loaded_controls=[r.loaded_controls for r in rounds],
        loaded_rates=[r.rates['raw_server_aggregate'] for r in rounds],
    )


def concurrent_figures(
    singles,
    aggregates,
    pings,
    controls,
    limits=None,
    loaded_controls=None,
    loaded_rates=None,
) -> harness.Figures:
    """``limits``: the machine's (single, aggregate) MB/s per round;
    ``loaded_controls``: the raw server's latencies while it downloaded,
    at ``loaded_rates`` MB/s in aggregate."""
    p99 = [stats.percentile(p, 99) for p in pings]
    control_p99 = [stats.percentile(c, 99) for c in controls]
    every_ping = [v for p in pings for v in p]
    every_control = [v for c in controls for v in c]
    fig = harness.Figures(
        series={
            'concurrent_ratio': stats.paired_ratios(aggregates, singles),
            'ping_p99_vs_control': stats.paired_ratios(p99, control_p99),
        },
        values={
            'ping_p99_ms_during_downloads': stats.percentile(every_ping, 99),
            'ping_p99_ms_control': stats.percentile(every_control, 99),
        },
        baselines={
            'single_download_mb_s': singles,
            'control_ping_p99_ms': control_p99,
        },
        judged_by={
            'concurrent_ratio': ['single_download_mb_s'],
            'ping_p99_vs_control': ['control_ping_p99_ms'],
        },
        raw={
            'concurrent': {
                'single_mb_s': stats.median(singles),
                'aggregate_mb_s': stats.median(aggregates),
                'rounds': len(singles),
            },
            'latency_ms': stats.percentiles(
                {
                    'ping_during_downloads': every_ping,
                    'control_during_downloads': every_control,
                }
            ),
        },
    )
    fig.notes['ping_p99_vs_control'] = 'control p99 %.1f ms, agent %.1f ms' % (
        fig.values['ping_p99_ms_control'],
        fig.values['ping_p99_ms_during_downloads'],
    )
    fig.lines = [
        '4 x 512 MiB at once: %.0f MB/s aggregate vs %.0f MB/s for one'
        % (stats.median(aggregates), stats.median(singles)),
        'During them, every 10 ms: ping via agent p50 %.2f / p99 %.2f ms; '
        'raw no-op call (control) p50 %.2f / p99 %.2f ms'
        % (
            stats.median(every_ping),
            fig.values['ping_p99_ms_during_downloads'],
            stats.median(every_control),
            fig.values['ping_p99_ms_control'],
        ),
    ]
    if limits is not None:
        _add_limit(fig, aggregates, singles, *limits)
    if loaded_controls is not None:
        _add_loaded_control(fig, p99, loaded_controls, loaded_rates or [])
    return fig


def _add_loaded_control(fig, p99, loaded_controls, loaded_rates):
    """The limit of ``ping_p99_vs_control``: the raw server's p99 while
    its own process moves ``AT_ONCE`` downloads (its calls then wait for
    the GIL and the CPUs as the agent's do), and the agent's against it."""
    loaded_p99 = [stats.percentile(c, 99) for c in loaded_controls]
    every = [v for c in loaded_controls for v in c]
    fig.series['ping_p99_vs_loaded_control'] = stats.paired_ratios(
        p99, loaded_p99
    )
    fig.values['ping_p99_ms_loaded_control'] = stats.percentile(every, 99)
    fig.baselines['loaded_control_p99_ms'] = loaded_p99
    fig.judged_by['ping_p99_vs_loaded_control'] = ['loaded_control_p99_ms']
    fig.notes['ping_p99_vs_control'] += (
        '; a raw server moving 4 downloads itself: p99 %.1f ms (the '
        'limit), agent / that %.2f'
        % (
            fig.values['ping_p99_ms_loaded_control'],
            stats.median(fig.series['ping_p99_vs_loaded_control']),
        )
    )
    fig.lines.append(
        'The raw no-op server running 4 downloads itself (a thread each: '
        'read, sha512, write): its calls p50 %.2f / p99 %.2f ms'
        % (stats.median(every), fig.values['ping_p99_ms_loaded_control'])
        + (
            ', %.0f MB/s aggregate' % stats.median(loaded_rates)
            if loaded_rates
            else ''
        )
    )


def _add_limit(fig, aggregates, singles, machine_singles, machine_fours):
    """The limit of ``concurrent_ratio``: what four verified downloads'
    two jobs (curl, sha512) reach at once on this machine against one,
    and the agent's ratio against that."""
    limit = stats.paired_ratios(machine_fours, machine_singles)
    fig.series['concurrent_limit_ratio'] = limit
    fig.series['concurrent_vs_limit'] = stats.paired_ratios(
        stats.paired_ratios(aggregates, singles), limit
    )
    fig.baselines['machine_single_mb_s'] = machine_singles
    fig.baselines['machine_aggregate_mb_s'] = machine_fours
    both = ['machine_single_mb_s', 'machine_aggregate_mb_s']
    fig.judged_by['concurrent_limit_ratio'] = both
    fig.judged_by['concurrent_vs_limit'] = ['single_download_mb_s', *both]
    fig.notes['concurrent_ratio'] = (
        'curl and sha512 at once, 4 of them / one: %.2f (the limit); '
        'agent / that %.2f'
        % (
            stats.median(limit),
            stats.median(fig.series['concurrent_vs_limit']),
        )
    )
    fig.lines.append(
        'The machine, curl and sha512 at once: %.0f MB/s for one, 4 at once '
        '%.0f MB/s aggregate (pinged as the agent was)'
        % (stats.median(machine_singles), stats.median(machine_fours))
    )


SECTIONS = [harness.Section('concurrent', concurrent)]
