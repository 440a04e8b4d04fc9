"""What each subcommand of image-agent-client calls, with which arguments."""

from unittest import mock

import pytest

from image_agent import exception
from image_agent.cmd import client
from tests.unit.cmd.helpers import IMAGE_ID
from tests.unit.cmd.helpers import parse


class TestCommands:
    def test_detail_sends_only_what_was_given(self):
        api = mock.Mock()
        args = parse('detail', '--filter', 'name=x', '--limit', '3')
        client.run_command(api, 'ctx', args)
        api.detail.assert_called_once_with(
            'ctx', host=None, filters={'name': 'x'}, limit=3
        )

    def test_update_with_a_file(self):
        api = mock.Mock()
        api.update.return_value = {'id': IMAGE_ID, 'size': 3}
        args = parse('--host', 'h', 'update', IMAGE_ID, '--file', '/srv/f')
        client.run_command(api, 'ctx', args)
        api.update.assert_called_once_with(
            'ctx', IMAGE_ID, {}, path='/srv/f', purge_props=False,
            store_id=None, base_image_ref=None, host='h', convert_from=None,
        )  # fmt: skip

    def test_a_raw_file_uploaded_as_qcow2(self):
        api = mock.Mock()
        api.update.return_value = {'id': IMAGE_ID, 'size': 3}
        args = parse(
            '--host', 'h', 'update', IMAGE_ID, '--file', '/srv/vol',
            '--disk-format', 'qcow2', '--convert-from', 'raw',
        )  # fmt: skip
        client.run_command(api, 'ctx', args)
        assert api.update.call_args.kwargs['convert_from'] == 'raw'
        assert api.update.call_args.args[2] == {'disk_format': 'qcow2'}

    def test_download_converted_to_raw(self):
        api = mock.Mock()
        api.download.return_value = {'path': '/srv/d', 'size': 3}
        args = parse(
            '--host', 'h', 'download', IMAGE_ID, '/srv/d', '--convert-to',
            'raw', '--no-progress',
        )  # fmt: skip
        client.run_command(api, 'ctx', args)
        assert api.download.call_args.kwargs['convert_to'] == 'raw'

    def test_download_converts_to_raw_only(self):
        with pytest.raises(SystemExit):
            parse('download', IMAGE_ID, '/srv/d', '--convert-to', 'qcow2')

    def test_noauth_identity_without_keystone(self):
        args = parse(
            '--os-user-id', 'u', '--os-project-id', 'p', '--os-roles', 'a,b',
            'ping',
        )  # fmt: skip
        args.os_auth_type = 'none'
        ctxt = client.make_context(args)
        assert (ctxt.user_id, ctxt.project_id) == ('u', 'p')
        assert ctxt.roles == ['a', 'b']
        assert ctxt.auth_token is None
        assert ctxt.is_admin is False

    def test_noauth_admin_role_makes_an_admin_context(self):
        args = parse('--os-roles', 'admin,member', 'ping')
        args.os_auth_url = None
        args.os_cloud = None
        assert client.make_context(args).is_admin is True


class TestIdempotencyKey:
    def test_create_passes_the_key(self):
        api = mock.Mock()
        args = parse('create', '--name', 'n', '--idempotency-key', 'k')
        client.run_command(api, 'ctx', args)
        api.create.assert_called_once_with(
            'ctx',
            {'name': 'n'},
            path=None,
            host=None,
            idempotency_key='k',
            convert_from=None,
        )

    def test_find_created_shows_the_image_or_fails(self):
        api = mock.Mock()
        api.find_created.return_value = {'id': 'i-1'}
        args = parse('find-created', 'k')
        assert client.run_command(api, 'ctx', args) == {'id': 'i-1'}
        api.find_created.return_value = None
        with pytest.raises(exception.NotFound, match='key k'):
            client.run_command(api, 'ctx', args)
