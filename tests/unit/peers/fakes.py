"""An image in a real cache, and a Glance and Keystone that answer about it."""

import hashlib
import os
import uuid

from image_agent import cache as image_cache
from image_agent import exception
from image_agent import identity

GOOD_TOKEN = 'gAAAAAB-peer-good'
OTHER_TOKEN = 'gAAAAAB-peer-other-project'
DEACTIVATED_TOKEN = 'gAAAAAB-peer-deactivated'


def make_image(data: bytes) -> dict:
    return {
        'id': str(uuid.uuid4()),
        'size': len(data),
        'os_hash_algo': 'sha512',
        'os_hash_value': hashlib.sha512(data).hexdigest(),
        'status': 'active',
    }


def cached(directory, image: dict, data: bytes) -> image_cache.ImageCache:
    """A cache holding ``data`` as the entry of ``image``."""
    cache = image_cache.ImageCache(str(directory))
    cache.ensure_directory()
    path = cache.destination(image).path
    with open(path, 'wb') as f:
        f.write(data)
    os.chmod(path, image_cache.MODE)
    return cache


class Images:
    """Glance's answers: GOOD_TOKEN may download, OTHER_TOKEN cannot see
    the image (another project's private one), DEACTIVATED_TOKEN sees it
    but may not download it."""

    def __init__(self, image: dict) -> None:
        self.image = image
        self.checked: list[str] = []

    def show(self, context, image_id):
        if image_id != self.image['id'] or context.auth_token == OTHER_TOKEN:
            raise exception.ImageNotFound(image_id=image_id)
        return dict(self.image)

    def check_download(self, context, image):
        self.checked.append(context.auth_token)
        if context.auth_token == DEACTIVATED_TOKEN:
            raise exception.ImageNotAuthorized(image_id=image['id'])


def validator() -> identity.TokenValidator:
    """Keystone knows the three tokens above, and no other."""

    def ask(token):
        if token not in (GOOD_TOKEN, OTHER_TOKEN, DEACTIVATED_TOKEN):
            raise exception.NotAuthorized('unknown token')
        return identity.Identity(
            'u-' + token[-4:],
            None,
            None,
            'p',
            None,
            None,
            None,
            None,
            ('member', 'reader'),
            None,
        )

    return identity.TokenValidator(ask=ask)
