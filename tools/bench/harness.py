"""What every section of the benchmark shares: the agents, relays, no-op
RPC server and images of a run, and the shape of a section's figures."""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import dataclasses
import os
import subprocess
import sys
from typing import Any

from tools.bench import environment
from tools.bench import measure
from tools.testenv.relay import Relay

MiB = environment.MiB
GiB = 1024 * MiB
SIZES = {'256m': 256 * MiB, '512m': 512 * MiB, '1g': GiB, '2g': 2 * GiB}
DIRECT = 'bench'
RELAYED = 'bench-relayed'


def say(text: str) -> None:
    print('[bench] %s' % text, flush=True)


@dataclasses.dataclass
class Figures:
    """What one section measured.

    ``series``: top-level figures as their per-round values (the figure is
    their median, printed with their spread); ``values``: top-level figures
    measured once; ``baselines``: per-round values of the references the
    figures are divided by, and ``judged_by`` which figure depends on
    which (a baseline noisier than the threshold makes its figures
    unjudgeable); ``notes``: the measured limit printed beside a target;
    ``raw``: everything else for bench.json; ``lines``: the section's part
    of the table.
    """

    series: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    baselines: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    judged_by: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    notes: dict[str, str] = dataclasses.field(default_factory=dict)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    lines: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Section:
    """One part of the suite, run with ``--only NAME``."""

    name: str
    run: Callable[[Bench], Figures]
    doc: str = ''


class Bench:
    """The environment of a run with its two agents (one talking to Glance
    directly, one through counting relays), a raw oslo.messaging no-op
    server and a python-glanceclient client with the caller's token."""

    def __init__(self, env: environment.Environment, args) -> None:
        self.env = env
        self.args = args
        self.rounds: int = args.rounds
        self.direct = env.agent(DIRECT, [env.glance_url])
        self.relays = [Relay.to(url) for url in env.deployment.glance_urls]
        self.relayed = env.agent(RELAYED, [r.url for r in self.relays])
        self.noop_topic = env.topic + '-noop'
        self.noop = start_noop_server(self.noop_topic, env.glance_url)
        self.client = measure.glance_client(env)

    def need(self, *names: str) -> None:
        """Upload the images a section needs (those not there yet), and
        let the machine settle.

        Images are uploaded per section and deleted after it: gigabytes of
        image files written and then left cold made every later case noisy
        (their writeback, and page cache the machine reclaims in the
        background): curl into tmpfs measured 0.68-1.9 GB/s with them,
        1.83-1.90 without.
        """
        missing = [n for n in names if n not in self.env.images]
        if not missing:
            return
        say('uploading %s' % ', '.join(missing))
        for name in missing:
            self.env.upload(name, SIZES.get(name, 32 * MiB))
        os.sync()
        environment.settle()

    def drop(self, *names: str) -> None:
        self.env.delete(*[n for n in names if n in self.env.images])

    def close(self) -> None:
        self.noop.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.noop.wait(30)
        for relay in self.relays:
            relay.close()


def start_noop_server(topic: str, glance_url: str) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'tools.bench.noop_server',
            '--url',
            environment.RABBIT_URL,
            '--topic',
            topic,
            '--glance-url',
            glance_url,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if server.stdout.readline().strip() != 'listening':
        raise RuntimeError('the no-op RPC server did not start')
    return server


def interleaved(
    cases: dict[str, Callable[[], float]],
    rounds: int,
    label: str,
    size: int = GiB,
    warmup: bool = True,
) -> dict[str, list[float]]:
    """Seconds of each case, interleaved: each round runs every case once,
    in an order rotated from round to round.

    With ``warmup``, one round more than asked, the first not counted: on
    the machines this was written on, the first round ran every case at
    0.5-0.8x the rate of the next ones, whatever the earlier warm-up
    downloads did.
    """
    names = list(cases)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for name in names if warmup else ():
        cases[name]()
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            environment.settle()
            seconds[name].append(cases[name]())
        say(
            '%s round %d/%d: %s'
            % (
                label,
                round_ + 1,
                rounds,
                ', '.join(
                    '%s %.0f MB/s' % (n, size / 1e6 / seconds[n][-1])
                    for n in names
                ),
            )
        )
    return seconds
