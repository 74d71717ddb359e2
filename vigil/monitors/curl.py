"""Transfers through libcurl driven by the asyncio event loop: libcurl's multi *socket* interface, no threads.

Why: an HTTP check costs far less CPU when connecting, TLS, writing the request and parsing the response all
happen in C. libcurl's multi socket interface lets the event loop drive it: libcurl says which sockets to watch
(``M_SOCKETFUNCTION``) and when to wake it (``M_TIMERFUNCTION``), and each ready socket or due timer is one
``socket_action`` call. Python runs only when a socket is ready or a timer is due: the checks a scheduler starts
together are all started by one timer wake-up.

Where the sockets are watched: on Linux, in an epoll set of this module's own, which the loop watches as a
single reader; one callback then acts on every socket ready at that moment, and a change of what libcurl waits
for is one ``epoll_ctl`` instead of a loop handle made and freed (three per check). That cut the event loop's
CPU per check by about a tenth at 50 checks a second (BENCHMARKS.md). Elsewhere, each socket is a
``loop.add_reader``/``add_writer`` of its own. Timers are ``loop.call_later`` either way.

It works on every loop that implements ``add_reader`` (asyncio's default selector loop and uvloop, not Windows'
proactor loop). Exceptions::

    Exception
    └── CurlError             a transfer that libcurl ended with an error (code, message, errno)
        └── CurlClosedError   the transfer was still running when its session was closed

pycurl 7.49 ships a similar ``AsyncCurlMulti``; this one stays because Vigil supports pycurl from 7.45.3, and
because cancelling a transfer here removes its handle from libcurl at once (not on the next tick), so the caller
can read what the transfer got to and close the handle as the cancellation unwinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import select

import pycurl

__all__ = ["CurlClosedError", "CurlError", "CurlLoop", "CurlSession"]


class CurlError(Exception):
    """A transfer that libcurl ended with an error.

    ``code`` is libcurl's ``CURLE_*`` number, ``message`` its text ("Failed to connect to …"), ``os_errno`` the
    last OS error libcurl saw (0 when none), which says more than the message about refused or reset connections.
    """

    def __init__(self, code: int, message: str, os_errno: int = 0) -> None:
        super().__init__(code, message, os_errno)
        self.code = code
        self.message = message
        self.os_errno = os_errno

    def __str__(self) -> str:
        return self.message or f"libcurl error {self.code}"


class CurlClosedError(CurlError):
    """The transfer was still running when its session was closed."""

    def __init__(self) -> None:
        super().__init__(pycurl.E_ABORTED_BY_CALLBACK, "the HTTP client was closed")


class CurlLoop:
    """One ``pycurl.CurlMulti`` driven by one event loop; :meth:`perform` runs a transfer, :meth:`close` ends all.

    Everything here runs in the loop's thread: libcurl calls the socket and timer callbacks from inside
    ``socket_action`` (or ``add_handle``), which only ever runs in that thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_connections: int, epoll: bool | None = None) -> None:
        self.loop = loop
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        # Transfers past this many open connections wait in libcurl's queue (within their caller's timeout).
        self._multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, max_connections)
        self._futures: dict[pycurl.Curl, asyncio.Future[None]] = {}
        self._watched: dict[int, int] = {}  # socket → the POLL_IN/POLL_OUT bits being watched
        self._timer: asyncio.TimerHandle | None = None
        # Where sockets are watched: an epoll set of our own, which the loop watches as one reader (Linux), or
        # the loop itself, one reader or writer per socket (elsewhere; epoll=False forces it, for the tests).
        self._epoll: select.epoll | None = None
        if epoll if epoll is not None else hasattr(select, "epoll"):
            self._epoll = select.epoll()
            loop.add_reader(self._epoll.fileno(), self._on_ready)
        self.closed = False

    @property
    def in_flight(self) -> int:
        """The number of transfers added and not finished."""
        return len(self._futures)

    async def perform(self, handle: pycurl.Curl) -> None:
        """Run the transfer ``handle`` is set up for; return when it is done.

        Raises :class:`CurlError` when libcurl ends it with an error, :class:`CurlClosedError` when the loop is closed
        meanwhile, RuntimeError when it already was. Cancelling the caller removes the handle from libcurl before
        the cancellation goes on (its connection is closed), so the handle can be read, reused or closed at once.
        """
        if self.closed:
            raise RuntimeError("the HTTP client is closed")
        future = self.loop.create_future()
        self._futures[handle] = future
        try:
            self._multi.add_handle(handle)  # libcurl asks for a timer at 0 ms: the transfer starts on the next tick
        except BaseException:
            del self._futures[handle]
            raise
        try:
            await future
        except asyncio.CancelledError:
            self._abandon(handle)
            raise

    def close(self) -> None:
        """Stop every transfer (each raises :class:`CurlClosedError`), unwatch every socket, free the multi handle."""
        if self.closed:
            return
        self.closed = True  # from here on, the callbacks below do nothing
        self._cancel_timer()
        if self._epoll is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
        elif not self.loop.is_closed():
            for fd, bits in self._watched.items():
                self._unwatch(fd, bits)
        self._watched.clear()
        pending, self._futures = self._futures, {}
        for handle, future in pending.items():
            self._multi.remove_handle(handle)  # closes the transfer's connection
            if not future.done():
                future.set_exception(CurlClosedError())
        self._multi.close()

    def _abandon(self, handle: pycurl.Curl) -> None:
        if self._futures.pop(handle, None) is not None and not self.closed:
            self._multi.remove_handle(handle)

    # libcurl's callbacks. They must not call back into libcurl's multi functions (only the loop's), and they
    # return None, which pycurl passes on as 0 (success).

    def _on_socket(self, what: int, fd: int, multi: object, socketp: object) -> None:
        if self.closed:  # close() has unwatched everything, and the loop may be closed too
            return
        old = self._watched.get(fd, 0)
        new = 0 if what == pycurl.POLL_REMOVE else what  # POLL_NONE 0, POLL_IN 1, POLL_OUT 2, POLL_INOUT 3
        if self._epoll is not None:
            _epoll_watch(self._epoll, fd, old, new)
        else:
            self._loop_watch(fd, old, new)
        if new:
            self._watched[fd] = new
        else:
            self._watched.pop(fd, None)

    def _loop_watch(self, fd: int, old: int, new: int) -> None:
        if new & pycurl.POLL_IN and not old & pycurl.POLL_IN:
            self.loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if new & pycurl.POLL_OUT and not old & pycurl.POLL_OUT:
            self.loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        self._unwatch(fd, old & ~new)

    def _unwatch(self, fd: int, bits: int) -> None:
        if bits & pycurl.POLL_IN:
            self.loop.remove_reader(fd)
        if bits & pycurl.POLL_OUT:
            self.loop.remove_writer(fd)

    def _on_timer(self, timeout_ms: int) -> None:
        # libcurl wants one timer, replaced on each call; -1 removes it. 0 means "as soon as possible", which must
        # still wait for the next tick: socket_action may not be called from inside a libcurl callback.
        self._cancel_timer()
        if timeout_ms >= 0 and not self.closed:
            self._timer = self.loop.call_later(timeout_ms / 1000, self._on_timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timeout(self) -> None:
        self._timer = None
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def _on_ready(self) -> None:
        # The epoll set has ready sockets: act on each of them in this one callback. The loop wakes once for
        # every socket ready at that moment, not once per socket, and watching costs an epoll_ctl, not a loop
        # handle made and freed each time libcurl changes its mind.
        epoll = self._epoll
        if self.closed or epoll is None:
            return
        try:
            ready = epoll.poll(0)
        except OSError:  # EINTR; the set is still readable, so the loop calls again
            return
        for fd, mask in ready:
            watched = self._watched.get(fd)
            if watched is None:
                continue  # unwatched by an earlier socket_action of this same round
            events = (pycurl.CSELECT_IN if mask & select.EPOLLIN else 0) | (
                pycurl.CSELECT_OUT if mask & select.EPOLLOUT else 0
            )
            if mask & (select.EPOLLERR | select.EPOLLHUP):
                # As the loops report them: to whatever libcurl waits for (POLL_* and CSELECT_* share their bits).
                events |= watched
            try:
                self._multi.socket_action(fd, events)
            except pycurl.error as exc:
                self._fail_all(exc)
                return
        self._collect()

    def _act(self, fd: int, events: int) -> None:
        if self.closed:
            return
        try:
            self._multi.socket_action(fd, events)
        except pycurl.error as exc:  # the multi handle itself failed (out of memory): fail all rather than hang
            self._fail_all(exc)
            return
        # Read the finished transfers after every call, not only when the running count drops: under load, libcurl
        # 8.23 queued completions that the count did not show, and those checks hung until their timeout. An
        # empty read costs well under a microsecond.
        self._collect()

    def _collect(self) -> None:
        while True:
            queued, done, failed = self._multi.info_read()
            for handle in done:
                self._finish(handle, None)
            for handle, code, message in failed:
                self._finish(handle, CurlError(code, message, handle.getinfo(pycurl.OS_ERRNO)))
            if not queued:
                return

    def _finish(self, handle: pycurl.Curl, error: CurlError | None) -> None:
        future = self._futures.pop(handle, None)
        if future is None:
            return
        self._multi.remove_handle(handle)
        if future.done():  # cancelled, and the canceller has not run yet
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def _fail_all(self, exc: pycurl.error) -> None:
        code, message = (exc.args[0], str(exc.args[1])) if len(exc.args) == 2 else (-1, str(exc))
        pending, self._futures = self._futures, {}
        for handle, future in pending.items():
            self._multi.remove_handle(handle)
            if not future.done():
                future.set_exception(CurlError(int(code), f"libcurl multi error: {message}"))


def _epoll_watch(epoll: select.epoll, fd: int, old: int, new: int) -> None:
    # A socket that libcurl closed without a POLL_REMOVE has left the set by itself: register and unregister
    # forgive that, so a number the kernel hands out again is still watched.
    if not new:
        with contextlib.suppress(OSError):
            epoll.unregister(fd)
        return
    mask = (select.EPOLLIN if new & pycurl.POLL_IN else 0) | (select.EPOLLOUT if new & pycurl.POLL_OUT else 0)
    if old:
        try:
            epoll.modify(fd, mask)
            return
        except FileNotFoundError:
            pass
    try:
        epoll.register(fd, mask)
    except FileExistsError:
        epoll.modify(fd, mask)


class CurlSession:
    """The :class:`CurlLoop` of each event loop that runs transfers for one client, made on its first transfer.

    Needs no event loop to be made. Easy handles are the caller's: make them (``duphandle()`` of a handle holding
    the common options is the cheapest way), run them with :meth:`perform`, close them.
    """

    def __init__(self, *, max_connections: int, epoll: bool | None = None) -> None:
        self._max_connections = max_connections
        self._epoll = epoll  # None: an epoll set where there is one (see CurlLoop)
        self._loops: dict[asyncio.AbstractEventLoop, CurlLoop] = {}
        self.closed = False

    @property
    def in_flight(self) -> int:
        """The number of transfers added and not finished, on every loop."""
        return sum(driver.in_flight for driver in self._loops.values())

    async def perform(self, handle: pycurl.Curl) -> None:
        """Run the transfer on the running loop's ``CurlMulti``; see :meth:`CurlLoop.perform`."""
        loop = asyncio.get_running_loop()
        driver = self._loops.get(loop)
        if driver is None:
            driver = self._start(loop)
        await driver.perform(handle)

    def _start(self, loop: asyncio.AbstractEventLoop) -> CurlLoop:
        if self.closed:
            raise RuntimeError("the HTTP client is closed")
        for old in [old for old in self._loops if old.is_closed()]:  # a loop gone without closing the client
            self._loops.pop(old).close()
        driver = self._loops[loop] = CurlLoop(loop, max_connections=self._max_connections, epoll=self._epoll)
        return driver

    def close(self) -> None:
        """Stop every transfer in flight (they raise :class:`CurlClosedError`) and free the multi handles."""
        self.closed = True
        loops, self._loops = list(self._loops.values()), {}
        for driver in loops:
            driver.close()
