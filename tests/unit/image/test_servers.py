"""Where the Glance servers come from: configuration, catalog, Keystone."""

import itertools

from keystoneauth1 import access
import pytest

from image_agent import context as context_mod
from image_agent import exception
from image_agent.image import servers

V2_CATALOG = [
    {
        'type': 'compute',
        'name': 'nova',
        'endpoints': [{'region': 'RegionOne', 'publicURL': 'http://nova'}],
    },
    {
        'type': 'image',
        'name': 'glance',
        'endpoints': [
            {
                'region': 'RegionOne',
                'publicURL': 'http://glance-one:9292/',
                'internalURL': 'http://glance-one.internal:9292',
                'adminURL': 'http://glance-one.admin:9292',
            },
            {
                'region': 'RegionTwo',
                'publicURL': 'http://glance-two:9292',
                'internalURL': 'http://glance-two.internal:9292',
                'adminURL': 'http://glance-two.admin:9292',
            },
            {
                'region': 'RegionTwo',
                'publicURL': 'http://glance-two-b:9292',
                'internalURL': 'http://glance-two-b.internal:9292',
                'adminURL': 'http://glance-two-b.admin:9292',
            },
        ],
    },
]

V3_CATALOG = [
    {
        'type': 'image',
        'name': 'glance',
        'id': 'c0ffee',
        'endpoints': [
            {
                'interface': 'internal',
                'region_id': 'RegionOne',
                'region': 'RegionOne',
                'url': 'http://glance-one.internal:9292',
            },
            {
                'interface': 'public',
                'region_id': 'RegionOne',
                'region': 'RegionOne',
                'url': 'https://glance-one.example.com/image/',
            },
            {
                'interface': 'public',
                'region_id': 'RegionTwo',
                'url': 'https://glance-two.example.com/image',
            },
        ],
    }
]


def _context(catalog=None) -> context_mod.RequestContext:
    return context_mod.RequestContext(
        user_id='u', project_id='p', auth_token='t', service_catalog=catalog
    )


# -- normalize_server_url -----------------------------------------------------


@pytest.mark.parametrize(
    ('entry', 'url'),
    [
        ('glance.example.com:9292', 'http://glance.example.com:9292'),
        ('10.0.0.5:9292', 'http://10.0.0.5:9292'),
        ('[::1]:9292', 'http://[::1]:9292'),
        ('http://[fd00::5]:9292/', 'http://[fd00::5]:9292'),
        ('https://glance.example.com', 'https://glance.example.com'),
        (
            'https://glance.example.com:443/image/',
            'https://glance.example.com:443/image',
        ),
        ('http://glance.example.com/image', 'http://glance.example.com/image'),
        ('  glance:9292  ', 'http://glance:9292'),
    ],
)
def test_normalize_server_url_accepts(entry, url):
    assert servers.normalize_server_url(entry) == url


@pytest.mark.parametrize(
    'entry',
    [
        '',
        '   ',
        None,
        'http://',
        'ftp://glance.example.com:21',
        'glance:notaport',
        'http://[::1',
        '//glance:9292',
        'not a url',
        'http:/glance.example.com',
        'glance:9292/with space',
        'mailto:glance@example.com',
    ],
)
def test_normalize_server_url_refuses_garbage(entry):
    with pytest.raises(exception.InvalidConfigurationValue) as excinfo:
        servers.normalize_server_url(entry)
    assert '[glance] api_servers' in str(excinfo.value)


@pytest.mark.parametrize(
    ('entry', 'reason'),
    [
        ('ftp://glance.example.com', 'the scheme must be http or https'),
        (
            'glance:notaport',
            'expected http(s)://host[:port][/path] or host:port',
        ),
    ],
)
def test_normalize_server_url_error_names_the_value_and_the_reason(
    entry, reason
):
    with pytest.raises(exception.InvalidConfigurationValue) as excinfo:
        servers.normalize_server_url(entry)
    assert str(excinfo.value) == (
        f'Value "{entry}" is not valid for configuration option '
        f'"[glance] api_servers": {reason}'
    )


# -- parse_catalog_info -------------------------------------------------------


def test_parse_catalog_info_splits_three_fields():
    assert servers.parse_catalog_info('image:glance:publicURL') == (
        'image',
        'glance',
        'publicURL',
    )


