"""tests.services.server.free_ports: the ports the tests' servers are started on."""
import socket

import pytest

from tests.services import server


def test_ports_come_from_below_the_kernels_range_for_outgoing_connections_and_do_not_repeat():
    # a port the kernel picks may be given to an outgoing connection before the server binds it
    # (CI: "cannot listen on 127.0.0.1:51499 (up.sql_port): Address already in use")
    if not server._worker_slice():
        pytest.skip("this system's outgoing range starts too low to pick ports below it")
    ports = [server.free_port() for _ in range(150)] + server.free_ports(50)
    assert len(set(ports)) == 200
    assert all(server._FIRST_PORT <= port < server._ephemeral_low() for port in ports)


def test_a_port_in_use_is_not_handed_out(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(server, "_worker_slice", lambda: range(port, port + 1))
        assert port not in server.free_ports(3)  # the kernel picks them instead


def test_each_xdist_worker_draws_from_its_own_slice(monkeypatch):
    slices = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
        slices.append(set(server._worker_slice()))
    assert all(len(s) > 300 for s in slices)
    assert not (slices[0] & slices[1]) and not (slices[1] & slices[2]) and not (slices[0] & slices[2])
