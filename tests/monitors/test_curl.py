"""The asyncio bridge to libcurl, on asyncio's default loop and on uvloop, against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pycurl
import pytest

from tests.monitors.servers import closed_port
from vigil.monitors.curl import CurlClosedError, CurlError, CurlSession

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[pytest.param({}, id="asyncio"), pytest.param({"use_uvloop": True}, id="uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return ("asyncio", request.param)


@pytest.fixture(params=[pytest.param(True, id="epoll"), pytest.param(False, id="loop-watch")])
def epoll(request: pytest.FixtureRequest) -> bool:
    """Both ways of watching sockets: an epoll set the loop watches as one reader, and the loop itself."""
    return bool(request.param)


@pytest.fixture
async def session(epoll: bool) -> AsyncIterator[CurlSession]:
    session = CurlSession(max_connections=100, epoll=epoll)
    yield session
    session.close()


def _fd_count() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


@pytest.fixture
async def ok_server() -> AsyncIterator[str]:
    """A server in the test's own event loop answering 200 "ok" and closing, with room for 256 waiting connections."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=256)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


class Sink:
    def __init__(self, cap: int = 1 << 30) -> None:
        self.data, self.cap = bytearray(), cap

    def write(self, chunk: bytes) -> int | None:
        self.data += chunk
        return 0 if len(self.data) > self.cap else None  # 0 stops the transfer


def request(url: str, sink: Sink | None = None) -> pycurl.Curl:
    handle = pycurl.Curl()
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.NOSIGNAL, 1)
    handle.setopt(pycurl.FORBID_REUSE, 1)
    handle.setopt(pycurl.WRITEFUNCTION, (sink or Sink()).write)
    return handle


async def test_many_concurrent_requests(ok_server: str, session: CurlSession) -> None:
    sinks = [Sink() for _ in range(200)]
    handles = [request(f"{ok_server}/{n}", sink) for n, sink in enumerate(sinks)]
    await asyncio.gather(*(session.perform(handle) for handle in handles))
    assert {handle.getinfo(pycurl.RESPONSE_CODE) for handle in handles} == {200}
    assert {bytes(sink.data) for sink in sinks} == {b"ok\n"}
    for handle in handles:
        handle.close()


async def test_more_requests_than_connections_wait_their_turn(http_base: str, epoll: bool) -> None:
    session = CurlSession(max_connections=2, epoll=epoll)
    handles = [request(f"{http_base}/slow?s=0.1") for _ in range(6)]
    started = time.monotonic()
    try:
        await asyncio.gather(*(session.perform(handle) for handle in handles))
    finally:
        session.close()
    assert {handle.getinfo(pycurl.RESPONSE_CODE) for handle in handles} == {200}
    assert time.monotonic() - started >= 0.3  # three rounds of two


async def test_refused(session: CurlSession) -> None:
    handle = request(f"http://127.0.0.1:{closed_port()}/")
    with pytest.raises(CurlError) as caught:
        await session.perform(handle)
    assert (caught.value.code, caught.value.os_errno) == (pycurl.E_COULDNT_CONNECT, errno.ECONNREFUSED)


async def test_timeout_on_a_server_that_never_answers(quiet_port: int, session: CurlSession) -> None:
    handle = request(f"http://127.0.0.1:{quiet_port}/")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await session.perform(handle)
    assert 0.25 < time.monotonic() - started < 2
    assert session.in_flight == 0


async def test_cancelling_removes_the_transfer(quiet_port: int, http_base: str, session: CurlSession) -> None:
    await session.perform(request(f"{http_base}/ok"))  # the loop's multi handle exists: count from here
    await asyncio.sleep(0.1)  # the server's side of that connection closes
    before = _fd_count()
    handle = request(f"http://127.0.0.1:{quiet_port}/")
    task = asyncio.create_task(session.perform(handle))
    await asyncio.sleep(0.1)
    assert _fd_count() > before  # the transfer's socket
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _fd_count() <= before  # its connection is closed at once, and libcurl has let go of the handle
    assert session.in_flight == 0
    handle.setopt(pycurl.URL, f"{http_base}/ok")  # so it can run again
    await session.perform(handle)
    assert handle.getinfo(pycurl.RESPONSE_CODE) == 200


async def test_huge_response_stopped_at_the_cap(http_base: str, session: CurlSession) -> None:
    sink = Sink(cap=64 * 1024)
    started = time.monotonic()
    with pytest.raises(CurlError) as caught:
        await session.perform(request(f"{http_base}/huge", sink))
    assert caught.value.code == pycurl.E_WRITE_ERROR
    assert 64 * 1024 < len(sink.data) < 1024 * 1024
    assert time.monotonic() - started < 2


async def test_close_with_transfers_in_flight(quiet_port: int, ok_server: str, epoll: bool) -> None:
    before = _fd_count()
    session = CurlSession(max_connections=100, epoll=epoll)
    handles = [request(f"http://127.0.0.1:{quiet_port}/") for _ in range(10)]
    tasks = [asyncio.create_task(session.perform(handle)) for handle in handles]
    await asyncio.sleep(0.2)
    assert _fd_count() >= before + 10  # connected (the listener's backlog), waiting for an answer
    session.close()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, CurlClosedError) for result in results), results
    for handle in handles:
        handle.close()
    assert _fd_count() <= before  # every socket, and libcurl's own (its wake-up pair), closed
    with pytest.raises(RuntimeError, match="closed"):
        await session.perform(request(f"{ok_server}/"))


async def test_same_session_on_two_loops(http_base: str, epoll: bool) -> None:
    # One multi handle per event loop: a session made in one loop works in another.
    session = CurlSession(max_connections=10, epoll=epoll)

    def run_in_a_new_loop() -> int:
        async def one() -> int:
            handle = request(f"{http_base}/ok")
            await session.perform(handle)
            return int(handle.getinfo(pycurl.RESPONSE_CODE))

        return asyncio.run(one())

    try:
        assert await asyncio.to_thread(run_in_a_new_loop) == 200
        handle = request(f"{http_base}/ok")
        await session.perform(handle)
        assert handle.getinfo(pycurl.RESPONSE_CODE) == 200
    finally:
        session.close()
