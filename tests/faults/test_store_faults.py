"""Bytes altered in Glance's store: verification refuses them.

The image's file in the ``fast`` file store is changed behind Glance's
back (a flipped byte, zeroed, cut short, grown). A download through the
agent fails with a typed error (``ImageChecksumMismatch`` when the size is
unchanged), nothing is written at a new destination and an existing file
it was to replace stays as it was. Bytes appended after the image's end
are never served (Glance stops at the recorded size): that download is the
image itself, verified.
"""

import io
import os

import pytest

from image_agent import exception
from tests.faults import helpers
from tests.faults.helpers import MiB

pytestmark = pytest.mark.slow

SIZE = 2 * MiB
PRECIOUS = b'the previous disk, to be kept' * 100


def _flip(f, data):
    f.seek(len(data) // 2)
    f.write(bytes([data[len(data) // 2] ^ 0x01]))


def _zero(f, data):
    f.write(b'\0' * len(data))


def _truncate(f, data):
    f.truncate(len(data) - 4096)


def _grow(f, data):
    f.seek(0, os.SEEK_END)
    f.write(b'extra bytes')


ALTERATIONS = {
    'one-bit-flipped': (_flip, exception.ImageChecksumMismatch),
    'zeroed': (_zero, exception.ImageChecksumMismatch),
    'cut-short': (_truncate, exception.ImageDownloadFailed),
    'grown': (_grow, None),
}


@pytest.mark.scenario('5. Stored bytes altered')
@pytest.mark.parametrize('alteration', sorted(ALTERATIONS))
def test_altered_bytes_are_refused(
    row,
    alteration,
    deployment,
    agent_factory,
    api,
    images,
    demo_context,
):
    agent = _agent(agent_factory)
    alter, expected = ALTERATIONS[alteration]
    data = os.urandom(SIZE)
    image = images(demo_context, data=io.BytesIO(data))
    stored = os.path.join(deployment.store_dirs['fast'], image['id'])
    with open(stored, 'r+b') as f:
        alter(f, data)
    row.add(faults=1)

    fresh = os.path.join(agent.root, 'fresh-%s' % image['id'][:8])
    existing = os.path.join(agent.root, 'existing-%s' % image['id'][:8])
    with open(existing, 'wb') as f:
        f.write(PRECIOUS)
    errors = []
    for path, overwrite in ((fresh, False), (existing, True)):
        try:
            api.download(
                demo_context,
                image['id'],
                path,
                host=agent.host,
                overwrite=overwrite,
            )
        except Exception as e:  # noqa: BLE001 - judged below
            errors.append(e)
            if helpers.is_typed(e):
                row.error(e)
            else:
                row.add(failures=1)
        else:
            errors.append(None)
            if expected is not None:
                row.add(failures=1)
        row.add(calls=1)
    assert helpers.temp_files(agent.root) == []
    if expected is None:
        # Both downloads are the image itself.
        good = [helpers.file_sha512(fresh) == helpers.sha512(data)]
        good += [helpers.file_sha512(existing) == helpers.sha512(data)]
        row.note('%s: not served, both downloads verified' % alteration)
        assert errors == [None, None]
        assert all(good)
        os.unlink(fresh)
        os.unlink(existing)
        return
    if os.path.lexists(fresh):
        row.add(bytes_lost=os.path.getsize(fresh))
    with open(existing, 'rb') as f:
        kept = f.read() == PRECIOUS
    if not kept:
        row.add(bytes_lost=len(PRECIOUS))
    row.note(
        '%s: %s' % (alteration, helpers.describe(errors[0]))
        if errors[0]
        else '%s: NOT DETECTED' % alteration
    )
    for error in errors:
        assert isinstance(error, expected), error
    assert not os.path.lexists(fresh)
    assert kept
    os.unlink(existing)


_AGENT = []


def _agent(agent_factory):
    """One agent for every alteration (started at the first)."""
    if not _AGENT:
        _AGENT.append(agent_factory())
    return _AGENT[0]
