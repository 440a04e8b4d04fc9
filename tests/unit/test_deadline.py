"""Deadlines: a request its caller stopped waiting for never starts."""

import logging

import pytest

from image_agent import deadline
from image_agent import exception
from image_agent import rpc

SENT = 1_800_000_000.0


class TestStartWindow:
    def test_a_plain_call_may_start_while_its_caller_waits(self):
        assert deadline.start_window(30) == 30

    def test_a_transfer_must_start_before_its_first_heartbeat_is_late(self):
        # Heartbeats come every half window once started: starting later
        # than half the window, the first one would arrive after the caller
        # gave up. A second of that half is kept for skew and the way back.
        assert deadline.start_window(21600, 10) == 4
        assert deadline.start_window(21600, 4) == 1
        assert deadline.start_window(21600, 2) == 0.5

    def test_never_beyond_the_timeout(self):
        assert deadline.start_window(3, 60) == 3


class TestStampAndParse:
    def test_the_deadline_travels_in_the_context_dict(self):
        values = {'auth_token': 't'}
        stamped = deadline.stamp(values, 4, now=SENT)
        assert stamped[deadline.CONTEXT_KEY] == {
            'sent_at': SENT,
            'start_within': 4.0,
        }
        assert values == {'auth_token': 't'}

    def test_parse_takes_it_out(self):
        values = deadline.stamp({'user': 'u'}, 4, now=SENT)
        assert deadline.parse(values) == {'sent_at': SENT, 'start_within': 4}
        assert values == {'user': 'u'}

    def test_an_older_caller_sends_none(self):
        assert deadline.parse({'user': 'u'}) is None

    @pytest.mark.parametrize(
        'bad',
        [
            'soon',
            [],
            {'sent_at': SENT},
            {'sent_at': 'x', 'start_within': 1},
            {'sent_at': SENT, 'start_within': True},
            {'sent_at': SENT, 'start_within': -1},
        ],
    )
    def test_a_malformed_deadline_is_refused(self, bad):
        with pytest.raises(exception.InvalidInput):
            deadline.parse({deadline.CONTEXT_KEY: bad})

    def test_the_serializer_gives_the_agent_its_deadline(self):
        serializer = rpc.RequestContextSerializer()
        sent = deadline.stamp({'user': 'u', 'auth_token': 't'}, 4, now=SENT)
        context = serializer.deserialize_context(sent)
        assert context.deadline == {'sent_at': SENT, 'start_within': 4}
        assert context.auth_token == 't'
        assert deadline.CONTEXT_KEY in sent  # the message is left alone
        old = serializer.deserialize_context({'user': 'u'})
        assert old.deadline is None


class TestCheck:
    limit = {'sent_at': SENT, 'start_within': 4.0}

    def test_in_time_it_runs(self):
        deadline.check(self.limit, 'create', 1.0, now=SENT + 3.9)

    def test_without_a_deadline_it_runs(self):
        deadline.check(None, 'create', 0, now=SENT + 10**6)

    def test_skew_is_tolerated(self):
        # The agent's clock may be ahead of the caller's by the allowed
        # skew, or the caller's ahead (the request looks younger).
        deadline.check(self.limit, 'create', 1.0, now=SENT + 4.9)
        deadline.check(self.limit, 'create', 1.0, now=SENT - 30)

    def test_late_it_is_refused_and_logged_without_token(self, caplog):
        class Ctx:
            request_id = 'req-1'
            user_id = 'u1'
            project_id = 'p1'
            auth_token = 'gAAAA-secret-token'

        caplog.set_level(logging.WARNING)
        with pytest.raises(exception.RequestExpired) as e:
            deadline.check(self.limit, 'download', 1.0, Ctx(), SENT + 90)
        assert 'download' in str(e.value)
        assert '90' in str(e.value)
        logged = caplog.text
        assert 'Dropped an expired download request req-1' in logged
        assert 'project p1' in logged
        assert 'secret' not in logged
