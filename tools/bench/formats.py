"""Sections: what format inspection costs a download, and how a download
converted to raw compares with ``qemu-img convert`` alone.

``formats_inspection``: the 1 GiB verified download into tmpfs by two
fresh agents alike but for ``[agent] inspect_formats``, interleaved in the
same run; the figure is their ratio (target: inspection costs at most 3%).

``formats_conversion``: a 1 GiB qcow2 (random data, so every cluster is
allocated) downloaded with ``convert_to='raw'`` onto disk (verified,
inspected, converted, fsynced) against ``qemu-img convert -f qcow2 -O raw
-t none`` (``writeback`` where the disk refuses O_DIRECT) of the same file
already on that disk, its output fsynced too (target: at least 0.9x, the
download included), and against its parts: the same download unconverted
plus qemu-img alone (the floor: qemu-img needs the whole verified file
before it starts).
"""

from __future__ import annotations

import os
import subprocess
import time

from image_agent.formats import inspect
from tools.bench import environment
from tools.bench import harness
from tools.bench import measure
from tools.bench import stats
from tools.bench.harness import GiB
from tools.bench.harness import MiB
from tools.bench.harness import say

INSPECTED = 'bench-fmt-on'
UNINSPECTED = 'bench-fmt-off'


def _agent(bench: harness.Bench, host: str, inspecting: bool):
    """An agent of this section's own, alike but for ``inspect_formats``
    (two fresh processes: the suite's agents have served other sections)."""
    env = bench.env
    agent = environment.Agent(
        env.workdir,
        host,
        env.topic,
        env.deployment,
        [env.glance_url],
        [env.tmpfs, env.disk],
    )
    # oslo.config merges a repeated section.
    with open(agent.config, 'a') as f:
        f.write('[agent]\ninspect_formats = %s\n' % str(inspecting).lower())
    env.agents.append(agent)
    agent.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            env.api.ping(env.context, host=host)
            return agent
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _inspection_cpu(disk_format: str, data: memoryview) -> float:
    """CPU seconds of inspecting ``data`` as the pipeline hands it over
    (4 MiB views of one buffer), in this process: robust to a busy
    machine, unlike the throughput of two downloads."""
    inspector = inspect.StreamInspector('bench', disk_format, [disk_format])
    started = time.process_time()
    for start in range(0, len(data), 4 * MiB):
        inspector.update(data[start : start + 4 * MiB])
    inspector.finish()
    return time.process_time() - started