def test_parse_catalog_info_allows_an_empty_service_name():
    assert servers.parse_catalog_info('image::internalURL') == (
        'image',
        '',
        'internalURL',
    )


@pytest.mark.parametrize(
    'value',
    ['', 'image', 'image:glance', 'image:glance:publicURL:extra', ':glance:x'],
)
def test_parse_catalog_info_refuses_anything_but_three_fields(value):
    with pytest.raises(exception.InvalidConfigurationValue) as excinfo:
        servers.parse_catalog_info(value)
    assert '[glance] catalog_info' in str(excinfo.value)
    assert '<service_type>:<service_name>:<endpoint_type>' in str(
        excinfo.value
    )


# -- servers_from_catalog -----------------------------------------------------


def test_v2_catalog_without_region_gives_the_first_endpoint():
    urls = servers.servers_from_catalog(
        V2_CATALOG, 'image:glance:publicURL', None
    )
    assert urls == ['http://glance-one:9292']


def test_v2_catalog_region_gives_every_endpoint_of_that_region():
    urls = servers.servers_from_catalog(
        V2_CATALOG, 'image:glance:publicURL', 'RegionTwo'
    )
    assert urls == ['http://glance-two:9292', 'http://glance-two-b:9292']


def test_v2_catalog_endpoint_type_picks_the_url_column():
    urls = servers.servers_from_catalog(
        V2_CATALOG, 'image:glance:internalURL', 'RegionOne'
    )
    assert urls == ['http://glance-one.internal:9292']


def test_v3_catalog_matches_interface_and_region_id():
    urls = servers.servers_from_catalog(
        V3_CATALOG, 'image:glance:publicURL', 'RegionTwo'
    )
    assert urls == ['https://glance-two.example.com/image']


def test_v3_catalog_without_region_gives_the_first_matching_interface():
    urls = servers.servers_from_catalog(
        V3_CATALOG, 'image:glance:publicURL', None
    )
    assert urls == ['https://glance-one.example.com/image']


def test_v3_catalog_accepts_a_v3_interface_name():
    urls = servers.servers_from_catalog(
        V3_CATALOG, 'image:glance:internal', None
    )
    assert urls == ['http://glance-one.internal:9292']


def test_catalog_region_without_endpoints_falls_back_to_the_first():
    # As the reference: an unmatched region is not an error.
    first = servers.servers_from_catalog(
        V2_CATALOG, 'image:glance:publicURL', None
    )
    assert len(first) == 1
    assert (
        servers.servers_from_catalog(
            V2_CATALOG, 'image:glance:publicURL', 'RegionNine'
        )
        == first
    )


def test_catalog_without_an_image_entry_gives_nothing():
    catalog = [{'type': 'identity', 'endpoints': [{'publicURL': 'http://k'}]}]
    assert (
        servers.servers_from_catalog(catalog, 'image:glance:publicURL', 'R')
        == []
    )


def test_catalog_service_name_filters_entries():
    catalog = [
        {
            'type': 'image',
            'name': 'other-glance',
            'endpoints': [{'publicURL': 'http://other:9292'}],
        },
        {
            'type': 'image',
            'name': 'glance',
            'endpoints': [{'publicURL': 'http://glance:9292'}],
        },
    ]
    assert servers.servers_from_catalog(
        catalog, 'image:glance:publicURL', None
    ) == ['http://glance:9292']
    assert servers.servers_from_catalog(
        catalog, 'image:other-glance:publicURL', None
    ) == ['http://other:9292']


def test_catalog_empty_service_name_takes_any_entry_of_the_type():
    catalog = [
        {
            'type': 'image',
            'name': 'other-glance',
            'endpoints': [{'publicURL': 'http://other:9292'}],
        },
    ]
    assert servers.servers_from_catalog(catalog, 'image::publicURL', None) == [
        'http://other:9292'
    ]


def test_catalog_without_an_image_service_gives_nothing():
    assert (
        servers.servers_from_catalog(
            V2_CATALOG[:1], 'image:glance:publicURL', None
        )
        == []
    )
    assert (
        servers.servers_from_catalog(None, 'image:glance:publicURL', None)
        == []
    )


def test_catalog_bad_catalog_info_is_a_configuration_error():
    with pytest.raises(exception.InvalidConfigurationValue):
        servers.servers_from_catalog(V2_CATALOG, 'image:publicURL', None)


# -- find_servers: precedence -------------------------------------------------


