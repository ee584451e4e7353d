"""Reads for pages take one thread of their own, whatever their number."""

import asyncio
import threading
import time

from app.web.record_reads import RecordReads


def test_a_crowd_of_reads_queues_for_one_thread_and_each_gets_its_answer():
    reads = RecordReads()
    running, most, threads = 0, 0, set()
    lock = threading.Lock()

    def read(number: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.current_thread().name)
        time.sleep(0.005)
        with lock:
            running -= 1
        return number * 2

    async def crowd() -> list[int]:
        return await asyncio.gather(*(reads.run(read, n) for n in range(16)))

    assert asyncio.run(crowd()) == [n * 2 for n in range(16)]
    reads.close()
    assert most == 1
    assert len(threads) == 1
    assert threads.pop().startswith("leukolens-reads")
