"""image-agent-client's arguments: global options, subcommands, metadata."""

import pytest

from image_agent import exception
from image_agent.cmd import client
from image_agent.cmd import client_commands
from tests.unit.cmd.helpers import IMAGE_ID
from tests.unit.cmd.helpers import parse


class TestArguments:
    def test_every_operation_is_a_subcommand(self):
        commands = {
            'ping': (),
            'show': (IMAGE_ID,),
            'detail': (),
            'download': (IMAGE_ID, '/srv/x'),
            'create': (),
            'update': (IMAGE_ID,),
            'delete': (IMAGE_ID,),
            'get-location': (IMAGE_ID,),
            'add-location': (IMAGE_ID, 'http://x'),
            'get-stores': (),
            'list-members': (IMAGE_ID,),
        }
        for command, args in commands.items():
            assert parse(command, *args).command == command

    def test_credentials_come_from_the_environment(self, monkeypatch):
        monkeypatch.setenv('OS_AUTH_URL', 'http://keystone/v3')
        monkeypatch.setenv('OS_USERNAME', 'demo')
        monkeypatch.setenv('OS_PROJECT_NAME', 'demo')
        monkeypatch.setenv('OS_USER_DOMAIN_ID', 'd0')
        monkeypatch.setenv('OS_PROJECT_DOMAIN_ID', 'd1')
        args = parse('ping')
        assert args.os_auth_url == 'http://keystone/v3'
        assert args.os_username == 'demo'
        assert (args.os_user_domain_id, args.os_project_domain_id) == (
            'd0',
            'd1',
        )

    def test_no_domain_is_guessed(self, monkeypatch):
        monkeypatch.setenv('OS_AUTH_URL', 'http://keystone/v3')
        monkeypatch.setenv('OS_USERNAME', 'demo')
        monkeypatch.setenv('OS_PASSWORD', 'pw')
        args = parse('ping')
        assert args.os_user_domain_name is None
        with pytest.raises(exception.InvalidInput) as info:
            client.make_context(args)
        assert 'OS_USER_DOMAIN_NAME' in str(info.value)

    def test_any_auth_type_brings_its_options(self, monkeypatch):
        monkeypatch.setenv('OS_AUTH_TYPE', 'v3applicationcredential')
        monkeypatch.setenv('OS_APPLICATION_CREDENTIAL_ID', 'ac1')
        monkeypatch.setenv('OS_APPLICATION_CREDENTIAL_SECRET', 's3')
        args = parse('ping')
        assert args.os_auth_type == 'v3applicationcredential'
        assert args.os_application_credential_id == 'ac1'
        args = parse('--os-auth-type', 'v3token', '--os-token', 't', 'ping')
        assert args.os_token == 't'

    def test_subcommands_explain_their_options(self, capsys):
        with pytest.raises(SystemExit):
            parse('download', '--help')
        text = capsys.readouterr().out
        assert '--overwrite' in text and 'already exists' in text
        assert 'no progress line' in text
        assert 'verified' in text
        with pytest.raises(SystemExit):
            parse('cache-list', '--help')
        text = capsys.readouterr().out
        assert '--host HOST' in text and 'SUB_HOST' not in text

    def test_image_metadata_from_options(self):
        args = parse(
            'create', '--name', 'n', '--disk-format', 'raw',
            '--property', 'a=1', '--property', 'b=x=y',
            '--meta', '{"min_ram": 64, "properties": {"c": "3"}}',
        )  # fmt: skip
        assert client_commands._image_meta(args) == {
            'name': 'n',
            'disk_format': 'raw',
            'min_ram': 64,
            'properties': {'a': '1', 'b': 'x=y', 'c': '3'},
        }

    def test_bad_options_are_usage_errors(self):
        with pytest.raises(SystemExit) as e:
            parse('create', '--property', 'novalue')
        assert e.value.code == 2
        with pytest.raises(SystemExit):
            parse('add-location', IMAGE_ID, 'http://x', '--metadata', '[1]')

    def test_update_keeps_properties_unless_asked(self):
        assert parse('update', IMAGE_ID).purge_props is False
        assert parse('update', IMAGE_ID, '--purge-props').purge_props
