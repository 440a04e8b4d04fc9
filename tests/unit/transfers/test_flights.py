"""Single-flight: one call per key at a time."""

import pytest

from image_agent import transfers


class TestSingleFlight:
    def test_different_keys_run_separately(self):
        flights = transfers.SingleFlight()
        assert flights.run('a', lambda: 1) == 1
        assert flights.run('b', lambda: 2) == 2

    def test_a_key_is_free_again_after_its_call(self):
        flights = transfers.SingleFlight()
        with pytest.raises(ValueError):
            flights.run('a', lambda: int('x'))
        assert flights.run('a', lambda: 3) == 3
