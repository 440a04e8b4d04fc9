"""The agent's sections of its Guru Meditation Reports."""

from oslo_reports import guru_meditation_report as gmr
import pytest

from image_agent import cache as cache_mod
from image_agent import reports
from image_agent import transfers as transfers_mod
from image_agent import version


@pytest.fixture
def transfers(tmp_path):
    root = tmp_path / 'root'
    root.mkdir()
    return transfers_mod.Transfers(
        image_service=None,
        download_roots=[str(root)],
        upload_roots=None,
        max_downloads=3,
        max_uploads=2,
        cache=cache_mod.ImageCache(str(root / 'cache'), 10 * 1024 * 1024),
    )


@pytest.fixture
def render(config):
    reports.register_opts(config.conf)

    def render(transfers) -> str:
        reports.setup(config.conf, transfers)
        return gmr.TextGuruMeditation(version.info()).run()

    return render


def test_slots_show_what_is_in_use_of_how_many(transfers):
    with transfers.shared.slots.held('downloads', Exception):
        assert transfers.slots() == {
            'downloads': {'in_use': 1, 'total': 3},
            'uploads': {'in_use': 0, 'total': 2},
        }


def test_the_report_has_the_agent_sections(transfers, render):
    text = render(transfers)
    for title in ('Transfers in flight', 'Transfer slots', 'Image cache'):
        assert title in text
    assert 'max_size = 10485760' in text
    assert 'images = 0' in text


def test_an_agent_without_cache_says_so(transfers, render):
    transfers.cache = None
    assert 'cache_dir unset' in render(transfers)


def test_a_new_start_replaces_the_sections_of_the_last(
    transfers, config, render
):
    reports.setup(config.conf, transfers)
    reports.setup(config.conf, transfers)
    titles = [t for t, _ in gmr.TextGuruMeditation.persistent_sections]
    assert titles.count('Transfer slots') == 1
