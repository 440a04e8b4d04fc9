"""What each method of ImageAgentAPI sends."""

from unittest import mock

import pytest

from image_agent import deadline

IMAGE_ID = '9b6ab1f6-56cc-4b4c-9d53-2b3e5e6f5a01'


class TestArguments:
    @pytest.mark.parametrize(
        'method, args, kwargs, expected',
        [
            ('ping', (), {}, {}),
            ('show', (IMAGE_ID,), {}, {'image_id': IMAGE_ID}),
            (
                'detail',
                (),
                {'filters': {'name': 'x'}, 'limit': 2},
                {'filters': {'name': 'x'}, 'limit': 2},
            ),
            (
                'download',
                (IMAGE_ID, '/srv/d'),
                {'overwrite': True},
                {'image_id': IMAGE_ID, 'path': '/srv/d', 'overwrite': True},
            ),
            (
                'create',
                ({'name': 'n'},),
                {'path': '/srv/u'},
                {'image_meta': {'name': 'n'}, 'path': '/srv/u'},
            ),
            (
                'update',
                (IMAGE_ID, {'name': 'n'}),
                {'purge_props': False, 'store_id': 'fast'},
                {
                    'image_id': IMAGE_ID,
                    'image_meta': {'name': 'n'},
                    'path': None,
                    'purge_props': False,
                    'store_id': 'fast',
                    'base_image_ref': None,
                },
            ),
            ('delete', (IMAGE_ID,), {}, {'image_id': IMAGE_ID}),
            ('get_location', (IMAGE_ID,), {}, {'image_id': IMAGE_ID}),
            (
                'add_location',
                (IMAGE_ID, 'http://x/y', {'a': 'b'}),
                {},
                {
                    'image_id': IMAGE_ID,
                    'url': 'http://x/y',
                    'metadata': {'a': 'b'},
                },
            ),
            ('get_stores', (), {}, {}),
            ('list_members', (IMAGE_ID,), {}, {'image_id': IMAGE_ID}),
        ],
    )
    def test_each_method_sends_its_arguments(
        self, api, sent, ctx, method, args, kwargs, expected
    ):
        getattr(api, method)(ctx, *args, **kwargs)
        sent.cctxt.call.assert_called_once_with(mock.ANY, method, **expected)
        values = sent.cctxt.call.call_args.args[0]
        assert values['auth_token'] == ctx.auth_token
        assert deadline.CONTEXT_KEY in values

    def test_get_location_answers_like_the_image_service(self, api, sent, ctx):
        sent.cctxt.call.return_value = {
            'direct_url': 'http://a',
            'locations': [{'url': 'http://a'}],
        }
        assert api.get_location(ctx, IMAGE_ID) == (
            'http://a',
            [{'url': 'http://a'}],
        )
