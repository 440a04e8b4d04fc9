"""The buffers of the stream copy."""

import threading

from image_agent.data import stages


class TestBufferPool:
    def test_buffers_are_lent_and_given_back(self):
        pool = stages.BufferPool(2, 4096)
        stop = threading.Event()
        first, second = pool.get(stop), pool.get(stop)
        assert first is not second and len(first) == 4096
        pool.put(first)
        assert pool.get(stop) is first
        pool.close()

    def test_an_empty_pool_waits_until_stopped(self):
        pool = stages.BufferPool(1, 4096)
        stop = threading.Event()
        pool.get(stop)
        threading.Timer(0.2, stop.set).start()
        assert pool.get(stop) is None
        pool.close()
