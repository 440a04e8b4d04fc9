"""Options of the [DEFAULT] group."""

import socket

from oslo_config import cfg
import pytest

from image_agent.conf import default


@pytest.fixture
def fresh_conf() -> cfg.ConfigOpts:
    private = cfg.ConfigOpts()
    default.register_opts(private)
    private([], project='image-agent', default_config_files=[])
    return private


def test_defaults(fresh_conf):
    assert fresh_conf.auth_strategy == 'keystone'
    assert fresh_conf.host == socket.gethostname()


def test_auth_strategy_choices(config):
    config.config(auth_strategy='noauth')
    with pytest.raises(ValueError):
        config.config(auth_strategy='basic')
