"""Hypothesis strategies for the arguments of the agent's RPC methods.

Every strategy that needs places or images of a test takes its ``env``
(``test_fuzz.FuzzEnv``): the download roots ``r1``/``r2``, the sentinel
tree ``outside``, the ``area`` holding them, a ``stray`` sibling that must
never appear, a ``canary`` listener and the ``deployment``.
"""

from __future__ import annotations

import os
import socket
import threading

from hypothesis import strategies as st

MISSING = '6f1d8c1e-0000-4000-8000-000000000000'


class Canary:
    """A listener that counts connections: an href must not be followed."""

    def __init__(self) -> None:
        self._sock = socket.create_server(('127.0.0.1', 0))
        self.port = self._sock.getsockname()[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._sock.close()


JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
JSON_ANY = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
HUGE = st.sampled_from(
    ['x' * 300_000, '\0' * 1000, 'é' * 70_000, '/' * 5000, '.' * 4096]
)
NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec='utf-8'), max_size=20),
    st.sampled_from(
        [
            '',
            ' ',
            '\0',
            '\n',
            '%00',
            '%2e%2e%2f',
            '../' * 10,
            '${jndi:ldap://x}',
            "'; DROP TABLE images; --",
            '\u202e',
            '\udcff'.encode('utf-8', 'surrogatepass').decode('latin-1'),
        ]
    ),
    HUGE,
)
WRONG_TYPE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(JSON_LEAF, max_size=3),
    st.dictionaries(st.text(max_size=5), JSON_LEAF, max_size=3),
)


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of ``choices`` with the given weights.

    (``st.one_of`` flattens nested ``one_of``s and picks among the leaves,
    so a strategy made of many alternatives would crowd out the others.)
    """
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def image_ids(env, images: dict) -> st.SearchStrategy:
    good = images['fuzz']
    glance = env.deployment.glance_urls[0]
    return weighted(
        (
            4,
            st.sampled_from(
                [
                    good,
                    images['alt_private'],
                    images['deleted'],
                    MISSING,
                    good.upper(),
                    good.replace('-', ''),
                    ' ' + good,
                    good + '\n',
                    good + '\0',
                    good + '/',
                    '../' + good,
                    good + '/../' + MISSING,
                    '%s/v2/images/%s' % (env.canary.url, good),
                    '%s/v2/images/%s' % (glance, good),
                    'http://[::1]:%d/%s' % (env.canary.port, good),
                    'file:///etc/passwd',
                    '127.0.0.1:%d/%s' % (env.canary.port, good),
                    '//127.0.0.1:%d/%s' % (env.canary.port, good),
                ]
            ),
        ),
        (1, st.uuids().map(str)),
        (2, NASTY_TEXT),
        (2, WRONG_TYPE),
    )


def local_paths(env) -> st.SearchStrategy:
    bases = st.sampled_from(
        [
            env.r1,
            env.r2,
            env.r1 + '/',
            '/' + env.r1,
            env.outside,
            env.area,
            os.path.dirname(env.area),
            env.stray,
            '',
            'relative',
            '.',
            '/',
            '/dev',
            '/proc/self',
        ]
    )
    segments = st.one_of(
        st.sampled_from(
            [
                '..',
                '.',
                '',
                'escape',
                'escape-file',
                'existing-link',
                'devnull',
                'fifo',
                'chardev',
                'loop',
                'up',
                'r2link',
                'sub',
                'deeper',
                'data.bin',
                'new',
                'disk',
                'x',
                'secret',
                'dir',
                'file',
                '.disk.image-agent-tmp-abcdefgh',
                'n' * 256,
                'n' * 255,
                'null',
                'stdout',
                'fd',
            ]
        ),
        st.text(max_size=12),
    )
    built = st.builds(
        lambda base, parts, sep: (
            base + sep + sep.join(parts) if parts else base
        ),
        bases,
        st.lists(segments, max_size=5),
        st.sampled_from(['/', '//']),
    )
    # Plausible destinations, often valid, through links and directories
    # inside the roots (and out of them through ``escape`` and ``up``).
    plausible = st.builds(
        lambda root, via, name: '/'.join(x for x in (root, via, name) if x),
        st.sampled_from([env.r1, env.r2]),
        st.sampled_from(
            ['', '', 'sub', 'sub/deeper', 'r2link', 'escape', 'up']
        ),
        st.text(
            alphabet=st.characters(codec='utf-8', exclude_characters='/\0'),
            min_size=1,
            max_size=30,
        ),
    )
    return weighted(
        (5, plausible), (3, built), (1, NASTY_TEXT), (1, WRONG_TYPE)
    )


def metadata(env) -> st.SearchStrategy:
    keys = st.sampled_from(
        [
            'name',
            'disk_format',
            'container_format',
            'visibility',
            'protected',
            'min_disk',
            'min_ram',
            'properties',
            'mappings',
            'block_device_mapping',
            'id',
            'status',
            'owner',
            'tags',
            'size',
            'checksum',
            'os_hash_value',
            'os_hash_algo',
            'locations',
            'direct_url',
            'created_at',
            'deleted_at',
            'file',
            'schema',
            'self',
            'context',
            'image_id',
            'method',
            'privileged_user',
            'controller',
            'store_id',
            'base_image_ref',
        ]
    )
    values = st.one_of(
        JSON_ANY,
        NASTY_TEXT,
        st.sampled_from(
            [
                'raw',
                'qcow2',
                'bare',
                'public',
                'private',
                'shared',
                'community',
                'active',
                True,
                -1,
                2**63,
                '2020-01-01T00:00:00Z',
                'not a date',
                '{"json": "string"}',
                [{'url': 'file:///etc/passwd', 'metadata': {}}],
            ]
        ),
    )
    known = st.dictionaries(keys, values, max_size=6)
    free = st.dictionaries(NASTY_TEXT, JSON_ANY, max_size=3)
    named = st.builds(
        lambda meta, tag: {'name': 'fuzz-%s' % tag, **meta},
        known,
        st.text(max_size=6),
    )
    return weighted(
        (4, named), (2, known), (1, free), (1, WRONG_TYPE), (1, st.just({}))
    )
