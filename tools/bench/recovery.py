"""Sections: a download whose Glance is killed half way, and two identical
downloads at once (both through the relays that count Glance's bytes)."""

from __future__ import annotations

import os
import threading
import time

from tools.bench import harness
from tools.bench import measure
from tools.bench.harness import RELAYED
from tools.bench.harness import MiB
from tools.bench.harness import say

KiB = 1024
# A caller joining a download already running checks with Glance that it
# may read the image, with a one-byte Range request (by design): the
# fetched bytes are the image and that byte. Slack per joiner for it.
JOIN_CHECK_KIB = 4


def _background(func) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        started = time.perf_counter()
        try:
            outcome['result'] = func()
        except Exception as e:
            outcome['error'] = e
        outcome['seconds'] = time.perf_counter() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def resume(bench: harness.Bench) -> harness.Figures:
    """The 1 GiB download through the relays, then again with the serving
    Glance killed (SIGKILL) half way; bytes the relays passed on."""
    bench.need('1g')
    env, relays = bench.env, bench.relays
    image = env.images['1g']
    path = os.path.join(env.tmpfs, 'resume')

    def download() -> dict:
        return env.api.download(env.context, image['id'], path, host=RELAYED)

    unkilled = measure.timed(download)
    os.remove(path)
    before = [r.file_bytes for r in relays]
    requests_before = sum(len(r.file_requests) for r in relays)
    thread, outcome = _background(download)
    while sum(r.file_bytes for r in relays) - sum(before) < image['size'] / 2:
        time.sleep(0.002)
    sent = [r.file_bytes - b for r, b in zip(relays, before, strict=True)]
    serving = sent.index(max(sent))
    env.deployment.kill_glance(serving)
    thread.join()
    fetched = sum(r.file_bytes for r in relays) - sum(before)
    requests = sum(len(r.file_requests) for r in relays) - requests_before
    say('restarting the killed Glance')
    env.deployment.start_glance(serving)
    result = outcome.get('result') or {}
    verified = (
        'error' not in outcome
        and result.get('os_hash_value') == image['os_hash_value']
        and os.path.getsize(path) == image['size']
    )
    os.remove(path)
    if 'error' in outcome:
        say('the killed download failed: %r' % outcome['error'])
    killed = {
        'refetch_mib': (fetched - image['size']) / MiB,
        'fetched_mib': fetched / MiB,
        'seconds': outcome['seconds'],
        'seconds_unkilled': unkilled,
        'verified': verified,
        # 2: the first request, and the resume on the other server.
        'requests': requests,
        'error': repr(outcome.get('error')) if 'error' in outcome else None,
    }
    return harness.Figures(
        values={'resume_refetch_mib': killed['refetch_mib']},
        raw={'resume': killed},
        lines=[
            'Glance killed half way: %.2f MiB fetched again, %.2f s in all '
            '(%.2f s without a kill), %d requests, verified: %s'
            % (
                killed['refetch_mib'],
                killed['seconds'],
                killed['seconds_unkilled'],
                killed['requests'],
                killed['verified'],
            )
        ],
    )


def dedupe(bench: harness.Bench) -> harness.Figures:
    """Two identical downloads at once: bytes the relays passed on."""
    bench.need('512m', 'warm')
    env, relays = bench.env, bench.relays
    image = env.images['512m']
    path = os.path.join(env.tmpfs, 'dedupe')
    # The relayed agent warm (its first call pays for its connections).
    measure.agent_download(
        env, RELAYED, env.images['warm'], os.path.join(env.tmpfs, 'w')
    )
    before = sum(r.file_bytes for r in relays)
    calls = [
        _background(
            lambda: env.api.download(
                env.context, image['id'], path, host=RELAYED
            )
        )
        for _ in range(2)
    ]
    for thread, _ in calls:
        thread.join()
    errors = [o['error'] for _, o in calls if 'error' in o]
    fetched = sum(r.file_bytes for r in relays) - before
    os.remove(path)
    joiners = len(calls) - 1
    shared = {
        'fetched_mib': fetched / MiB,
        'size_mib': image['size'] / MiB,
        'ratio': fetched / image['size'],
        'extra_kib': (fetched - image['size']) / KiB,
        'joiners': joiners,
        'errors': [repr(e) for e in errors],
        'reused': [o.get('result', {}).get('reused') for _, o in calls],
    }
    return harness.Figures(
        values={
            'dedupe_fetch_ratio': shared['ratio'],
            # Bytes fetched beyond the image per joiner, in KiB.
            'dedupe_extra_kib_per_joiner': shared['extra_kib'] / joiners,
        },
        raw={'dedupe': shared},
        notes={
            'dedupe_extra_kib_per_joiner': 'fetched %.0f bytes for a '
            '%.0f-byte image (ratio %.6f)'
            % (fetched, image['size'], shared['ratio'])
        },
        lines=[
            '2 identical downloads at once: %.3f MiB fetched for a %.0f MiB '
            'image' % (shared['fetched_mib'], shared['size_mib'])
        ],
    )


SECTIONS = [
    harness.Section('resume', resume),
    harness.Section('dedupe', dedupe),
]
