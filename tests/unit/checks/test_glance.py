"""The service credentials check; against the real Keystone and Glance
in tests/functional/test_status_cmd.py."""

from oslo_upgradecheck import upgradecheck

from image_agent import conf
from image_agent.checks import glance

Code = upgradecheck.Code


def test_noauth_skips_the_credentials_check(config):
    config.config(auth_strategy='noauth')
    assert glance.check_glance(conf.CONF).code == Code.WARNING


def test_missing_service_credentials_are_a_warning(config):
    config.config(auth_strategy='keystone')
    config.config(group='glance', auth_type=None)
    result = glance.check_glance(conf.CONF)
    assert result.code == Code.WARNING
    assert 'auth_type' in result.details
