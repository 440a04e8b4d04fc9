"""Section: show and ping latency against their floors."""

from __future__ import annotations

import time

import oslo_messaging as messaging

from image_agent import rpc
from tools.bench import environment
from tools.bench import harness
from tools.bench import measure
from tools.bench import stats
from tools.bench.harness import DIRECT

BLOCK = 25  # calls of one kind in a row, before the next kind's block


def noop_call(bench: harness.Bench, method: str = 'noop', **kwargs):
    """A call of the raw oslo.messaging server: ``noop`` (the RPC floor)
    or ``show`` (glanceclient's show in a server doing nothing else)."""
    raw = messaging.get_rpc_client(
        bench.env.transport,
        messaging.Target(topic=bench.noop_topic, server='noop'),
    )
    context = rpc.context_to_dict(bench.env.context)
    return lambda: raw.call(context, method, **kwargs)


def latency(bench: harness.Bench) -> harness.Figures:
    """show via the agent vs direct glanceclient, ping vs a raw no-op
    call; in alternating blocks so that every kind sees the same machine.
    The show overhead is the agent's own work per call: its show p50 minus
    a raw RPC round trip's p50 and a direct Glance show's p50, per block.
    A raw oslo.messaging server's show (glanceclient in the server, nothing
    else) measures what a show costs any RPC server beyond that sum: the
    limit of the overhead.
    """
    bench.need('warm')
    env = bench.env
    image_id = env.images['warm']['id']
    calls = {
        'show_agent': lambda: env.api.show(env.context, image_id, host=DIRECT),
        'show_direct': lambda: bench.client.images.get(image_id),
        'show_raw': noop_call(bench, 'show', image_id=image_id),
        'ping_agent': lambda: env.api.ping(env.context, host=DIRECT),
        'ping_raw': noop_call(bench),
    }
    # Whose CPU time is each kind's own work: the agent's worker, the
    # no-op server, this thread (the direct glanceclient call).
    workers = {
        'show_agent': bench.direct.worker,
        'ping_agent': bench.direct.worker,
        'ping_raw': bench.noop.pid,
        'show_raw': bench.noop.pid,
    }
    for call in calls.values():  # warm every path
        measure.latencies_ms(call, 10)
    result: dict[str, list[float]] = {name: [] for name in calls}
    blocks: dict[str, list[float]] = {name: [] for name in calls}
    cpu = dict.fromkeys(calls, 0.0)
    for _ in range(max(1, bench.args.calls // BLOCK)):
        for name, call in calls.items():
            pid = workers.get(name)
            used = environment.cpu_ms(pid) if pid else time.thread_time()
            values = measure.latencies_ms(call, BLOCK)
            if pid:
                cpu[name] += environment.cpu_ms(pid) - used
            else:
                cpu[name] += (time.thread_time() - used) * 1000
            result[name] += values
            blocks[name].append(stats.median(values))
    per_call = {name: cpu[name] / len(result[name]) for name in calls}
    return latency_figures(result, blocks, per_call)


def latency_figures(
    result: dict, blocks: dict, cpu: dict | None = None
) -> harness.Figures:
    """``cpu``: CPU ms per call of the process doing each kind's work."""
    p50 = {name: stats.median(values) for name, values in result.items()}
    cpu = cpu or {}
    fig = harness.Figures(
        series={
            'show_overhead_ms': stats.paired(
                lambda agent, raw, direct: agent - raw - direct,
                blocks['show_agent'],
                blocks['ping_raw'],
                blocks['show_direct'],
            ),
            'show_ratio': stats.paired_ratios(
                blocks['show_agent'], blocks['show_direct']
            ),
            'ping_ratio': stats.paired_ratios(
                blocks['ping_agent'], blocks['ping_raw']
            ),
        },
        values={
            'show_floor_ratio': (p50['ping_raw'] + p50['show_direct'])
            / p50['show_direct'],
        },
        baselines={
            'show_direct_p50': blocks['show_direct'],
            'ping_raw_p50': blocks['ping_raw'],
        },
        judged_by={
            'show_overhead_ms': ['show_direct_p50', 'ping_raw_p50'],
            'show_ratio': ['show_direct_p50'],
            'ping_ratio': ['ping_raw_p50'],
        },
        notes={
            'show_overhead_ms': 'floor %.2f ms: raw RPC %.2f + show %.2f'
            % (
                p50['ping_raw'] + p50['show_direct'],
                p50['ping_raw'],
                p50['show_direct'],
            ),
        },
        raw={
            'latency_ms': stats.percentiles(result),
            'latency_blocks': blocks,
            'cpu_ms_per_call': cpu,
        },
        lines=[
            'Latency, ms (p50 / p99; CPU ms per call of who does the work)'
        ],
    )
    if 'show_raw' in blocks:
        _add_raw_server_show(fig, blocks, p50)
    if len(cpu) == len(p50):
        # The agent's own work per show in CPU time, which a busy machine
        # does not stretch as it stretches latencies: the agent's CPU per
        # show, less a raw RPC server's per call and a direct glanceclient
        # show's (the same Glance call the agent makes).
        fig.values['show_overhead_cpu_ms'] = (
            cpu['show_agent'] - cpu['ping_raw'] - cpu['show_direct']
        )
        fig.notes['show_overhead_ms'] += (
            '; agent CPU: %.2f ms over' % (fig.values['show_overhead_cpu_ms'])
        )
    for key, label in (
        ('show_agent', 'show via agent'),
        ('show_direct', 'show, direct glanceclient (warm)'),
        ('show_raw', 'show, raw oslo.messaging server'),
        ('ping_agent', 'ping via agent'),
        ('ping_raw', 'raw oslo.messaging no-op call'),
    ):
        if key not in fig.raw['latency_ms']:
            continue
        s = fig.raw['latency_ms'][key]
        used = ' cpu %.2f' % cpu[key] if key in cpu else ''
        fig.lines.append(
            '  %-42s %6.2f / %6.2f%s' % (label, s['p50'], s['p99'], used)
        )
    return fig


def _add_raw_server_show(fig: harness.Figures, blocks: dict, p50: dict):
    """The limit of the show overhead: what a show costs a plain
    oslo.messaging server (glanceclient's show in the server, nothing
    else) over the same floor; and the agent's show against that server's.
    """
    fig.series['show_raw_server_over_floor_ms'] = stats.paired(
        lambda raw_show, raw, direct: raw_show - raw - direct,
        blocks['show_raw'],
        blocks['ping_raw'],
        blocks['show_direct'],
    )
    fig.series['show_over_raw_server_ms'] = stats.paired(
        lambda agent, raw_show: agent - raw_show,
        blocks['show_agent'],
        blocks['show_raw'],
    )
    fig.baselines['show_raw_p50'] = blocks['show_raw']
    fig.judged_by['show_raw_server_over_floor_ms'] = [
        'show_direct_p50',
        'ping_raw_p50',
    ]
    fig.judged_by['show_over_raw_server_ms'] = ['show_raw_p50']
    fig.notes['show_overhead_ms'] += (
        '; a raw oslo.messaging server showing with glanceclient: '
        '%.2f ms over the floor (the limit)'
        % (p50['show_raw'] - p50['ping_raw'] - p50['show_direct'])
    )


SECTIONS = [harness.Section('latency', latency)]
