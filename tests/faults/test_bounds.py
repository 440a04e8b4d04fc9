"""What a caller or a server can make the agent consume is bounded.

Each test plays the one who tries to make the agent use more than it
should, against real agents, real Glance and small tmpfs filesystems this
suite mounts:

- disk: two downloads that fit only one at a time (the second is refused
  before its first byte), a cache fill and the copy made from it (both
  must fit, or the image is not cached), a server that sends more bytes
  than the image's size (cut at the size, nothing left anywhere);
- RPC threads: a flood of downloads, of which 32 wait for a slot, does
  not keep ``ping`` from answering (the rest are refused with AgentBusy);
- time: a server that trickles a few bytes and breaks off is given up
  after ``[glance] num_retries``; an agent stopped while a transfer is
  stuck where a cancel cannot reach it ends within a bound.

Glance is reached through ``tools.testenv.relay.Relay``, which misbehaves
on image data answers when asked to.
"""

import contextlib
import io
import os
import subprocess
import time

import pytest

from image_agent import exception
from image_agent.image import fetch
from tests.faults import helpers
from tests.faults.helpers import MiB
from tools.testenv.relay import Relay

pytestmark = pytest.mark.slow

MARGIN_MIB = 1


@pytest.fixture
def bounded(deployment, agent_factory):
    """make(fs_mib=None, cache=False, options=None, **relay) -> (agent,
    relay, root): an agent whose Glance is a relay; its download root a
    tmpfs of ``fs_mib`` MiB when given (with the cache inside it when
    ``cache``). Everything is stopped, closed and unmounted at the end."""
    made = []

    def make(fs_mib=None, cache=False, options=None, **relay_options):
        relay = Relay.to(deployment.glance_urls[0], **relay_options)
        fs = helpers.mount_tmpfs(fs_mib) if fs_mib else None
        made.append((None, relay, fs))
        agent_options = {'agent': {}}
        if fs:
            agent_options['agent'].update(
                download_roots=fs, free_space_margin_mb=str(MARGIN_MIB)
            )
            if cache:
                agent_options['agent']['cache_dir'] = os.path.join(fs, 'cache')
        for section, values in (options or {}).items():
            agent_options.setdefault(section, {}).update(values)
        agent = agent_factory(glance_urls=[relay.url], options=agent_options)
        made[-1] = (agent, relay, fs)
        return agent, relay, fs or agent.root

    yield make
    for agent, relay, fs in made:
        if agent is not None:
            agent.stop()
        relay.close()
        if fs:
            helpers.unmount(fs)


def _used(fs: str) -> int:
    st = os.statvfs(fs)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _download(api, ctxt, agent, image, path):
    return helpers.Background(
        lambda: api.download(ctxt, image['id'], path, host=agent.host)
    )


# -- disk -----------------------------------------------------------------


@pytest.mark.scenario('30. Two downloads, room for one')
def test_two_downloads_that_fit_only_one_at_a_time(
    row,
    bounded,
    api,
    images,
    demo_context,
):
    data = os.urandom(10 * MiB)
    image = images(demo_context, data=io.BytesIO(data))
    # 16 MiB: 10 + 10 do not fit, 10 does; slow enough to overlap.
    agent, relay, fs = bounded(fs_mib=16, rate=4 * MiB)
    calls = [
        _download(api, demo_context, agent, image, os.path.join(fs, name))
        for name in ('a', 'b')
    ]
    for call in calls:
        call.join(60)
    row.add(calls=2, faults=1)
    errors = [c.error for c in calls if c.error is not None]
    done = [c.result for c in calls if c.error is None]
    for error in errors:
        if isinstance(error, exception.InsufficientSpace):
            row.error(error)
        else:
            row.add(failures=1)
    row.note(
        'two 10 MiB downloads on 16 MiB: %d done, errors: %s; %d bytes '
        'fetched from Glance (one image: %d)'
        % (
            len(done),
            ', '.join(helpers.describe(e) for e in errors) or 'none',
            relay.file_bytes,
            len(data),
        )
    )
    assert len(done) == 1 and len(errors) == 1, errors
    # Refused before its first byte: not a disk that filled up halfway.
    assert isinstance(errors[0], exception.InsufficientSpace)
    assert not isinstance(errors[0], exception.OutOfSpace), errors[0]
    assert relay.file_bytes == len(data)
    assert helpers.file_sha512(done[0]['path']) == helpers.sha512(data)
    assert helpers.temp_files(fs) == []


