"""Downloads, creates and updates: the arguments of later RPC versions."""

import pytest

from image_agent import exception
from image_agent import rpcapi

IMAGE_ID = '9b6ab1f6-56cc-4b4c-9d53-2b3e5e6f5a01'


class TestIdempotencyKey:
    def test_the_key_needs_version_1_2(self, transport, ctx):
        api = rpcapi.ImageAgentAPI(transport=transport, version_cap='1.1')
        with pytest.raises(exception.RPCVersionCapped):
            api.create(ctx, {'name': 'n'}, idempotency_key='k')

    def test_the_key_is_sent_with_1_2(self, api, sent, ctx):
        api.create(ctx, {'name': 'n'}, idempotency_key='k')
        assert sent.options['version'] == '1.2'
        assert sent.cctxt.call.call_args.kwargs['idempotency_key'] == 'k'

    def test_without_key_a_1_0_call(self, api, sent, ctx):
        api.create(ctx, {'name': 'n'})
        assert sent.options['version'] == '1.0'
        assert 'idempotency_key' not in sent.cctxt.call.call_args.kwargs

    def test_find_created_lists_the_projects_image_with_the_key(
        self, api, sent, ctx
    ):
        sent.cctxt.call.return_value = [{'id': 'i-1'}]
        assert api.find_created(ctx, 'k') == {'id': 'i-1'}
        assert sent.cctxt.call.call_args.kwargs['filters'] == {
            'image_agent_idempotency_key': 'k',
            'owner': ctx.project_id,
        }
        sent.cctxt.call.return_value = []
        assert api.find_created(ctx, 'k') is None


class TestConversions:
    """RPC 1.4: download convert_to, create and update convert_from."""

    @pytest.mark.parametrize(
        'call',
        [
            lambda api, ctx: api.download(
                ctx, IMAGE_ID, '/srv/x', host='h', convert_to='raw'
            ),
            lambda api, ctx: api.create(
                ctx, {'disk_format': 'qcow2'}, '/srv/v', convert_from='raw'
            ),
            lambda api, ctx: api.update(
                ctx, IMAGE_ID, {}, '/srv/v', convert_from='raw'
            ),
        ],
    )
    def test_an_agent_older_than_1_4_is_never_asked(
        self, transport, ctx, call
    ):
        for cap in ('1.3', 'hibiscus'):
            api = rpcapi.ImageAgentAPI(transport=transport, version_cap=cap)
            with pytest.raises(exception.RPCVersionCapped) as e:
                call(api, ctx)
            assert 'needs RPC API version 1.4' in str(e.value)

    def test_convert_to_is_sent_with_1_4(self, api, sent, ctx):
        api.download(ctx, IMAGE_ID, '/srv/x', host='h', convert_to='raw')
        assert sent.options['version'] == '1.4'
        assert sent.cctxt.call.call_args.kwargs['convert_to'] == 'raw'

    def test_convert_from_is_sent_with_1_4(self, api, sent, ctx):
        api.update(ctx, IMAGE_ID, {}, '/srv/v', convert_from='raw')
        assert sent.options['version'] == '1.4'
        assert sent.cctxt.call.call_args.kwargs['convert_from'] == 'raw'

    def test_without_them_the_calls_are_1_0_as_before(self, api, sent, ctx):
        api.download(ctx, IMAGE_ID, '/srv/x', host='h')
        assert sent.options['version'] == '1.0'
        assert 'convert_to' not in sent.cctxt.call.call_args.kwargs
        api.update(ctx, IMAGE_ID, {}, '/srv/v')
        assert sent.options['version'] == '1.0'
        assert 'convert_from' not in sent.cctxt.call.call_args.kwargs

    def test_the_series_in_development_pins_1_4(self, transport):
        api = rpcapi.ImageAgentAPI(transport=transport, version_cap='2027.1')
        assert api.version_cap == '1.4'
