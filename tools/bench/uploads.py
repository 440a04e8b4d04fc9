"""Section: a 1 GiB upload from a local file into Glance through the agent
against python-glanceclient and curl, from tmpfs and from disk."""

from __future__ import annotations

import contextlib
import os
import subprocess

from tools.bench import harness
from tools.bench import measure
from tools.bench import stats
from tools.bench.harness import DIRECT
from tools.bench.harness import GiB
from tools.bench.harness import MiB

_BLOCK = 16 * MiB
META = {'disk_format': 'raw', 'container_format': 'bare'}
LABELS = {
    'agent_create': 'agent create with a path',
    'agent_update': 'agent update of a queued image',
    'glanceclient': 'glanceclient images.upload (Cinder)',
    'curl': 'curl -T (Content-Length)',
    'curl_chunked': 'curl -T, chunked',
}


def make_source(path: str, size: int) -> None:
    """``size`` bytes of a random 16 MiB block repeated, on stable
    storage."""
    block = os.urandom(_BLOCK)
    with open(path, 'wb') as f:
        for start in range(0, size, _BLOCK):
            f.write(block[: min(_BLOCK, size - start)])
        f.flush()
        os.fsync(f.fileno())


def drop_cache(path: str) -> None:
    """The file's pages out of the page cache: read from the disk again."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class Uploads:
    """Every way to upload ``source``; each case deletes what it made."""

    def __init__(self, bench: harness.Bench, source: str, cold: bool):
        self.bench = bench
        self.env = bench.env
        self.source = source
        self.cold = cold

    def _queued(self, name: str) -> str:
        return self.env.service.create(
            self.env.context, dict(META, name='bench-upload-%s' % name)
        )['id']

    def _delete(self, image_id: str | None) -> None:
        if image_id is not None:
            with contextlib.suppress(Exception):
                self.env.service.delete(self.env.context, image_id)

    def _timed(self, name: str, func) -> float:
        """Seconds of ``func(image_id)`` on a fresh queued image (None for
        the agent's create, which makes its own)."""
        image_id = None if name == 'agent_create' else self._queued(name)
        made: list[str] = []
        if self.cold:
            drop_cache(self.source)
        try:
            return measure.timed(lambda: made.append(func(image_id)))
        finally:
            self._delete(image_id or (made[0] if made else None))

    def agent_create(self) -> float:
        env = self.env

        def run(_) -> str:
            return env.api.create(
                env.context,
                dict(META, name='bench-upload-agent-create'),
                path=self.source,
                host=DIRECT,
            )['id']

        return self._timed('agent_create', run)

    def agent_update(self) -> float:
        env = self.env

        def run(image_id) -> str:
            env.api.update(
                env.context, image_id, {}, path=self.source, host=DIRECT
            )
            return image_id

        return self._timed('agent_update', run)

    def glanceclient(self) -> float:
        def run(image_id) -> str:
            with open(self.source, 'rb') as f:
                self.bench.client.images.upload(image_id, f)
            return image_id

        return self._timed('glanceclient', run)

    def _curl(self, name: str, *headers: str) -> float:
        env = self.env
        options = [
            option
            for header in (
                'X-Auth-Token: ' + env.token,
                'Content-Type: application/octet-stream',
                *headers,
            )
            for option in ('-H', header)
        ]

        def run(image_id) -> str:
            subprocess.run(
                ['curl', '-sf', '-o', '/dev/null', *options, '-T']
                + [
                    self.source,
                    '%s/v2/images/%s/file' % (env.glance_url, image_id),
                ],
                check=True,
            )
            return image_id

        return self._timed(name, run)

    def curl(self) -> float:
        return self._curl('curl')

    def curl_chunked(self) -> float:
        # The way the agent and glanceclient send (a file-like body):
        # Glance's server may take one way faster than the other (the test
        # deployment's gunicorn took chunked bodies at 1.5-2x the rate of
        # Content-Length ones).
        return self._curl('curl_chunked', 'Transfer-Encoding: chunked')


def upload(bench: harness.Bench) -> harness.Figures:
    """1 GiB from a file in tmpfs and from one on disk (its pages dropped
    before every case: read from the disk) into Glance: through the agent
    (``create`` with a path, ``update`` of a queued image), by
    python-glanceclient ``images.upload`` of the same file and by
    ``curl -T`` with a token."""
    cases = {}
    sources = []
    for where, directory in (
        ('tmpfs', bench.env.tmpfs),
        ('disk', bench.env.disk),
    ):
        source = os.path.join(directory, 'upload-source')
        make_source(source, GiB)
        sources.append(source)
        ways = Uploads(bench, source, cold=where == 'disk')
        for name in LABELS:
            cases['%s_%s' % (where, name)] = getattr(ways, name)
    try:
        # No warm-up round: ten 1 GiB uploads into Glance take minutes, and
        # every case starts from a new image anyway.
        seconds = harness.interleaved(
            cases, bench.rounds, 'upload', warmup=False
        )
    finally:
        for source in sources:
            os.remove(source)
    rates = {k: stats.rates_mb_s(GiB, v) for k, v in seconds.items()}
    return figures(rates)


def figures(rates: dict[str, list[float]]) -> harness.Figures:
    ratio = stats.paired_ratios
    # The network limit: curl, the faster of its two ways each round.
    limit = {
        where: stats.paired(
            max, rates['%s_curl' % where], rates['%s_curl_chunked' % where]
        )
        for where in ('tmpfs', 'disk')
    }
    fig = harness.Figures(
        series={
            'upload_vs_curl': stats.paired(
                min,
                ratio(rates['tmpfs_agent_update'], limit['tmpfs']),
                ratio(rates['disk_agent_update'], limit['disk']),
            ),
            'tmpfs_upload_vs_curl': ratio(
                rates['tmpfs_agent_update'], limit['tmpfs']
            ),
            'disk_upload_vs_curl': ratio(
                rates['disk_agent_update'], limit['disk']
            ),
            'upload_create_vs_curl': ratio(
                rates['tmpfs_agent_create'], limit['tmpfs']
            ),
            'upload_vs_glanceclient': ratio(
                rates['tmpfs_agent_update'], rates['tmpfs_glanceclient']
            ),
        },
        baselines={
            'upload_tmpfs_curl': limit['tmpfs'],
            'upload_disk_curl': limit['disk'],
            'upload_tmpfs_glanceclient': rates['tmpfs_glanceclient'],
        },
        judged_by={
            'upload_vs_curl': ['upload_tmpfs_curl', 'upload_disk_curl'],
            'tmpfs_upload_vs_curl': ['upload_tmpfs_curl'],
            'disk_upload_vs_curl': ['upload_disk_curl'],
            'upload_create_vs_curl': ['upload_tmpfs_curl'],
            'upload_vs_glanceclient': ['upload_tmpfs_glanceclient'],
        },
        notes={
            'upload_vs_curl': 'curl (faster way) %.0f MB/s from tmpfs, '
            '%.0f from disk'
            % (stats.median(limit['tmpfs']), stats.median(limit['disk']))
        },
        raw={
            'upload_throughput': {
                k: stats.spread(v) for k, v in rates.items()
            },
            'upload_mb_s_per_round': rates,
        },
        lines=[
            'Upload of 1 GiB into Glance, MB/s (median [min-max] of %d '
            'rounds; disk: read from the disk)' % len(rates['tmpfs_curl'])
        ],
    )
    for where in ('tmpfs', 'disk'):
        for name, label in LABELS.items():
            s = stats.spread(rates['%s_%s' % (where, name)])
            fig.lines.append(
                '  %-6s %-35s %6.0f  [%4.0f-%4.0f]'
                % (where, label, s['median'], s['min'], s['max'])
            )
    return fig


SECTIONS = [harness.Section('upload', upload)]
