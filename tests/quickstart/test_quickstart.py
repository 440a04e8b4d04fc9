"""``tools/quickstart.sh``, the README's first command, end to end.

Run twice in a state dir of its own (not the default one a developer may
be using, nor the functional tests' private deployments): the first run
starts everything and downloads a verified disk image, the second reuses
the deployment, the agent and the image and still ends with a verified
download. ``stop`` then leaves no process of that state dir behind.
What the script claims is checked independently here: the file's sha512
against Glance's own answer, the file's partition table and filesystem,
and the process table with ``ps``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import urllib.request

import pytest

from tools.testenv import Deployment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
SCRIPT = os.path.join(REPO, 'tools', 'quickstart.sh')
STATE_DIR = '/tmp/image-agent-quickstart-tests'
# A cold machine builds two venvs (about two minutes); a warm one needs
# seconds.
RUN_TIMEOUT = 900
OK_LINE = re.compile(
    r'^quickstart: OK (?P<path>/\S+) sha512=(?P<sha512>[0-9a-f]{128}) '
    r'matches Glance os_hash_value of image (?P<image_id>[0-9a-f-]{36})$'
)
AGENT_PID = re.compile(r'^  image-agent    pid (\d+),', re.MULTILINE)


def quickstart(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, IMAGE_AGENT_QUICKSTART_DIR=STATE_DIR)
    return subprocess.run(
        [SCRIPT, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess) -> re.Match:
    """The OK line of a successful start; fails with the output otherwise."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    last = result.stdout.rstrip('\n').splitlines()[-1]
    match = OK_LINE.match(last)
    assert match, 'unexpected last line %r\n%s' % (last, output[-6000:])
    return match


def sha512(path: str) -> str:
    digest = hashlib.sha512()
    with open(path, 'rb') as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def glance_image(image_id: str) -> dict:
    """The image as Glance itself shows it to the demo user."""
    dep = Deployment(os.path.join(STATE_DIR, 'testenv'))
    token = dep.authenticate('demo')['token']
    request = urllib.request.Request(
        '%s/v2/images/%s' % (dep.glance_urls[0], image_id),
        headers={'X-Auth-Token': token},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def assert_disk_image(path: str) -> None:
    """An MBR with a Linux partition holding an ext2 filesystem."""
    with open(path, 'rb') as f:
        record = f.read(512)
        assert record[510:512] == b'\x55\xaa'
        assert record[446 + 4] == 0x83
        (start,) = struct.unpack_from('<I', record, 446 + 8)
        f.seek(start * 512 + 1024 + 56)
        assert struct.unpack('<H', f.read(2)) == (0xEF53,)
    described = subprocess.run(
        ['file', path], capture_output=True, text=True, check=False
    ).stdout
    if described:  # file(1) is optional here
        assert 'DOS/MBR boot sector' in described, described


def processes_of_state_dir(groups: tuple[str, ...] = ()) -> list[str]:
    """Lines of ``ps`` naming the state dir or its servers' tags, or in
    one of the process ``groups`` (the agent's worker has a bare title).

    Zombies do not count: they run nothing, and the init process reaps
    the ones whose parent (an earlier quickstart run) is gone.
    """
    tags = [STATE_DIR, Deployment(os.path.join(STATE_DIR, 'testenv')).owner]
    ps = subprocess.run(
        ['ps', '-eo', 'pid=,pgid=,stat=,args='],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        line
        for line in ps.splitlines()
        if not line.split()[2].startswith('Z')
        and (any(tag in line for tag in tags) or line.split()[1] in groups)
    ]


@pytest.fixture(scope='module')
def runs():
    """The two runs (made lazily, in order); everything stopped after."""
    cleaned = quickstart('clean')
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    done: dict[str, subprocess.CompletedProcess] = {}

    def run(name: str) -> subprocess.CompletedProcess:
        if name not in done:
            done[name] = quickstart()
        return done[name]

    yield run
    quickstart('stop')


def test_first_run_downloads_a_verified_disk_image(runs):
    result = runs('first')
    ok = succeeded(result)
    path = ok['path']
    assert path.startswith(STATE_DIR + '/')
    assert sha512(path) == ok['sha512']
    image = glance_image(ok['image_id'])
    assert image['os_hash_algo'] == 'sha512'
    assert image['os_hash_value'] == ok['sha512']
    assert image['size'] == os.path.getsize(path)
    assert image['quickstart_runs'] == '1'
    assert_disk_image(path)
    assert 'image: created %s' % ok['image_id'] in result.stdout
    assert 'image.download.end' in result.stdout
    # A qcow2 made by the agent from the disk image, downloaded as raw.
    assert re.search(
        r'qcow2 image \S+ downloaded as raw: disk_format_detected=qcow2, '
        r'converted_from=qcow2, virtual_size=\d+, the same bytes as',
        result.stdout,
    ), result.stdout


def test_second_run_reuses_everything_and_downloads_again(runs):
    first = succeeded(runs('first'))
    result = runs('second')
    ok = succeeded(result)
    assert ok['image_id'] == first['image_id']
    assert ok['sha512'] == first['sha512'] == sha512(ok['path'])
    for reused in (
        'Keystone + Glance: reusing the running deployment',
        'agent: reusing image-agent pid',
        'image: reusing %s' % ok['image_id'],
    ):
        assert reused in result.stdout, result.stdout
    pids = AGENT_PID.findall(runs('first').stdout + result.stdout)
    assert len(pids) == 2 and pids[0] == pids[1]
    assert 'image.download.end' in result.stdout
    assert 'download again: reused=True' in result.stdout
    assert glance_image(ok['image_id'])['quickstart_runs'] == '2'


def test_stop_leaves_nothing_running(runs):
    agent_group = AGENT_PID.findall(runs('second').stdout)[0]
    running = processes_of_state_dir((agent_group,))
    assert any('image-agent' in line for line in running), running
    assert any('gunicorn' in line for line in running), running
    result = quickstart('stop')
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith('quickstart: OK stopped')
    assert processes_of_state_dir((agent_group,)) == []
    status = quickstart('status')
    assert status.returncode == 1
    assert 'image-agent   not running' in status.stdout
