"""The agent's configuration, written from the example in ``etc/``.

The example's comments stay; the quickstart's values replace the example's
(commented or not) in their section, or are added at the section's end.
"""

from __future__ import annotations

import hashlib
import os
import re

from tools.quickstart.layout import Layout

EXAMPLE = os.path.join('etc', 'image-agent', 'image-agent.conf')
TRANSPORT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'
_SECTION = re.compile(r'^\s*\[([^\]]+)\]\s*$')


def _key_of(line: str) -> str | None:
    """The option a line sets or shows commented out (``#key = value``)."""
    match = re.match(r'^\s*#?\s*([A-Za-z0-9_.-]+)\s*=', line)
    return match.group(1) if match else None


def set_options(text: str, values: dict[str, dict[str, str]]) -> str:
    """``text`` (an ini file) with ``values`` set, comments kept."""
    lines = text.splitlines()
    for section, options in values.items():
        for key, value in options.items():
            lines = _set_one(lines, section, key, value)
    return '\n'.join(lines) + '\n'


def _set_one(lines: list[str], section: str, key: str, value: str):
    setting = '%s = %s' % (key, value)
    current = None
    last_in_section = None
    for index, line in enumerate(lines):
        match = _SECTION.match(line)
        if match:
            current = match.group(1)
            if current == section:
                last_in_section = index
            continue
        if current != section:
            continue
        if line.strip():
            last_in_section = index
        if _key_of(line) == key:
            return lines[:index] + [setting] + lines[index + 1 :]
    if last_in_section is None:
        return lines + ['', '[%s]' % section, setting]
    at = last_in_section + 1
    return lines[:at] + [setting] + lines[at:]


def agent_values(layout: Layout, env: dict[str, str]) -> dict:
    """The quickstart's settings, from the test deployment's ``env``."""
    return {
        'DEFAULT': {
            'transport_url': os.environ.get(
                'IMAGE_AGENT_QUICKSTART_TRANSPORT_URL', TRANSPORT_URL
            ),
            'host': layout.host,
            'auth_strategy': 'keystone',
            'graceful_shutdown_timeout': '20',
            'log_file': layout.agent_log,
        },
        'agent': {
            'topic': layout.topic,
            'download_roots': layout.download_dir,
            'upload_roots': layout.source_dir,
            'drain_timeout': '10',
            # precache, cache-list and cache-evict work out of the box.
            'cache_dir': layout.cache_dir,
            'cache_max_size': '1024',
        },
        # Glance comes from the caller's service catalog, RegionOne.
        'glance': {
            'region_name': env['OS_REGION_NAME'],
            'auth_type': 'password',
            'auth_url': env['OS_AUTH_URL'],
            'username': env['IMAGE_AGENT_SERVICE_USER'],
            'password': env['IMAGE_AGENT_SERVICE_PASSWORD'],
            'project_name': env['IMAGE_AGENT_SERVICE_PROJECT'],
            'user_domain_name': 'Default',
            'project_domain_name': 'Default',
        },
        # The log driver writes every notification into the agent's log.
        'oslo_messaging_notifications': {'driver': 'log'},
    }


def render(layout: Layout, env: dict[str, str]) -> str:
    with open(os.path.join(layout.repo, EXAMPLE)) as f:
        example = f.read()
    lines = example.splitlines()
    # The example's header comment (before the first section) is replaced.
    first = next(i for i, line in enumerate(lines) if _SECTION.match(line))
    body = lines[first:]
    header = [
        '# Written by tools/quickstart.sh from %s; rewritten on each run.'
        % EXAMPLE,
        '# Your own settings go into %s/*.conf: read after this file (they'
        % layout.config_dir,
        '# win), never rewritten; then tools/quickstart.sh restarts the',
        '# agent, or send it SIGHUP.',
        '# Every option, with its help, is in '
        'etc/image-agent/image-agent.conf.sample.',
        '',
    ]
    return set_options('\n'.join(header + body), agent_values(layout, env))


USER_README = """\
# Files named *.conf here are read by the quickstart's agent after
# ../image-agent.conf, so what they set wins; tools/quickstart.sh never
# writes them. E.g. a file local.conf with
#
#   [agent]
#   cache_max_size = 4096
#
# then tools/quickstart.sh (it restarts the agent when a file here
# changed) or kill -HUP $(cat ../image-agent.pid).
"""


def user_files_digest(layout: Layout) -> str:
    """What the user's own files hold, to notice a change."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(layout.config_dir)):
        if name.endswith('.conf'):
            with open(os.path.join(layout.config_dir, name), 'rb') as f:
                digest.update(name.encode() + b'\0' + f.read())
    return digest.hexdigest()


def write(layout: Layout, env: dict[str, str]) -> bool:
    """Write the configuration (mode 0600); True when it or the user's
    own files changed since the last run."""
    readme = os.path.join(layout.config_dir, 'README')
    if not os.path.exists(readme):
        with open(readme, 'w') as f:
            f.write(USER_README)
    text = render(layout, env)
    text += '# user files: %s\n' % user_files_digest(layout)
    try:
        with open(layout.config) as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    tmp = layout.config + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, layout.config)
    return True