def inspection(bench: harness.Bench) -> harness.Figures:
    """The 1 GiB download into tmpfs with and without inspection."""
    bench.need('1g')
    env = bench.env
    _agent(bench, INSPECTED, True)
    _agent(bench, UNINSPECTED, False)
    image = env.images['1g']
    path = os.path.join(env.tmpfs, 'formats')
    cases = {
        'inspected': lambda: measure.agent_download(
            env, INSPECTED, image, path
        ),
        'uninspected': lambda: measure.agent_download(
            env, UNINSPECTED, image, path
        ),
    }
    say('format inspection, %d rounds' % bench.rounds)
    seconds = harness.interleaved(cases, bench.rounds, 'inspection')
    rates = {k: stats.rates_mb_s(GiB, v) for k, v in seconds.items()}
    ratio = stats.paired_ratios(rates['inspected'], rates['uninspected'])
    data = memoryview(bytearray(os.urandom(16 * MiB)) * (GiB // (16 * MiB)))
    cpu = [_inspection_cpu('raw', data) * 1000 for _ in range(bench.rounds)]
    # What that CPU time is of the uninspected download's own time.
    share = stats.paired(
        lambda ms, s: ms / 1000 / s, cpu, seconds['uninspected']
    )
    fig = harness.Figures(
        series={
            'inspection_ratio': ratio,
            'inspection_cpu_ms_per_gib': cpu,
            'inspection_cpu_share': share,
        },
        baselines={'uninspected': rates['uninspected']},
        judged_by={'inspection_ratio': ['uninspected']},
        raw={'formats_inspection_mb_s': rates},
    )
    fig.lines.append(
        'Format inspection: %.0f ms of CPU per GiB (%.1f%% of a download)'
        % (stats.median(cpu), 100 * stats.median(share))
    )
    fig.lines.append('Format inspection, 1 GiB into tmpfs, MB/s')
    for key in ('inspected', 'uninspected'):
        s = stats.spread(rates[key])
        fig.lines.append(
            '  %-42s %6.0f  [%4.0f-%4.0f]'
            % ('agent, %s' % key, s['median'], s['min'], s['max'])
        )
    return fig


def _qcow2(env: environment.Environment) -> tuple[str, dict]:
    """A 1 GiB qcow2 of random data on disk, and the image holding it."""
    raw = os.path.join(env.disk, 'formats-source.raw')
    qcow2 = os.path.join(env.disk, 'formats-source.qcow2')
    with open(raw, 'wb') as f:
        stream = environment.RandomStream(GiB)
        buffer = bytearray(16 * 1024 * 1024)
        while count := stream.readinto(buffer):
            f.write(memoryview(buffer)[:count])
    subprocess.run(
        ['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2],
        check=True,
    )
    os.unlink(raw)
    with open(qcow2, 'rb') as f:
        image = env.service.create(
            env.context,
            {
                'name': 'bench-qcow2',
                'disk_format': 'qcow2',
                'container_format': 'bare',
            },
            data=f,
        )
    env.images['qcow2'] = image
    return qcow2, image


def _cache_mode(directory: str) -> str:
    """``none`` where files in ``directory`` open with O_DIRECT, else
    ``writeback``: the best way qemu-img can write there (Nova's and
    Cinder's choice, and the agent's)."""
    probe = os.path.join(directory, 'formats-o-direct-probe')
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return 'writeback'
    os.close(fd)
    os.unlink(probe)
    return 'none'


def _qemu_img_alone(source: str, target: str) -> float:
    cache = _cache_mode(os.path.dirname(target))

    def run() -> None:
        subprocess.run(
            ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', '-t', cache,
             source, target],
            check=True,
        )  # fmt: skip
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    try:
        return measure.timed(run)
    finally:
        os.unlink(target)


def _download(env, image: dict, path: str, **kwargs) -> float:
    try:
        return measure.timed(
            lambda: env.api.download(
                env.context, image['id'], path, host=INSPECTED, **kwargs
            )
        )
    finally:
        os.unlink(path)


def conversion(bench: harness.Bench) -> harness.Figures:
    """A qcow2 downloaded as raw, against qemu-img convert alone, and
    against its parts (the same download unconverted, then qemu-img)."""
    env = bench.env
    if INSPECTED not in [a.host for a in env.agents]:
        _agent(bench, INSPECTED, True)
    say('making a 1 GiB qcow2')
    source, image = _qcow2(env)
    os.sync()
    environment.settle()
    cases = {
        'agent_convert': lambda: _download(
            env,
            image,
            os.path.join(env.disk, 'formats-agent.raw'),
            convert_to='raw',
        ),
        'agent_download': lambda: _download(
            env, image, os.path.join(env.disk, 'formats-agent.qcow2')
        ),
        'qemu_img': lambda: _qemu_img_alone(
            source, os.path.join(env.disk, 'formats-alone.raw')
        ),
    }
    try:
        say('conversion, %d rounds' % bench.rounds)
        seconds = harness.interleaved(cases, bench.rounds, 'conversion')
    finally:
        os.unlink(source)
        bench.drop('qcow2')
    rates = {k: stats.rates_mb_s(GiB, v) for k, v in seconds.items()}
    # The download and the conversion run one after the other (qemu-img
    # needs the whole, verified file): their sum is the floor.
    parts = stats.paired(
        lambda d, q: d + q, seconds['agent_download'], seconds['qemu_img']
    )
    fig = harness.Figures(
        series={
            'conversion_ratio': stats.paired_ratios(
                rates['agent_convert'], rates['qemu_img']
            ),
            'conversion_vs_parts': stats.paired_ratios(
                parts, seconds['agent_convert']
            ),
        },
        baselines={
            'qemu_img': rates['qemu_img'],
            'agent_download': rates['agent_download'],
        },
        judged_by={
            'conversion_ratio': ['qemu_img'],
            'conversion_vs_parts': ['qemu_img', 'agent_download'],
        },
        raw={'formats_conversion_mb_s': rates},
    )
    fig.lines.append('Conversion, 1 GiB qcow2 to raw on disk, MB/s')
    labels = {
        'agent_convert': 'agent download convert_to=raw (all in)',
        'agent_download': 'agent download, not converted',
        'qemu_img': 'qemu-img convert alone (-t none) + fsync',
    }
    for key, label in labels.items():
        s = stats.spread(rates[key])
        fig.lines.append(
            '  %-42s %6.0f  [%4.0f-%4.0f]'
            % (label, s['median'], s['min'], s['max'])
        )
    return fig


SECTIONS = [
    harness.Section('formats_inspection', inspection),
    harness.Section('formats_conversion', conversion),
]
