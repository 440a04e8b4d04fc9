"""Options shared with the service the library runs in (Cinder, Nova)."""

from oslo_config import cfg
import pytest

from image_agent.conf import default as default_conf
from image_agent.conf import glance as glance_conf
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
