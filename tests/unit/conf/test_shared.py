"""Options shared with the service the library runs in (Cinder, Nova)."""

import copy

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
import pytest

from image_agent.conf import agent as agent_conf
from image_agent.conf import client as client_conf
from image_agent.conf import default as default_conf
from image_agent.conf import glance as glance_conf
from image_agent.conf import policy as policy_conf
from image_agent.conf import service_user as service_user_conf
from image_agent.conf import shared


def _host_service_conf() -> cfg.ConfigOpts:
    """A ConfigOpts as Cinder leaves it: same names, other definitions."""
    host_conf = cfg.ConfigOpts()
    host_conf.register_opts(
        [
            cfg.StrOpt('host', default='node@backend#pool', help='Node.'),
            cfg.StrOpt(
                'auth_strategy',
                default='keystone',
                choices=['noauth', 'noauth_include_project_id', 'keystone'],
            ),
        ]
    )
    host_conf.register_opts(
        [
            cfg.StrOpt('region_name', help='Their region.'),
            cfg.IntOpt('num_retries', default=5, help='Theirs.'),
            cfg.BoolOpt('insecure', default=True, help='Theirs.'),
        ],
        group='glance',
    )
    return host_conf


def test_the_library_registers_beside_a_host_service():
    host_conf = _host_service_conf()
    default_conf.register_opts(host_conf)
    glance_conf.register_opts(host_conf)
    host_conf([], default_config_files=[])
    # The host service's definitions are kept and read...
    assert host_conf.host == 'node@backend#pool'
    assert host_conf.glance.num_retries == 5
    assert host_conf.glance.insecure is True
    # ...and ours fill in what it does not define.
    assert host_conf.glance.catalog_info == 'image:glance:publicURL'
    assert host_conf.glance.retry_backoff_max == 10.0


def test_registering_twice_is_harmless():
    private = cfg.ConfigOpts()
    for _ in range(2):
        default_conf.register_opts(private)
        shared.register_beside(private, glance_conf.glance_opts, 'glance')
    private([], default_config_files=[])
    assert private.glance.num_retries == 3


def test_a_same_named_option_of_another_type_is_a_conflict():
    private = cfg.ConfigOpts()
    private.register_opt(cfg.StrOpt('num_retries'), group='glance')
    with pytest.raises(cfg.DuplicateOptError):
        shared.register_beside(
            private, [cfg.IntOpt('num_retries', help='Ours.')], 'glance'
        )


# The groups Cinder and Nova have too, and our options in them.
SHARED_GROUPS = [
    (default_conf, None, default_conf.default_opts),
    (
        glance_conf,
        'glance',
        glance_conf.glance_opts + ks_loading.get_session_conf_options(),
    ),
    (service_user_conf, 'service_user', service_user_conf.service_user_opts),
]


@pytest.mark.parametrize(
    ('module', 'group', 'opts'),
    SHARED_GROUPS,
    ids=[module.__name__ for module, _, _ in SHARED_GROUPS],
)
def test_every_shared_group_registers_beside_a_host_service(
    module, group, opts
):
    # Cinder or Nova registered options of the same names first, with
    # their own help text: the library must still load in their process.
    host_conf = cfg.ConfigOpts()
    for opt in opts:
        theirs = copy.deepcopy(opt)
        theirs.help = 'The host service\'s own definition.'
        host_conf.register_opt(theirs, group=group)
    module.register_opts(host_conf)


@pytest.mark.parametrize(
    'module',
    [
        agent_conf,
        client_conf,
        glance_conf,
        policy_conf,
        service_user_conf,
    ],  # fmt: skip
)
def test_options_added_to_one_conf_do_not_reach_another(module):
    """oslo.config shares a registered OptGroup's table of options: a
    module-level group must not carry one ConfigOpts' options to the
    next (this once made the global CONF require [glance] auth_url)."""
    first, second, third = cfg.ConfigOpts(), cfg.ConfigOpts(), cfg.ConfigOpts()
    module.register_opts(first)
    module.register_opts(second)
    group = next(iter(module.list_opts()))
    name = getattr(group, 'name', group)
    first.register_opt(cfg.StrOpt('leaked', required=True), group=name)
    module.register_opts(third)
    assert 'leaked' in first[name]
    assert 'leaked' not in second[name]
    assert 'leaked' not in third[name]