@pytest.mark.scenario('31. Cache fill and copy')
def test_a_cache_fill_and_its_copy_must_both_fit(
    row,
    bounded,
    api,
    images,
    demo_context,
):
    data = os.urandom(14 * MiB)
    image = images(demo_context, data=io.BytesIO(data))
    # 24 MiB: the image fits once, not twice (cache entry + copy).
    agent, relay, fs = bounded(fs_mib=24, cache=True)
    path = os.path.join(fs, 'disk')
    call = _download(api, demo_context, agent, image, path)
    call.join(60)
    row.add(calls=1, faults=1)
    cached = os.listdir(os.path.join(fs, 'cache'))
    if call.error is not None:
        row.add(failures=1)
    row.note(
        '14 MiB image, cache on the same 24 MiB: %s; cache entries: %d; '
        '%d bytes fetched'
        % (
            helpers.describe(call.error) if call.error else 'downloaded',
            len(cached),
            relay.file_bytes,
        )
    )
    assert call.error is None, call.error
    assert helpers.file_sha512(path) == helpers.sha512(data)
    # Not cached: the fill and the copy would not both have fitted.
    assert cached == []
    assert relay.file_bytes == len(data)
    assert helpers.temp_files(fs) == []


@pytest.mark.scenario('32. More bytes than the size')
def test_a_server_sending_more_than_the_size_is_cut(
    row,
    bounded,
    api,
    images,
    demo_context,
):
    data = os.urandom(4 * MiB)
    image = images(demo_context, data=io.BytesIO(data))
    # After the image, a stream that goes on far past the filesystem.
    agent, relay, fs = bounded(
        fs_mib=48, cache=True, chunked=True, extra=1024 * MiB
    )
    before = _used(fs)
    path = os.path.join(fs, 'disk')
    call = _download(api, demo_context, agent, image, path)
    call.join(60)
    row.add(calls=1, faults=1)
    error = call.error
    if isinstance(error, exception.ImageDownloadFailed):
        row.error(error)
    else:
        row.add(failures=1)
    left = helpers.temp_files(fs) + os.listdir(os.path.join(fs, 'cache'))
    row.note(
        '4 MiB image, then 1 GiB more: %s; %d bytes relayed; left: %s'
        % (
            helpers.describe(error) if error else 'no error',
            relay.file_bytes,
            left or 'nothing',
        )
    )
    assert isinstance(error, exception.ImageDownloadFailed), error
    assert 'was cut there' in str(error)
    assert not os.path.lexists(path)
    assert left == []
    assert _used(fs) == before
    # Cut at the size: what was relayed past it sat in buffers only.
    assert relay.file_bytes < len(data) + 32 * MiB


# -- RPC threads ----------------------------------------------------------

FLOOD = 80
# The defaults: 4 download slots; 4 + 4 (upload slots) + 32 transfer calls
# admitted at once, so 36 downloads wait when no upload runs.
SLOTS = 4
ADMITTED = 4 + 4 + 32