@pytest.fixture
def keystone_catalog(service_credentials, monkeypatch):
    """Keystone's answer to the service user: a v3 token with a catalog.

    Only the plugin's ``get_access`` (the network boundary) is replaced; the
    catalog lookup itself is keystoneauth's.
    """
    asked = []
    body = {
        'token': {
            'methods': ['password'],
            'expires_at': '2099-01-01T00:00:00.000000Z',
            'catalog': [
                {
                    'type': 'image',
                    'name': 'glance',
                    'id': 'img',
                    'endpoints': [
                        {
                            'id': '1',
                            'interface': 'public',
                            'region_id': 'RegionOne',
                            'region': 'RegionOne',
                            'url': 'http://ks-public-one:9292/',
                        },
                        {
                            'id': '2',
                            'interface': 'internal',
                            'region_id': 'RegionOne',
                            'region': 'RegionOne',
                            'url': 'http://ks-internal-one:9292',
                        },
                        {
                            'id': '3',
                            'interface': 'internal',
                            'region_id': 'RegionTwo',
                            'region': 'RegionTwo',
                            'url': 'http://ks-internal-two:9292',
                        },
                    ],
                }
            ],
        }
    }

    def get_access(session):
        asked.append(session)
        return access.create(body=body, auth_token='service-token')

    monkeypatch.setattr(service_credentials, 'get_access', get_access)
    return asked


def test_api_servers_come_first(config, keystone_catalog):
    config.config(
        group='glance',
        api_servers=['glance-a:9292', 'https://glance-b/image/'],
    )
    found = servers.find_servers(_context(V2_CATALOG))
    assert found == ['http://glance-a:9292', 'https://glance-b/image']
    assert keystone_catalog == []


def test_a_bad_api_servers_entry_is_a_configuration_error(config):
    config.config(group='glance', api_servers=['glance-a:9292', 'ftp://x'])
    with pytest.raises(exception.InvalidConfigurationValue):
        servers.find_servers(_context())


def test_catalog_is_used_when_api_servers_is_unset(config, keystone_catalog):
    config.config(group='glance', region_name='RegionTwo')
    found = servers.find_servers(_context(V2_CATALOG))
    assert found == ['http://glance-two:9292', 'http://glance-two-b:9292']
    assert keystone_catalog == []


def test_keystone_is_asked_when_neither_config_nor_catalog_names_a_server(
    config, keystone_catalog
):
    config.config(
        group='glance', interface='internal', region_name='RegionTwo'
    )
    found = servers.find_servers(_context(V2_CATALOG[:1]))
    assert found == ['http://ks-internal-two:9292']
    assert len(keystone_catalog) == 1


def test_keystone_lookup_uses_the_configured_interface(
    config, keystone_catalog
):
    found = servers.find_servers(_context())
    assert found == ['http://ks-public-one:9292']


def test_no_server_anywhere_is_a_clear_error(config):
    config.config(group='glance', region_name='RegionOne')
    with pytest.raises(exception.GlanceServersNotFound) as excinfo:
        servers.find_servers(_context(V2_CATALOG[:1]))
    message = str(excinfo.value)
    assert 'api_servers is unset' in message
    assert 'image:glance:publicURL' in message
    assert 'RegionOne' in message


# -- find_servers over RPC: the agent's own servers only --------------------

HOSTILE_CATALOG = [
    {
        'type': 'image',
        'name': 'glance',
        'endpoints': [
            {'region': 'RegionOne', 'publicURL': 'http://evil.example:8080'}
        ],
    }
]


def _remote(catalog=None) -> context_mod.RequestContext:
    return context_mod.mark_remote(_context(catalog))


def test_remote_context_never_gets_a_server_from_its_own_catalog(
    config, keystone_catalog
):
    found = servers.find_servers(_remote(HOSTILE_CATALOG))
    assert found == ['http://ks-public-one:9292']
    assert len(keystone_catalog) == 1


def test_remote_context_catalog_may_pick_among_keystone_servers(
    config, keystone_catalog
):
    config.config(group='glance', interface='internal')
    catalog = [
        {
            'type': 'image',
            'name': 'glance',
            'endpoints': [
                {
                    'region': 'RegionTwo',
                    'publicURL': 'HTTP://KS-Internal-Two:9292/',
                },
                {'region': 'RegionTwo', 'publicURL': 'http://evil:1'},
            ],
        }
    ]
    config.config(group='glance', region_name=None)
    # Keystone's internal endpoints of both regions are trusted; the
    # caller's catalog (first endpoint) picks RegionTwo's.
    assert servers.find_servers(_remote(catalog)) == [
        'http://ks-internal-two:9292'
    ]
    assert servers.find_servers(_remote(HOSTILE_CATALOG)) == [
        'http://ks-internal-one:9292',
        'http://ks-internal-two:9292',
    ]


