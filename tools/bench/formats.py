"""Sections: what format inspection costs a download, and how a download
converted to raw compares with ``qemu-img convert`` alone.

``formats_inspection``: the 1 GiB verified download into tmpfs by the
suite's agent (inspection on, as by default) and by an agent with
``[agent] inspect_formats = false``, interleaved in the same run; the
figure is their ratio (target: inspection costs at most 3%).

``formats_conversion``: a 1 GiB qcow2 (random data, so every cluster is
allocated) downloaded with ``convert_to='raw'`` onto disk (verified,
inspected, converted, fsynced) against ``qemu-img convert -f qcow2 -O raw``
of the same file already on that disk, its output fsynced too (target:
at least 0.9x, the download included).
"""

from __future__ import annotations

import os
import subprocess
import time

from tools.bench import environment
from tools.bench import harness
from tools.bench import measure
from tools.bench import stats
from tools.bench.harness import DIRECT
from tools.bench.harness import GiB
from tools.bench.harness import say

UNINSPECTED = 'bench-uninspected'


def _agent_without_inspection(bench: harness.Bench) -> environment.Agent:
    env = bench.env
    agent = environment.Agent(
        env.workdir,
        UNINSPECTED,
        env.topic,
        env.deployment,
        [env.glance_url],
        [env.tmpfs, env.disk],
    )
    # oslo.config merges a repeated section.
    with open(agent.config, 'a') as f:
        f.write('[agent]\ninspect_formats = false\n')
    env.agents.append(agent)
    agent.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            env.api.ping(env.context, host=UNINSPECTED)
            return agent
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def inspection(bench: harness.Bench) -> harness.Figures:
    """The 1 GiB download into tmpfs with and without inspection."""
    bench.need('1g')
    env = bench.env
    _agent_without_inspection(bench)
    image = env.images['1g']
    path = os.path.join(env.tmpfs, 'formats')
    cases = {
        'inspected': lambda: measure.agent_download(env, DIRECT, image, path),
        'uninspected': lambda: measure.agent_download(
            env, UNINSPECTED, image, path
        ),
    }
    say('format inspection, %d rounds' % bench.rounds)
    seconds = harness.interleaved(cases, bench.rounds, 'inspection')
    rates = {k: stats.rates_mb_s(GiB, v) for k, v in seconds.items()}
    ratio = stats.paired_ratios(rates['inspected'], rates['uninspected'])
    fig = harness.Figures(
        series={'inspection_ratio': ratio},
        baselines={'uninspected': rates['uninspected']},
        judged_by={'inspection_ratio': ['uninspected']},
        raw={'formats_inspection_mb_s': rates},
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


def _qemu_img_alone(source: str, target: str) -> float:
    def run() -> None:
        subprocess.run(
            ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', source,
             target],
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


def _converted_download(env, image: dict, path: str) -> float:
    try:
        return measure.timed(
            lambda: env.api.download(
                env.context, image['id'], path, host=DIRECT, convert_to='raw'
            )
        )
    finally:
        os.unlink(path)


def conversion(bench: harness.Bench) -> harness.Figures:
    """A qcow2 downloaded as raw, against qemu-img convert alone."""
    env = bench.env
    say('making a 1 GiB qcow2')
    source, image = _qcow2(env)
    os.sync()
    environment.settle()
    cases = {
        'agent_convert': lambda: _converted_download(
            env, image, os.path.join(env.disk, 'formats-agent.raw')
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
    fig = harness.Figures(
        series={
            'conversion_ratio': stats.paired_ratios(
                rates['agent_convert'], rates['qemu_img']
            )
        },
        baselines={'qemu_img': rates['qemu_img']},
        judged_by={'conversion_ratio': ['qemu_img']},
        raw={'formats_conversion_mb_s': rates},
    )
    fig.lines.append('Conversion, 1 GiB qcow2 to raw on disk, MB/s')
    labels = {
        'agent_convert': 'agent download convert_to=raw (all in)',
        'qemu_img': 'qemu-img convert alone + fsync',
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
