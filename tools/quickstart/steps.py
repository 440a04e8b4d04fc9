"""What ``tools/quickstart.sh`` does, step by step, reusing what runs."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from tools.quickstart import agent
from tools.quickstart import config
from tools.quickstart import diskimage
from tools.quickstart import venv as venvmod
from tools.quickstart.client import Client
from tools.quickstart.client import as_admin
from tools.quickstart.client import caller_env
from tools.quickstart.client import write_openrc
from tools.quickstart.layout import IMAGE_NAME
from tools.quickstart.layout import Layout
from tools.testenv import Deployment
from tools.testenv.util import DeploymentError
from tools.testenv.util import lock_file

LOCK_TIMEOUT = 1500.0


def say(message: str) -> None:
    print('quickstart: %s' % message, flush=True)


@contextlib.contextmanager
def locked(layout: Layout):
    """One start/stop of a state dir at a time."""
    os.makedirs(layout.state_dir, exist_ok=True)
    with open(layout.lock, 'w') as lock:
        what = 'the quickstart in %s' % layout.state_dir
        lock_file(lock, LOCK_TIMEOUT, what)
        yield


def human(size: float) -> str:
    for unit in ('B', 'KiB', 'MiB'):
        if size < 1024:
            return '%.1f %s' % (size, unit) if unit != 'B' else '%d B' % size
        size /= 1024
    return '%.1f GiB' % size


# -- start ------------------------------------------------------------------


def testenv_env(layout: Layout) -> dict[str, str]:
    """What ``python3 -m tools.testenv env`` exports for our deployment."""
    proc = subprocess.run(
        [sys.executable, '-m', 'tools.testenv', '--state-dir',
         layout.testenv_dir, 'env'],
        cwd=layout.repo,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise DeploymentError(
            'python3 -m tools.testenv env: %s' % proc.stderr.strip()
        )
    env = {}
    for line in proc.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == 'export':
            key, _, value = words[1].partition('=')
            env[key] = value
    return env


def start_deployment(layout: Layout) -> Deployment:
    dep = Deployment(layout.testenv_dir)
    if os.path.exists(dep.state_file) and dep.is_healthy():
        say(
            'Keystone + Glance: reusing the running deployment (%s)'
            % layout.testenv_dir
        )
        return dep
    say(
        'Keystone + Glance: starting the test deployment in %s'
        % layout.testenv_dir
    )
    return dep.start()


def start_agent(
    layout: Layout, venv: str, client: Client, config_changed: bool
) -> int:
    """The pid of a running agent answering pings."""
    pid = agent.running_pid(layout)
    if pid and config_changed:
        say('agent: its configuration changed: restarting it')
        agent.stop(layout)
        pid = None
    if pid and client.json('ping', check=False) is None:
        say('agent: pid %d does not answer pings: restarting it' % pid)
        agent.stop(layout)
        pid = None
    if pid:
        say('agent: reusing image-agent pid %d' % pid)
        return pid
    pid = agent.start(layout, venv)
    say('agent: started image-agent pid %d' % pid)
    return pid


def find_or_create_image(layout: Layout, client: Client) -> tuple[dict, bool]:
    """(image, reused): the demo's image, uploaded through the agent."""
    images = client.json('detail', '--filter', 'name=' + IMAGE_NAME)
    for image in images:
        if image['status'] == 'active':
            say('image: reusing %s (%s)' % (image['id'], IMAGE_NAME))
            return image, True
    for image in images:  # left by an interrupted run
        say('image: deleting %s, left %s' % (image['id'], image['status']))
        client.json('delete', image['id'])
    try:
        description = diskimage.describe(layout.source_image)
    except (OSError, DeploymentError):  # none yet, or not one of ours
        description = diskimage.build(layout.source_image)
    say('disk image %s: %s' % (layout.source_image, description))
    say('image: uploading it to Glance through the agent')
    image = client.json(
        'create',
        '--name', IMAGE_NAME,
        '--disk-format', 'raw',
        '--container-format', 'bare',
        '--property', 'made_by=image-agent-quickstart',
        '--file', layout.source_image,
        echo=True,
    )  # fmt: skip
    say(
        'image: created %s, %s, %s'
        % (image['id'], image['status'], human(image['size']))
    )
    return image, False


