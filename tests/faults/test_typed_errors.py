"""Bad input the fuzzing found answered untyped: one case per finding.

Every case sends one malformed call to a real agent and expects a typed
``image_agent`` error (``Invalid`` for bad arguments, a typed error for a
malformed context or a refused request). The cases of bugs A-D were strict
xfails until fa69454 fixed them; they stay as regression tests. A case of
a bug still open is a strict xfail naming it: fixing the bug makes the
case pass and the marker must go (with its entry in
``test_fuzz.KNOWN_BUGS``).
"""

import os

import pytest

from image_agent import exception
from tests.faults import helpers

pytestmark = pytest.mark.slow

SCENARIO = '6. Typed errors for bad input'
MISSING = '6f1d8c1e-0000-4000-8000-000000000000'

# Fixed in fa69454 (found by this suite).
BUG_A = (
    'BUG A: image_agent/manager.py _rpc_method: wrapper(self, context, '
    '**kwargs) calls the method with whatever arguments arrived; an unknown '
    'or missing argument raises TypeError inside, answered as the catch-all '
    'AgentError (and an argument named "context" raises TypeError before '
    'the wrapper runs, which crosses RPC as a builtin TypeError). Fix: make '
    'context positional-only and bind the arguments first '
    '(inspect.signature(func).bind), raising InvalidInput on TypeError'
)
BUG_B = (
    'BUG B: image_agent/image/glance.py create/update/add_location/detail '
    'and image/metadata.py translate_to_glance use image_meta, '
    'image_meta["properties"], the location metadata and the listing '
    'parameters without checking their types: a number, a list or a string '
    'where a dict or an int is expected fails inside (TypeError/ValueError) '
    'and is answered as AgentError. Fix: check the types at the API edge '
    'and raise InvalidInput'
)
BUG_C = (
    'BUG C: image_agent/context.py RequestContext.__init__ iterates '
    'service_catalog and calls entry.get() on each entry unchecked, inside '
    'rpc.RequestContextSerializer.deserialize_context: a catalog that is '
    'not a list of dicts raises TypeError/AttributeError in the '
    "dispatcher, which crosses RPC as a builtin exception. Fix: validate "
    'the context dict in deserialize_context and raise InvalidInput '
    '(or NotAuthorized)'
)
BUG_D = (
    'BUG D: image_agent/image/errors.py translates only 400/401/403/404/409'
    '/413 and image/client.py lets keystoneauth and requests failures '
    'other than connection errors through: a token or request id that '
    'cannot be a header (newline, non latin-1, not a string), an answer '
    '414/431 or a 5xx other than 503 from Glance are answered as '
    'AgentError. Fix: map other 4xx to Invalid, 5xx to a typed Glance '
    'error, and refuse a token/request id that is not a valid header '
    'value with NotAuthorized/InvalidInput before sending'
)
# Fixed in f2f03f6 (found by this suite).
BUG_E = (
    'BUG E: image_agent/image/glance.py GlanceImageService.update passes '
    'the translated metadata as keyword arguments: '
    '_call_on_image(context, image_id, "update", image_id, '
    'remove_props=..., **sent), and create does client.call(context, '
    '"create", **sent). A metadata key named like a parameter (self, '
    'context, image_id, method) raises TypeError, answered as AgentError; '
    'keys named like the wrapper\'s controls (privileged_user, controller, '
    'store_id, base_image_ref) steer the call instead (see '
    'test_security). Fix: pass the metadata as one dict argument '
    '(client.call(..., "update", image_id, remove_props=..., '
    'patch=sent) through a small adapter), never as **kwargs'
)
BUG_H = (
    'BUG H: image_agent/manager.py ImageAgentManager.update with a path '
    'hands image_id to transfers.Transfers.upload unchecked, which puts it '
    'in the single-flight key (a tuple, hashed): an image id that is a dict '
    'or a list raises TypeError "unhashable type", answered as AgentError '
    '(the id is checked only later, inside the image service). Fix: check '
    'image_id (validation, as glance._check_image_id does) at the top of '
    'update, before the upload'
)
FIXED = {BUG_A, BUG_B, BUG_C, BUG_D, BUG_E, BUG_H}


def _context(base, **changes):
    values = base.to_dict()
    values['service_catalog'] = base.service_catalog
    values.update(changes)
    return values


