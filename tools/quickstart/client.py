"""``image-agent-client`` as the quickstart runs it, and shows it run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from typing import Any

from tools.quickstart import venv as venvmod
from tools.testenv.util import DeploymentError

CALL_TIMEOUT = 300


class Client:
    """Runs the CLI as the demo user against the quickstart's agent.

    ``env`` holds what ``<state dir>/openrc`` exports (the caller's
    Keystone credentials, the transport URL and the topic), so every
    command shown can be pasted after sourcing that file.
    """

    def __init__(self, venv: str, env: dict[str, str], host: str) -> None:
        self.script = venvmod.bin_path(venv, 'image-agent-client')
        self.env = env
        self.host = host

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        return ['--host', self.host, *args]

    def show(self, *args: str) -> None:
        """Run a command for the reader: echoed, output passed through."""
        argv = self._argv(args)
        print('$ image-agent-client %s' % shlex.join(argv), flush=True)
        sys.stderr.flush()
        proc = subprocess.run(
            [self.script, *argv],
            env=self.env,
            stdin=subprocess.DEVNULL,
            timeout=CALL_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            raise DeploymentError(
                'image-agent-client %s failed (exit %d)'
                % (args[0], proc.returncode)
            )

    def json(self, *args: str, echo: bool = False, check: bool = True) -> Any:
        """Run a command with ``-f json``; its parsed output.

        With ``check=False`` a failure returns None instead of raising.
        """
        argv = ['-f', 'json', *self._argv(args)]
        if echo:
            print('$ image-agent-client %s' % shlex.join(argv), flush=True)
        proc = subprocess.run(
            [self.script, *argv],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            if not check:
                return None
            raise DeploymentError(
                'image-agent-client %s failed (exit %d): %s'
                % (args[0], proc.returncode, proc.stderr.strip())
            )
        if echo and proc.stderr.strip():
            print(proc.stderr.strip(), flush=True)
        return json.loads(proc.stdout)


def caller_env(
    testenv_env: dict[str, str], transport_url: str, topic: str, venv: str
) -> dict[str, str]:
    """The environment of the CLI: ours plus what openrc exports."""
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    env.update(openrc_values(testenv_env, transport_url, topic))
    env['PATH'] = os.path.join(venv, 'bin') + os.pathsep + env.get('PATH', '')
    return env


def as_admin(env: dict[str, str], deployment) -> dict[str, str]:
    """``env`` with the admin user's credentials: the cache calls and
    pre-caching are for administrators."""
    info = deployment.info['users']['admin']
    return dict(
        env,
        OS_USERNAME='admin',
        OS_PASSWORD=info['password'],
        OS_PROJECT_NAME=info['project'],
    )


def openrc_values(
    testenv_env: dict[str, str], transport_url: str, topic: str
) -> dict[str, str]:
    values = {k: v for k, v in testenv_env.items() if k.startswith('OS_')}
    values['IMAGE_AGENT_TESTENV_DIR'] = testenv_env['IMAGE_AGENT_TESTENV_DIR']
    values['IMAGE_AGENT_TRANSPORT_URL'] = transport_url
    values['IMAGE_AGENT_TOPIC'] = topic
    return values


def write_openrc(
    path: str,
    testenv_env: dict[str, str],
    transport_url: str,
    topic: str,
    venv: str,
) -> None:
    lines = [
        '# . %s  then  image-agent-client --host <host> ping' % path,
        '# The demo user\'s credentials and the quickstart agent\'s bus.',
    ]
    values = openrc_values(testenv_env, transport_url, topic)
    lines += ['export %s=%s' % (k, shlex.quote(v)) for k, v in values.items()]
    lines.append(
        'export PATH=%s:"$PATH"' % shlex.quote(os.path.join(venv, 'bin'))
    )
    fd = os.open(path + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.replace(path + '.tmp', path)