def file_hash(path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def notifications_since(layout: Layout, offset: int) -> list[dict]:
    """The notifications the agent logged after ``offset`` (log driver)."""
    try:
        with open(layout.agent_log, 'rb') as f:
            f.seek(offset)
            text = f.read().decode('utf-8', 'replace')
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        if 'oslo.messaging.notification.' not in line:
            continue
        with contextlib.suppress(ValueError):
            found.append(json.loads(line[line.index('{') :]))
    return found


def verify_download(layout: Layout, client: Client, image_id: str) -> dict:
    """Glance's view of the image, once the local file matched it."""
    glance = client.json('show', image_id)
    algorithm = glance['os_hash_algo']
    local = file_hash(layout.downloaded_image, algorithm)
    if local != glance['os_hash_value']:
        raise DeploymentError(
            '%s of %s is %s but Glance recorded %s'
            % (algorithm, layout.downloaded_image, local,
               glance['os_hash_value'])
        )  # fmt: skip
    return glance


def convert_demo(layout: Layout, client: Client) -> None:
    """The disk image as a qcow2 image (the agent converts it on upload),
    downloaded converted back to raw: the same bytes as the disk image."""
    name = IMAGE_NAME + '-qcow2'
    found = client.json('detail', '--filter', 'name=' + name)
    image = next((i for i in found if i['status'] == 'active'), None)
    for stale in found:
        if stale is not image:
            client.json('delete', stale['id'])
    if image is None:
        say('image: uploading the disk image as qcow2 (the agent converts)')
        image = client.json(
            'create',
            '--name', name,
            '--disk-format', 'qcow2',
            '--container-format', 'bare',
            '--file', layout.source_image,
            '--convert-from', 'raw',
            echo=True,
        )  # fmt: skip
    result = client.json(
        'download', '--no-progress', '--overwrite', '--convert-to', 'raw',
        image['id'], layout.converted_image,
        echo=True,
    )  # fmt: skip
    same = file_hash(layout.converted_image, 'sha512') == file_hash(
        layout.source_image, 'sha512'
    )
    if not same:
        raise DeploymentError(
            '%s is not the disk image it was made from'
            % layout.converted_image
        )
    say(
        'qcow2 image %s downloaded as raw: disk_format_detected=%s, '
        'converted_from=%s, virtual_size=%s, the same bytes as %s'
        % (
            image['id'],
            result['disk_format_detected'],
            result['converted_from'],
            result['virtual_size'],
            os.path.basename(layout.source_image),
        )
    )


def run_demo(layout: Layout, client: Client, admin: Client) -> dict:
    """Upload (once), show, download, update and verify; what happened."""
    log_offset = os.path.getsize(layout.agent_log)
    image, reused = find_or_create_image(layout, client)
    image_id = image['id']
    client.show('show', image_id)
    # A fresh transfer on every run; then the same call again, which the
    # agent answers by verifying and keeping the file already there.
    with contextlib.suppress(FileNotFoundError):
        os.remove(layout.downloaded_image)
    client.show('download', image_id, layout.downloaded_image)
    again = client.json(
        'download', '--no-progress', image_id, layout.downloaded_image,
        echo=True,
    )  # fmt: skip
    say(
        'download again: reused=%s, the verified file is kept'
        % again['reused']
    )
    runs = int(image.get('properties', {}).get('quickstart_runs', 0)) + 1
    updated = client.json(
        'update', image_id, '--property', 'quickstart_runs=%d' % runs,
        echo=True,
    )  # fmt: skip
    say(
        'image: property quickstart_runs is now %s (updated_at %s)'
        % (updated['properties'].get('quickstart_runs'), updated['updated_at'])
    )
    # The agent has an image cache: pre-cache the image, list the cache
    # (as the admin user: these calls are for administrators).
    admin.show('precache', '--host', layout.host, image_id)
    admin.show('cache-list')
    convert_demo(layout, client)
    return {
        'image': verify_download(layout, client, image_id),
        'image_reused': reused,
        'notifications': notifications_since(layout, log_offset),
    }


def report(layout: Layout, env: dict, agent_pid: int, done: dict) -> None:
    image = done['image']
    lines = [
        'Keystone       %s (users demo, alt, admin)' % env['OS_AUTH_URL'],
        'Glance         %s' % env['IMAGE_AGENT_GLANCE_URLS'],
        '  state        %s' % layout.testenv_dir,
        'image-agent    pid %d, host %s, topic %s'
        % (agent_pid, layout.host, layout.topic),
        '  config       %s' % layout.config,
        '  log          %s' % layout.agent_log,
        'image          %s "%s" (%s), %s'
        % (
            image['id'],
            image['name'],
            'reused' if done['image_reused'] else 'uploaded by the agent',
            human(image['size']),
        ),
        'downloaded to  %s' % layout.downloaded_image,
    ]
    for note in done['notifications']:
        lines.append(
            'notification   %s %s'
            % (note['event_type'], json.dumps(note['payload']))
        )
    lines += [
        'try it         . %s; image-agent-client --host %s ping'
        % (layout.openrc, layout.host),
        'stop it        tools/quickstart.sh stop',
    ]
    for line in lines:
        print('  ' + line)


def start(layout: Layout) -> int:
    started = time.monotonic()
    layout.make_dirs()
    with locked(layout):
        # The two venvs of a first run build side by side.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            agent_venv = pool.submit(venvmod.ensure, layout.repo, say)
            start_deployment(layout)
            venv = agent_venv.result()
        env = testenv_env(layout)
        changed = config.write(layout, env)
        transport_url = config.agent_values(layout, env)['DEFAULT'][
            'transport_url'
        ]
        write_openrc(layout.openrc, env, transport_url, layout.topic, venv)
        client = Client(
            venv,
            caller_env(env, transport_url, layout.topic, venv),
            layout.host,
        )
        admin = Client(
            venv,
            as_admin(client.env, Deployment(layout.testenv_dir)),
            layout.host,
        )
        pid = start_agent(layout, venv, client, changed)
        client.show('ping')
        done = run_demo(layout, client, admin)
    image = done['image']
    say('done in %.0f s:' % (time.monotonic() - started))
    report(layout, env, pid, done)
    say(
        'OK %s %s=%s matches Glance os_hash_value of image %s'
        % (
            layout.downloaded_image,
            image['os_hash_algo'],
            image['os_hash_value'],
            image['id'],
        )
    )
    return 0


# -- stop, status, clean ------------------------------------------------------


def stop(layout: Layout) -> int:
    with locked(layout):
        groups = agent.stop(layout)
        say(
            'agent: stopped (process group %s)' % ', '.join(map(str, groups))
            if groups
            else 'agent: not running'
        )
        transport_url = os.environ.get(
            'IMAGE_AGENT_QUICKSTART_TRANSPORT_URL', config.TRANSPORT_URL
        )
        venv = venvmod.venv_path(layout.repo)
        if agent.delete_queues(layout, venv, transport_url):
            say('agent: removed its queues from the broker')
        dep = Deployment(layout.testenv_dir)
        dep.stop()
        say('Keystone + Glance: stopped')
        left = agent.leftovers(layout, dep.owner, groups)
    if left:
        say('ERROR: still running:\n  ' + '\n  '.join(left))
        return 1
    say('OK stopped: no process of %s is left' % layout.state_dir)
    return 0


def status(layout: Layout) -> int:
    pid = agent.running_pid(layout)
    print('image-agent   %s' % ('pid %d' % pid if pid else 'not running'))
    health = Deployment(layout.testenv_dir).health()
    for name, problem in health.items():
        print('%-13s %s' % (name, problem or 'ok'))
    healthy = bool(health) and not any(health.values())
    return 0 if pid and healthy else 1


def clean(layout: Layout) -> int:
    """Stop, drop the deployment's databases, remove the state dir."""
    if stop(layout) != 0:
        return 1
    Deployment(layout.testenv_dir).destroy()
    # Only what the quickstart made: the state dir may be anyone's path.
    for name in ('logs', 'source', 'downloads'):
        shutil.rmtree(os.path.join(layout.state_dir, name), ignore_errors=True)
    for path in (layout.config, layout.openrc, layout.pid_file, layout.lock):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    with contextlib.suppress(OSError):
        os.rmdir(layout.state_dir)
    say('removed %s and its databases' % layout.state_dir)
    return 0
