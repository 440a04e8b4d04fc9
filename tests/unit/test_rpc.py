"""What crosses the wire: contexts as dicts, results as JSON-able data."""

import datetime
import json
import sys

from oslo_context import context as oslo_context
import oslo_messaging as messaging
from oslo_messaging._drivers import common
import pytest

from image_agent import context as ia_context
from image_agent import exception
from image_agent import rpc

CATALOG_V2 = [
    {
        'type': 'image',
        'name': 'glance',
        'endpoints': [
            {'region': 'RegionOne', 'publicURL': 'http://glance:9292'}
        ],
    },
    {'type': 'compute', 'name': 'nova', 'endpoints': []},
]


def round_trip(ctxt):
    """The context as the agent receives it after JSON on the wire."""
    serializer = rpc.RequestContextSerializer()
    wire = json.loads(json.dumps(serializer.serialize_context(ctxt)))
    return serializer.deserialize_context(wire)


class TestContextSerialization:
    def test_identity_token_catalog_and_request_ids_cross(self):
        sent = ia_context.RequestContext(
            auth_token='tok',
            user_id='u1',
            project_id='p1',
            user_name='alice',
            project_name='demo',
            roles=['member', 'reader'],
            service_catalog=CATALOG_V2,
            global_request_id='req-11111111-2222-3333-4444-555555555555',
            overwrite=False,
        )
        got = round_trip(sent)
        assert isinstance(got, ia_context.RequestContext)
        assert got.auth_token == 'tok'
        assert (got.user_id, got.project_id) == ('u1', 'p1')
        assert (got.user_name, got.project_name) == ('alice', 'demo')
        assert got.roles == ['member', 'reader']
        assert got.global_request_id == sent.global_request_id
        assert got.request_id == sent.request_id
        # Only the entries the agent needs travel.
        assert [e['type'] for e in got.service_catalog] == ['image']

    def test_a_plain_oslo_context_is_accepted(self):
        sent = oslo_context.RequestContext(
            auth_token='tok', user_id='u', project_id='p', overwrite=False
        )
        got = round_trip(sent)
        assert got.auth_token == 'tok'
        assert got.service_catalog == []

    def test_a_foreign_context_with_a_catalog_keeps_it(self):
        class CinderContext(oslo_context.RequestContext):
            def __init__(self, service_catalog=None, **kwargs):
                super().__init__(**kwargs)
                self.service_catalog = service_catalog

        sent = CinderContext(
            service_catalog=CATALOG_V2, auth_token='t', overwrite=False
        )
        assert round_trip(sent).service_catalog == CATALOG_V2[:1]

    def test_a_dict_context_passes_through(self):
        serializer = rpc.RequestContextSerializer()
        assert serializer.serialize_context({'user': 'u'}) == {'user': 'u'}


class TestEntities:
    def test_datetimes_become_iso_8601(self):
        when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
        result = rpc.to_primitive(
            {'created_at': when, 'nested': [{'at': when}], 'none': None}
        )
        assert result == {
            'created_at': '2026-01-02T03:04:05+00:00',
            'nested': [{'at': '2026-01-02T03:04:05+00:00'}],
            'none': None,
        }
        assert datetime.datetime.fromisoformat(result['created_at']) == when

    def test_tuples_become_lists_and_everything_is_json(self):
        result = rpc.to_primitive(('url', [{'a': (1, 2)}], b'raw', object))
        assert result[:3] == ['url', [{'a': [1, 2]}], 'raw']
        json.dumps(result)

    def test_the_serializer_uses_it(self):
        serializer = rpc.RequestContextSerializer()
        when = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
        assert serializer.serialize_entity(None, {'t': when}) == {
            't': '2026-01-02T00:00:00+00:00'
        }
        assert serializer.deserialize_entity(None, {'x': 1}) == {'x': 1}


def serialized(error):
    """``error`` as an RPC error reply carries it."""
    try:
        raise error
    except type(error):
        return common.serialize_remote_exception(sys.exc_info())


class TestExceptionsCrossAsTheSameClasses:
    """What oslo.messaging does with an error reply on a rabbit transport."""

    def test_a_project_exception_is_rebuilt_as_its_class(self):
        data = serialized(exception.ImageNotFound(image_id='abc'))
        error = common.deserialize_remote_exception(data, rpc.ALLOWED_EXMODS)
        assert isinstance(error, exception.ImageNotFound)
        assert error.msg == 'Image abc could not be found.'
        assert error.kwargs['image_id'] == 'abc'

    def test_other_modules_stay_remote_errors(self):
        data = serialized(exception.ImageNotFound(image_id='abc'))
        error = common.deserialize_remote_exception(data, [])
        assert isinstance(error, messaging.RemoteError)

    def test_the_transport_allows_the_project_module(self, config):
        transport = rpc.get_transport(config.conf, url='fake://')
        try:
            allowed = transport._driver._allowed_remote_exmods
            assert 'image_agent.exception' in allowed
        finally:
            transport.cleanup()


class TestContextChecks:
    @pytest.mark.parametrize(
        'changes',
        [
            {'auth_token': 'abc\ndef'},
            {'auth_token': '\u0101' * 8},
            {'auth_token': 'x' * 300_000},
            {'global_request_id': 5},
            {'roles': 'admin'},
            {'roles': [1]},
            {'is_admin': 'yes'},
            {'user': ['u']},
            {'service_catalog': 5},
            {'service_catalog': ['x']},
            {'service_catalog': [{'type': 'image', 'endpoints': 'x'}]},
        ],
    )
    def test_a_malformed_context_is_invalid_input(self, changes):
        values = {'auth_token': 'tok', 'roles': ['member']}
        values.update(changes)
        with pytest.raises(exception.InvalidInput) as info:
            rpc.RequestContextSerializer().deserialize_context(values)
        assert 'malformed request context' in str(info.value)

    def test_a_well_formed_context_is_rebuilt(self):
        values = {
            'auth_token': 'gAAAAAB-token',
            'user': 'u',
            'project_id': 'p',
            'roles': ['member', 'reader'],
            'is_admin': False,
            'global_request_id': 'req-1234',
            'service_catalog': [
                {'type': 'image', 'endpoints': [{'publicURL': 'http://g'}]}
            ],
        }
        ctxt = rpc.RequestContextSerializer().deserialize_context(values)
        assert ctxt.auth_token == 'gAAAAAB-token'
        assert ctxt.roles == ['member', 'reader']
        assert ctxt.service_catalog == values['service_catalog']