def test_remote_context_with_api_servers_uses_them(config, keystone_catalog):
    config.config(group='glance', api_servers=['glance-a:9292'])
    assert servers.find_servers(_remote(HOSTILE_CATALOG)) == [
        'http://glance-a:9292'
    ]
    assert keystone_catalog == []


def test_the_agents_keystone_catalog_is_cached(
    config, keystone_catalog, monkeypatch
):
    now = [1000.0]
    monkeypatch.setattr(servers.time, 'monotonic', lambda: now[0])
    config.config(group='glance', catalog_cache_time=60)
    for _ in range(5):
        servers.find_servers(_remote())
    assert len(keystone_catalog) == 1
    now[0] += 61
    servers.find_servers(_remote())
    assert len(keystone_catalog) == 2


def test_remote_context_without_any_trusted_server_is_refused(config):
    with pytest.raises(exception.GlanceServersNotFound):
        servers.find_servers(_remote(V2_CATALOG))


def test_in_process_context_keeps_trusting_its_catalog(
    config, keystone_catalog
):
    assert servers.find_servers(_context(HOSTILE_CATALOG)) == [
        'http://evil.example:8080'
    ]


def test_the_remote_mark_does_not_travel_in_a_dict():
    values = _remote().to_dict()
    values['over_rpc'] = True
    assert not context_mod.is_remote(
        context_mod.RequestContext.from_dict(values)
    )


# -- get_api_servers ----------------------------------------------------------


def test_get_api_servers_cycles_endlessly_over_every_server(config):
    configured = ['http://g1:9292', 'http://g2:9292', 'http://g3:9292']
    config.config(group='glance', api_servers=configured)
    picked = list(itertools.islice(servers.get_api_servers(_context()), 12))
    assert sorted(picked[:3]) == [
        ('g1:9292', False),
        ('g2:9292', False),
        ('g3:9292', False),
    ]
    assert picked == picked[:3] * 4


def test_get_api_servers_gives_the_references_netloc_and_ssl_pairs(config):
    # netloc = host, port and path; use_ssl from the scheme; a bare
    # host:port is http; an IPv6 literal keeps its brackets.
    config.config(
        group='glance',
        api_servers=[
            'https://glance.example.com:9292/image/',
            'glance-b:9292',
            'http://[::1]:9292',
        ],
    )
    picked = set(itertools.islice(servers.get_api_servers(_context()), 3))
    assert picked == {
        ('glance.example.com:9292/image', True),
        ('glance-b:9292', False),
        ('[::1]:9292', False),
    }


def test_get_api_servers_shuffles_the_order(config):
    configured = [f'http://g{i}:9292' for i in range(6)]
    config.config(group='glance', api_servers=configured)
    orders = {
        tuple(itertools.islice(servers.get_api_servers(_context()), 6))
        for _ in range(30)
    }
    assert len(orders) > 1


def test_get_api_servers_from_the_catalog(config):
    config.config(group='glance', region_name='RegionTwo')
    picked = list(
        itertools.islice(servers.get_api_servers(_context(V2_CATALOG)), 4)
    )
    assert sorted(picked[:2]) == [
        ('glance-two-b:9292', False),
        ('glance-two:9292', False),
    ]
    assert picked[2:] == picked[:2]


def test_get_api_servers_without_servers_raises_not_stop_iteration(config):
    with pytest.raises(exception.GlanceServersNotFound):
        servers.get_api_servers(_context())


def test_cycle_over_an_empty_list_raises_servers_not_found():
    with pytest.raises(exception.GlanceServersNotFound) as excinfo:
        servers.cycle_shuffled([])
    assert 'the server list is empty' in str(excinfo.value)


@pytest.mark.parametrize('entry', ['glance:99999', 'http://glance:65536/x'])
def test_normalize_server_url_refuses_a_port_out_of_range(entry):
    with pytest.raises(exception.InvalidConfigurationValue):
        servers.normalize_server_url(entry)
