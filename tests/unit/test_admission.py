"""Transfer calls admitted at once, and the RPC threads they may take."""

from oslo_messaging import opts as messaging_opts
import pytest

from image_agent import admission
from image_agent import exception


@pytest.fixture(autouse=True)
def pool_option(config):
    """``executor_thread_pool_size``, as an RPC server registers it."""
    for group, opts in messaging_opts.list_opts():
        if group is None:
            config.register_opts(
                [o for o in opts if o.name == 'executor_thread_pool_size']
            )


class TestAdmission:
    def test_calls_beyond_the_limit_are_refused_at_once(self):
        gate = admission.Admission(running=2, waiting=1)
        with gate.admit(), gate.admit(), gate.admit():
            assert gate.count == 3
            with pytest.raises(exception.AgentBusy) as info, gate.admit():
                pass
            assert '3 transfers' in str(info.value)
        assert gate.count == 0

    def test_a_failed_call_gives_its_place_back(self):
        gate = admission.Admission(running=1, waiting=0)
        with pytest.raises(ValueError), gate.admit():
            raise ValueError('boom')
        with gate.admit():
            pass


class TestExecutorThreads:
    def test_raised_to_what_the_transfers_and_cheap_calls_need(self, config):
        config.config(executor_thread_pool_size=8)
        config.config(
            group='agent',
            max_concurrent_downloads=4,
            max_concurrent_uploads=2,
            max_waiting_transfers=10,
        )
        assert admission.executor_threads(config.conf) == (
            16 + admission.CHEAP_CALLS
        )

    def test_a_larger_pool_is_kept(self, config):
        config.config(executor_thread_pool_size=500)
        assert admission.executor_threads(config.conf) == 500

    def test_the_defaults_fit_the_default_pool(self, config):
        # 4 downloads, 4 uploads, 32 waiting, 16 cheap: 56 of 64.
        assert admission.executor_threads(config.conf) == 64