@pytest.mark.scenario('33. Ping under a download flood')
@pytest.mark.test_timeout(300)
def test_ping_answers_while_downloads_wait_for_slots(
    row,
    bounded,
    api,
    images,
    demo_context,
):
    image = images(demo_context, data=io.BytesIO(os.urandom(4 * MiB)))
    # Default limits (4 slots, 32 waiting, 64 RPC threads); downloads at
    # 64 KiB/s, so the first four run for a minute.
    agent, _relay, root = bounded(rate=64 * 1024)
    calls = [
        _download(
            api, demo_context, agent, image, os.path.join(root, 'd%d' % i)
        )
        for i in range(FLOOD)
    ]
    row.add(calls=FLOOD, faults=1)
    refused = FLOOD - ADMITTED
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(c.finished_at is not None for c in calls) >= refused:
            break
        time.sleep(0.1)
    # Pings until the four admitted first are transferring, then five more.
    pings = []
    deadline = time.monotonic() + 60
    running = 0
    while time.monotonic() < deadline and len(pings) < 200:
        ping = helpers.Background(
            lambda: api.ping(demo_context, host=agent.host)
        )
        ping.join(30)
        pings.append(ping)
        running = len(ping.result['transfers']) if ping.result else 0
        if running == SLOTS:
            break
        time.sleep(0.2)
    for _ in range(5):
        ping = helpers.Background(
            lambda: api.ping(demo_context, host=agent.host)
        )
        ping.join(30)
        pings.append(ping)
    row.add(calls=len(pings))
    # Still in the agent while the pings were answered, not running.
    waiting = sum(c.finished_at is None for c in calls) - running
    slowest = max(p.duration for p in pings)
    busy = [c for c in calls if _is_busy(c.error)]
    for call in busy:
        row.error(call.error)
    row.note(
        '%d downloads at once: %d refused with AgentBusy, %d running, '
        '%d waiting for a slot; slowest of %d pings %.2f s'
        % (
            FLOOD,
            len(busy),
            running,
            waiting,
            len(pings),
            slowest,
        )
    )
    assert all(p.error is None for p in pings), (
        [p.error for p in pings],
        agent.tail(),
    )
    assert slowest < 5
    assert len(busy) == refused, (
        [helpers.describe(c.error) for c in calls if c.error][:5],
        agent.tail(),
    )
    assert running == SLOTS
    assert waiting == ADMITTED - SLOTS
    # The rest are cancelled when the agent stops (by the fixture).
    agent.stop()
    for call in calls:
        call.join(60)


def _is_busy(error) -> bool:
    # By name: the class is what this scenario checks for.
    return type(error).__name__.removesuffix('_Remote') == 'AgentBusy'


# -- time -----------------------------------------------------------------


@pytest.mark.scenario('34. Trickling server')
def test_a_trickling_server_is_given_up(
    row,
    bounded,
    api,
    images,
    demo_context,
):
    data = os.urandom(16 * MiB)
    image = images(demo_context, data=io.BytesIO(data))
    # Every answer: the 64 KiB asked again on a resume, 4 KiB new, cut.
    agent, relay, root = bounded(cut_after=fetch.OVERLAP + 4096)
    path = os.path.join(root, 'disk')
    call = _download(api, demo_context, agent, image, path)
    row.add(calls=1, faults=1)
    call.join(60)
    error = call.error
    if isinstance(error, exception.ImageDownloadFailed):
        row.error(error)
    else:
        row.add(failures=1)
    row.note(
        'a server sending 4 KiB per answer and breaking off: %s after '
        '%.1f s and %d requests'
        % (
            helpers.describe(error) if error else 'no error',
            call.duration,
            len(relay.file_requests),
        )
    )
    assert isinstance(error, exception.ImageDownloadFailed), error
    # [glance] num_retries = 1 (the agent fixture): two attempts.
    assert len(relay.file_requests) == 2
    assert not os.path.lexists(path)
    assert helpers.temp_files(root) == []


@pytest.mark.scenario('35. Stop with a stuck transfer')
def test_a_stop_with_a_stuck_transfer_ends_in_bounded_time(
    row,
    bounded,
    api,
    images,
    demo_context,
):
    image = images(demo_context, data=io.BytesIO(os.urandom(MiB)))
    # Glance never answers the data request: the transfer waits for
    # headers, where a cancel does not reach it.
    drain = 2
    agent, relay, root = bounded(
        stall=True, options={'agent': {'drain_timeout': str(drain)}}
    )
    call = _download(api, demo_context, agent, image, os.path.join(root, 'x'))
    helpers.wait_until(
        lambda: relay.file_requests, 30, 'the data request to be held'
    )
    row.add(calls=1, faults=1)
    started = time.monotonic()
    agent.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        agent.popen.wait(60)
    stopped = time.monotonic() - started
    exited = agent.popen.poll() is not None
    row.note(
        'SIGTERM with a transfer waiting for Glance\'s headers: agent gone '
        'after %.1f s (drain %d s, graceful_shutdown_timeout 30 s)'
        % (stopped, drain)
    )
    if not exited or stopped > drain + 10:
        row.add(failures=1)
    assert exited
    # drain + 5 s for the cancelled transfers, well below the 30 s of
    # graceful_shutdown_timeout that would otherwise end it.
    assert stopped < drain + 10
    call.join(60)
