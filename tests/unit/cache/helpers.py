"""Entries as the agent leaves them, for the cache's tests."""

import os

from image_agent import cache as cache_mod


def put(cache, image, data, used=None):
    """An entry as the agent leaves it, last used at ``used``."""
    dest = cache.destination(image)
    with open(dest.path, 'wb') as f:
        f.write(data)
    os.chmod(dest.path, cache_mod.MODE)
    if used is not None:
        os.utime(dest.path, (used, used))
    return cache.lookup(image)
