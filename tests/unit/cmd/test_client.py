"""image-agent-client without a broker: output, errors, the cache
commands (arguments and calls are in test_client_parser and
test_client_commands)."""

import io
import json
import threading
from unittest import mock

import oslo_messaging as messaging
import pytest

from image_agent import exception
from image_agent.cmd import client
from image_agent.cmd import output
from tests.unit.cmd.helpers import IMAGE_ID
from tests.unit.cmd.helpers import parse


def emit(result, command, *argv):
    """What ``output.emit`` writes for ``result`` with options ``argv``."""
    args = parse(*argv, 'ping')
    stream = io.StringIO()
    output.emit(result, command, args, stdout=stream)
    return stream.getvalue()


class TestErrors:
    def test_no_agent_is_one_line_naming_topic_host_and_checks(self):
        error = exception.AgentNotListening(
            target='topic image-agent, host node-3',
            queue='image-agent.node-3',
        )
        line = client._one_line(error)
        assert 'topic image-agent, host node-3' in line
        assert 'is image-agent running there' in line
        assert 'credentials loaded' in line

    def test_a_remote_error_is_its_message_without_traceback(self):
        error = exception.ImageNotFound(
            'Image x could not be found.', image_id='x'
        )
        error.__class__ = type(
            'ImageNotFound_Remote',
            (exception.ImageNotFound,),
            {'__str__': lambda self: 'Image x...\nTraceback (most recent)'},
        )
        assert client._one_line(error) == 'Image x could not be found.'

    def test_a_timeout_is_one_line(self):
        error = messaging.MessagingTimeout('Timed out waiting\nmore')
        line = client._one_line(error)
        assert line.startswith('no answer from an image agent')
        assert '\n' not in line

    def test_main_prints_one_line_and_returns_1(self, capsys, monkeypatch):
        monkeypatch.setattr(
            client, 'make_context', mock.Mock(side_effect=ValueError('a\nb'))
        )
        assert client.main(['--config-file', '/dev/null', 'ping']) == 1
        assert capsys.readouterr().err == 'ERROR: ValueError: a\n'


class TestOutput:
    def test_json(self):
        text = emit({'b': 1, 'a': [1]}, 'show', '-f', 'json')
        assert json.loads(text) == {'a': [1], 'b': 1}

    def test_yaml(self):
        assert emit({'a': [1]}, 'show', '-f', 'yaml') == 'a:\n- 1\n'

    def test_value_of_one_column(self):
        image = {'id': IMAGE_ID, 'name': 'n', 'size': 2048}
        assert emit(image, 'show', '-f', 'value', '-c', 'id') == (
            IMAGE_ID + '\n'
        )
        rows = [image, dict(image, id='other')]
        text = emit(rows, 'detail', '-f', 'value', '-c', 'id')
        assert text.split() == [IMAGE_ID, 'other']

    def test_a_dict_is_a_field_table(self):
        text = emit({'name': 'n', 'tags': ['a']}, 'show')
        assert '| Field | Value |' in text
        assert '| tags  | ["a"] |' in text

    def test_sizes_are_human_in_tables_and_bytes_in_json(self):
        image = {'id': 'i', 'size': 3 * 2**20}
        assert '3.0 MiB' in emit(image, 'show')
        assert json.loads(emit(image, 'show', '-f', 'json'))['size'] == (
            3 * 2**20
        )
        entries = {'entries': [{'image_id': 'i', 'size': 2048}]}
        assert '2.0 KiB' in emit(entries, 'cache-list')

    def test_evicted_entries_are_rows_not_one_cell(self):
        entry = {'image_id': 'i', 'size': 2048, 'path': '/c/' + 'x' * 300,
                 'os_hash_value': 'f' * 128, 'last_used': 't'}  # fmt: skip
        text = emit({'image_id': 'i', 'evicted': [entry]}, 'cache-evict')
        assert max(len(line) for line in text.splitlines()) < 60
        assert '2.0 KiB' in text

    def test_a_table_fits_the_width_asked(self):
        properties = {'k%d' % i: 'v' * 30 for i in range(9)}
        image = {'id': 'i', 'properties': properties}
        text = emit(image, 'show', '--max-width', '80')
        assert max(len(line) for line in text.splitlines()) <= 80

    def test_a_list_shows_the_commands_columns(self):
        images = [{'id': 'i1', 'name': 'a', 'status': 'active', 'x': 1}]
        text = emit(images, 'detail')
        assert 'disk_format' in text.splitlines()[1]
        assert ' x ' not in text.splitlines()[1]
        assert json.loads(emit(images, 'detail', '-f', 'json'))[0]['x'] == 1

    @pytest.mark.parametrize(
        'size, text',
        [(0, '0 B'), (1536, '1.5 KiB'), (3 * 2**30, '3.0 GiB'), (None, '?')],
    )
    def test_sizes(self, size, text):
        assert output.human_size(size) == text

    def test_progress_animates_on_a_terminal_and_polls(self):
        stream = io.StringIO()
        release = threading.Event()
        progress = output.Progress(
            'download x',
            stream=stream,
            poll=lambda: (512, 1024, 3 * 2**20),
            poll_interval=0,
            enabled=True,
        )
        threading.Timer(0.5, release.set).start()
        result = progress.run(lambda: release.wait(5) and 'done')
        assert result == 'done'
        shown = stream.getvalue()
        assert 'download x' in shown
        assert '512 B / 1.0 KiB (50%)  3.0 MiB/s' in shown
        assert shown.endswith('\r\x1b[K')

    def test_progress_lines_fit_an_80_column_terminal(self):
        stream = io.StringIO()
        progress = output.Progress(
            'download %s' % IMAGE_ID, stream=stream, enabled=True, width=80
        )
        progress._known = (2**30, 4 * 2**30, 300 * 2**20)
        line = progress._line('|')
        assert len(line) < 80
        assert line.endswith('1.0 GiB / 4.0 GiB (25%)  300.0 MiB/s')

    def test_progress_is_silent_off_a_terminal(self):
        stream = io.StringIO()
        progress = output.Progress('d', stream=stream)
        assert progress.run(lambda: 42) == 42
        assert stream.getvalue() == ''

    def test_progress_reraises_the_calls_error(self):
        progress = output.Progress('d', stream=io.StringIO())
        with pytest.raises(exception.ImageNotFound):
            progress.run(
                mock.Mock(side_effect=exception.ImageNotFound(image_id='x'))
            )

    def test_summary_gives_size_time_and_rate(self):
        progress = output.Progress('download x', stream=io.StringIO())
        assert '/s)' in progress.summary(2**20, reused=False)
        assert 'reused' in progress.summary(2**20, reused=True)


