import pytest

from image_agent import cache as cache_mod


@pytest.fixture
def cache(tmp_path):
    c = cache_mod.ImageCache(str(tmp_path / 'cache'), max_size=3 * 1000)
    c.ensure_directory()
    return c