# (id, bug, context changes, method, kwargs, expected class)
CASES = [
    ('unknown-argument', BUG_A, {}, 'show', {'image_id': MISSING, 'x': 1}),
    ('missing-argument', BUG_A, {}, 'show', {}),
    (
        'argument-named-context',
        BUG_A,
        {},
        'show',
        {'image_id': MISSING, 'context': {}},
    ),
    ('image-meta-a-number', BUG_B, {}, 'create', {'image_meta': 5}),
    ('image-meta-a-list', BUG_B, {}, 'create', {'image_meta': ['a']}),
    (
        'properties-a-string',
        BUG_B,
        {},
        'update',
        {'image_id': MISSING, 'image_meta': {'properties': 'x'}},
    ),
    (
        'location-metadata-a-number',
        BUG_B,
        {},
        'add_location',
        {'image_id': '@fuzz', 'url': 'http://127.0.0.1/x', 'metadata': 1.5},
    ),
    ('listing-limit-a-list', BUG_B, {}, 'detail', {'limit': [1]}),
    (
        'properties-a-list',
        BUG_B,
        {},
        'update',
        {'image_id': '@fuzz', 'image_meta': {'properties': [['a', 'b']]}},
    ),
    ('catalog-a-number', BUG_C, {'service_catalog': 5}, 'ping', {}),
    ('catalog-of-strings', BUG_C, {'service_catalog': ['x']}, 'ping', {}),
    (
        'token-with-newline',
        BUG_D,
        {'auth_token': 'abc\ndef'},
        'show',
        {'image_id': '@fuzz'},
    ),
    (
        'token-not-latin-1',
        BUG_D,
        {'auth_token': '\u0101' * 8},
        'get_stores',
        {},
    ),
    (
        'token-too-big-for-a-header',
        BUG_D,
        {'auth_token': 'x' * 300_000},
        'show',
        {'image_id': '@fuzz'},
    ),
    (
        'request-id-a-number',
        BUG_D,
        {'global_request_id': 5},
        'show',
        {'image_id': '@fuzz'},
    ),
    ('sort-key-too-long', BUG_D, {}, 'detail', {'sort_key': 'k' * 10_000}),
    (
        'upload-to-an-image-id-that-is-a-dict',
        BUG_H,
        {},
        'update',
        {'image_id': {'a': 1}, 'image_meta': {}, 'path': '@file'},
    ),
    # Metadata keys named like parameters: plain properties, or refused.
    (
        'metadata-key-self',
        BUG_E,
        {},
        'update',
        {'image_id': '@fuzz', 'image_meta': {'self': 1}, 'purge_props': 0},
    ),
    (
        'metadata-keys-like-parameters',
        BUG_E,
        {},
        'update',
        {
            'image_id': '@fuzz',
            'image_meta': {
                'properties': {'method': 'delete', 'context': 'c'},
                'image_id': 'x',
                'controller': 'image_members',
            },
        },
    ),
]


@pytest.fixture(scope='module')
def own_image(agent, api, deployment):
    from tests.functional.glance_fixtures import make_context

    ctxt = make_context(deployment, 'demo')
    made = api.create(
        ctxt,
        {
            'name': 'typed-errors',
            'disk_format': 'raw',
            'container_format': 'bare',
        },
        host=agent.host,
    )
    yield ctxt, made['id']
    api.delete(ctxt, made['id'], host=agent.host)


@pytest.mark.scenario(SCENARIO)
@pytest.mark.parametrize(
    'changes, method, kwargs',
    [
        pytest.param(
            c[2],
            c[3],
            c[4],
            id=c[0],
            marks=()
            if c[1] in FIXED
            else pytest.mark.xfail(strict=True, reason=c[1]),
        )
        for c in CASES
    ],
)
def test_bad_input_gets_a_typed_error(
    request,
    row,
    agent,
    api,
    own_image,
    changes,
    method,
    kwargs,
):
    ctxt, image_id = own_image
    source = os.path.join(agent.root, 'typed-errors-source')
    with open(source, 'wb') as f:
        f.write(b'some bytes')
    places = {'@fuzz': image_id, '@file': source}
    kwargs = {
        k: places.get(v, v) if isinstance(v, str) else v
        for k, v in kwargs.items()
    }
    cctxt = api.client.prepare(server=agent.host, timeout=30)
    row.add(calls=1)
    try:
        cctxt.call(_context(ctxt, **changes), method, **kwargs)
    except Exception as e:  # noqa: BLE001 - judged below
        error = e
    else:
        error = None
    if request.node.callspec.id.startswith('metadata-key') and error is None:
        return  # accepted as properties: fine
    if error is not None and helpers.is_typed(error):
        row.error(error)
    elif request.node.get_closest_marker('xfail'):
        row.add(known_bugs=1)
    else:
        row.add(failures=1)
    assert error is not None, 'accepted'
    assert helpers.is_typed(error), helpers.describe(error)
    if method in ('create', 'update', 'detail', 'add_location') or (
        not changes
    ):
        assert isinstance(error, exception.Invalid), helpers.describe(error)
