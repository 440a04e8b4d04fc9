"""The download and upload roots and the image cache, as
``image-agent-status upgrade check`` sees them."""

import os

from oslo_upgradecheck import upgradecheck
import pytest

from image_agent import conf
from image_agent.checks import disks

Code = upgradecheck.Code


@pytest.fixture
def roots(tmp_path, config):
    download = tmp_path / 'images'
    download.mkdir()
    config.config(group='agent', download_roots=[str(download)])
    return download


def test_existing_writable_roots_pass(roots):
    result = disks.check_roots(conf.CONF)
    assert result.code == Code.SUCCESS
    assert str(roots) in result.details


def test_no_download_root_is_a_warning(config):
    config.config(group='agent', download_roots=[])
    assert disks.check_roots(conf.CONF).code == Code.WARNING


def test_a_missing_root_fails_and_is_named(roots, config):
    missing = str(roots / 'nope')
    config.config(group='agent', download_roots=[str(roots), missing])
    result = disks.check_roots(conf.CONF)
    assert result.code == Code.FAILURE
    assert missing in result.details


def test_an_unreadable_upload_root_fails(roots, config, tmp_path):
    config.config(group='agent', upload_roots=['relative/dir'])
    result = disks.check_roots(conf.CONF)
    assert result.code == Code.FAILURE
    assert 'upload_roots' in result.details


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_a_read_only_root_fails(roots):
    roots.chmod(0o555)
    assert disks.check_roots(conf.CONF).code == Code.FAILURE


def test_no_cache_is_fine_and_says_what_is_refused(config):
    config.config(group='agent', cache_dir=None)
    result = disks.check_cache(conf.CONF)
    assert result.code == Code.SUCCESS
    assert 'precache' in result.details


def test_a_cache_outside_the_roots_fails(roots, config, tmp_path):
    config.config(group='agent', cache_dir=str(tmp_path / 'elsewhere'))
    result = disks.check_cache(conf.CONF)
    assert result.code == Code.FAILURE
    assert 'not inside a download root' in result.details


def test_a_cache_without_limit_is_a_warning(roots, config):
    config.config(group='agent', cache_dir=str(roots / 'cache'))
    config.config(group='agent', cache_max_size=0)
    assert disks.check_cache(conf.CONF).code == Code.WARNING


def test_a_limit_larger_than_the_disk_is_a_warning(roots, config):
    config.config(group='agent', cache_dir=str(roots / 'cache'))
    config.config(group='agent', cache_max_size=2**40)
    result = disks.check_cache(conf.CONF)
    assert result.code == Code.WARNING
    assert 'free' in result.details


def test_a_cache_that_fits_passes(roots, config):
    config.config(group='agent', cache_dir=str(roots / 'cache'))
    config.config(group='agent', cache_max_size=1)
    assert disks.check_cache(conf.CONF).code == Code.SUCCESS
