"""Options of the [glance] group."""

from oslo_config import cfg
import pytest

from image_agent import conf
from image_agent.conf import glance as glance_conf


@pytest.fixture
def fresh_conf() -> cfg.ConfigOpts:
    """A private ConfigOpts with the group registered, no overrides."""
    private = cfg.ConfigOpts()
    glance_conf.register_opts(private)
    private([], project='image-agent', default_config_files=[])
    return private


def test_defaults(fresh_conf):
    group = fresh_conf.glance
    assert group.api_servers is None
    assert group.num_retries == 3
    assert group.retry_backoff_base == 0.5
    assert group.retry_backoff_max == 10.0
    assert group.catalog_info == 'image:glance:publicURL'
    assert group.region_name is None
    assert group.interface == 'public'
    assert group.allowed_direct_url_schemes == []
    assert group.auth_type is None
    assert group.insecure is False


def test_the_global_conf_has_the_group_registered():
    assert conf.CONF.glance.num_retries == 3


def test_num_retries_may_be_zero(config):
    config.config(group='glance', num_retries=0)
    assert conf.CONF.glance.num_retries == 0


@pytest.mark.parametrize(
    ('name', 'value'),
    [
        ('num_retries', -1),
        ('retry_backoff_base', -0.1),
        ('retry_backoff_max', -1),
        ('interface', 'private'),
    ],
)
def test_out_of_range_values_are_refused(config, name, value):
    with pytest.raises(ValueError):
        config.config(group='glance', **{name: value})


def test_api_servers_is_a_list(fresh_conf):
    fresh_conf.set_override(
        'api_servers', 'glance-a:9292,https://glance-b/image', group='glance'
    )
    assert fresh_conf.glance.api_servers == [
        'glance-a:9292',
        'https://glance-b/image',
    ]


def test_session_options_are_registered(fresh_conf):
    for name in ('cafile', 'certfile', 'keyfile', 'insecure', 'timeout'):
        assert name in fresh_conf.glance


def test_every_option_has_help_text():
    for group, opts in glance_conf.list_opts().items():
        for opt in opts:
            assert opt.help, f'[{group}] {opt.name} has no help'
