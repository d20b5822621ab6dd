"""Free ports for the stack's servers come from below the kernel's range for outgoing connections,
where no connection opened in the meantime can take them."""

from __future__ import annotations

import socket

from cqrs_demo.runtime import ports


def test_a_free_port_is_below_the_range_of_outgoing_connections(tmp_path, monkeypatch):
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text("20000\t30000\n")
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", ephemeral)
    chosen = {ports.free_port() for _ in range(20)}
    assert all(ports.LOWEST <= port < 20000 for port in chosen)
    assert len(chosen) > 1  # spread out, so that two stacks starting together do not collide
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", chosen.pop()))


def test_a_port_that_is_held_is_not_chosen(tmp_path, monkeypatch):
    ephemeral = tmp_path / "ip_local_port_range"
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    held.listen()
    try:
        ephemeral.write_text(f"{port + 1} 60999\n")
        monkeypatch.setattr(ports, "EPHEMERAL_RANGE", ephemeral)
        monkeypatch.setattr(ports, "LOWEST", port)  # the only candidate is the held one
        assert ports.free_port() != port
    finally:
        held.close()


def test_without_the_kernels_range_any_free_port_will_do(tmp_path, monkeypatch):
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", tmp_path / "missing")
    port = ports.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