class TestCacheCommands:
    def test_precache_takes_many_hosts_and_images(self):
        api = mock.Mock()
        api.precache.return_value = {'h1': {}}
        args = parse(
            'precache', '--host', 'h1', '--host', 'h2', 'img-a', 'img-b'
        )
        client.run_command(api, 'ctx', args)
        call = api.precache.call_args
        assert call.args == ('ctx', ['img-a', 'img-b'], ['h1', 'h2'])
        assert callable(call.kwargs['progress'])

    def test_precache_needs_a_host(self):
        with pytest.raises(exception.InvalidInput):
            client.run_command(mock.Mock(), 'ctx', parse('precache', 'img-a'))

    def test_precache_honours_the_global_host(self):
        api = mock.Mock()
        args = parse('--host', 'h1', 'precache', 'img-a')
        client.run_command(api, 'ctx', args)
        assert api.precache.call_args.args == ('ctx', ['img-a'], ['h1'])

    def test_cache_list_and_evict_target_one_host(self):
        api = mock.Mock()
        client.run_command(api, 'ctx', parse('cache-list', '--host', 'h1'))
        api.list_cache.assert_called_once_with('ctx', 'h1')
        client.run_command(
            api, 'ctx', parse('--host', 'h2', 'cache-evict', IMAGE_ID)
        )
        api.evict.assert_called_once_with('ctx', IMAGE_ID, 'h2')
        with pytest.raises(exception.InvalidInput):
            client.run_command(api, 'ctx', parse('cache-list'))

    def test_precache_table_and_board(self):
        result = {
            'h1': {'a': {'status': 'cached', 'size': 2048, 'fetched': 2048}},
            'h2': {
                'a': {
                    'status': 'skipped',
                    'error_class': 'MessagingTimeout',
                    'error': 'the agent did not answer a ping',
                }
            },
        }
        text = emit(result, 'precache')
        assert 'cached' in text and '2.0 KiB' in text
        assert 'MessagingTimeout: the agent did not answer' in text
        stream = io.StringIO()
        board = output.PrecacheBoard(['h1', 'h2'], stream=stream)
        board.update('h2', result['h2'], 1, 2)
        assert stream.getvalue().startswith('[1/2] h2: 1 skipped')


def test_precache_exits_1_when_a_host_failed(monkeypatch, capsys):
    api = mock.Mock()
    api.precache.return_value = {
        'h1': {'a': {'status': 'cached'}},
        'h2': {'a': {'status': 'skipped', 'error': 'no answer'}},
    }
    fake = mock.Mock(return_value=api, PRECACHE_WORKERS=16)
    fake.PRECACHE_PING_TIMEOUT = 5
    monkeypatch.setattr(client.rpcapi, 'ImageAgentAPI', fake)
    monkeypatch.setattr(client.rpc, 'get_transport', mock.Mock())
    argv = ['--os-auth-type', 'none', '--os-user-id', 'u', 'precache']
    code = client.main([*argv, '--host', 'h1', '--host', 'h2', 'a'])
    assert code == 1
    assert 'skipped' in capsys.readouterr().out
    api.precache.return_value = {'h1': {'a': {'status': 'existing'}}}
    assert client.main([*argv, '--host', 'h1', 'a']) == 0


def test_an_existing_destination_names_the_option():
    error = exception.DestinationExists(path='/srv/x')
    assert client._one_line(error).endswith('Use --overwrite to replace it.')


def test_a_refusal_without_credentials_says_what_to_set():
    error = exception.NotAuthorized('image-agent calls need a token')
    line = client._one_line(error, ctxt=None)
    assert 'openrc' in line and 'OS_CLOUD' in line
