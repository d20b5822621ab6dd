"""A TCP proxy that can cut a link on demand: how the workbench stages a broker outage.

Stopping the real RabbitMQ would break every other stack and test run on the machine, so a
stack started with `faults=True` reaches RabbitMQ through one of these instead. `cut()` drops
every open connection and refuses new ones until `restore()`: from the stack's processes it
looks exactly like the broker going away and coming back, and nobody else is touched.

`blackhole()` is the nastier failure: a link that goes silent. Connections stay open, but
nothing gets through in either direction, and new connections are accepted and then ignored,
as behind a dead router or a crashed host. Nobody is told anything; only timeouts notice.
`restore()` lets the held bytes through again, as TCP would once the route is back.

`slow(seconds)` is a link that works but is far away, as to a broker in another zone: every
chunk of bytes waits `seconds` before it is forwarded, in each direction, so a request and its
answer cost twice that. A consumer that waits for each message before taking the next one is
then bound by the round trip, not by its CPU: notebook 08 measures rates that a busy machine
cannot blur. `slow(0)` brings the link back to full speed.
"""

from __future__ import annotations

import socket
import threading
import time

import pika

from cqrs_demo.runtime.ports import free_port


def broker_link(amqp_url: str) -> tuple["LinkProxy", str]:
    """A (not yet started) link to the broker of `amqp_url`, and the URL that reaches it through the link."""
    params = pika.URLParameters(amqp_url)
    link = LinkProxy(params.host, params.port)
    proxied = amqp_url.replace(f"{params.host}:{params.port}", f"127.0.0.1:{link.port}")
    if proxied == amqp_url:
        raise ValueError(f"cannot route {amqp_url} through the fault proxy; give host:port")
    return link, proxied


class LinkProxy:
    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._cut = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._running = threading.Event()
        self._delay = 0.0

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    @property
    def is_blackholed(self) -> bool:
        return not self._flowing.is_set()

    def start(self) -> "LinkProxy":
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._running.set()
        threading.Thread(target=self._accept, name="link-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self._running.clear()
        if self._listener:
            self._listener.close()
        self._drop_all()
        self._flowing.set()  # held pumps wake up, find their sockets closed, and end

    def cut(self) -> None:
        self._cut.set()
        self._drop_all()

    def blackhole(self) -> None:
        self._flowing.clear()

    @property
    def delay(self) -> float:
        return self._delay

    def slow(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a link's delay is a duration, got {seconds}")
        self._delay = seconds

    def restore(self) -> None:
        self._cut.clear()
        self._flowing.set()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self) -> None:
        while self._running.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            if not self._flowing.is_set():
                with self._lock:  # accepted, then ignored: a connect that never completes
                    self._open.add(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                self._flowing.wait()  # blackholed: bytes, and a close, are held as by a dead route
                if not data:
                    break
                if self._delay:
                    time.sleep(self._delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, sink}
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
