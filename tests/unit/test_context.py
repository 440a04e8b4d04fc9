"""The request context: who calls, with which token and catalog."""

from image_agent import context as context_mod

CATALOG = [
    {
        'type': 'image',
        'name': 'glance',
        'endpoints': [{'region': 'RegionOne', 'publicURL': 'http://g:9292'}],
    },
    {
        'type': 'identity',
        'name': 'keystone',
        'endpoints': [{'region': 'RegionOne', 'publicURL': 'http://ks/v3'}],
    },
    {
        'type': 'compute',
        'name': 'nova',
        'endpoints': [{'region': 'RegionOne', 'publicURL': 'http://nova'}],
    },
    {
        'type': 'volumev3',
        'name': 'cinder',
        'endpoints': [{'region': 'RegionOne', 'publicURL': 'http://cinder'}],
    },
]


def _context(**kwargs) -> context_mod.RequestContext:
    values = {
        'user_id': 'u-1',
        'project_id': 'p-1',
        'user_name': 'alice',
        'project_name': 'demo',
        'auth_token': 'secret-token',
        'roles': ['member', 'reader'],
        'global_request_id': 'req-8b7e3a2c-5b1c-4e56-9d6e-1f2a3b4c5d6e',
        'service_catalog': CATALOG,
    }
    values.update(kwargs)
    return context_mod.RequestContext(**values)


def test_only_image_and_identity_catalog_entries_are_kept():
    ctx = _context()
    assert ctx.service_catalog == CATALOG[:2]


def test_no_catalog_is_an_empty_catalog():
    assert context_mod.RequestContext().service_catalog == []


def test_to_dict_from_dict_round_trip():
    ctx = _context()
    values = ctx.to_dict()
    assert values['service_catalog'] == CATALOG[:2]
    assert values['user_name'] == 'alice'
    assert values['project_name'] == 'demo'
    copy = context_mod.RequestContext.from_dict(values)
    assert isinstance(copy, context_mod.RequestContext)
    assert copy.to_dict() == values
    assert copy.auth_token == 'secret-token'
    assert copy.global_request_id == ctx.global_request_id
    assert copy.roles == ['member', 'reader']
    assert copy.service_catalog == CATALOG[:2]


def test_from_dict_filters_a_catalog_it_receives_in_full():
    values = _context().to_dict()
    values['service_catalog'] = CATALOG
    copy = context_mod.RequestContext.from_dict(values)
    assert copy.service_catalog == CATALOG[:2]


def test_logging_values_hold_no_token_and_no_catalog():
    values = _context().get_logging_values()
    assert 'secret-token' not in repr(values)
    assert 'service_catalog' not in values
    assert values['user_name'] == 'alice'
