"""The gateway process's listening socket: INFOU_REUSE_PORT lets several processes share it."""

import errno
import socket

import pytest

from infou_devtools.engines import free_port
from infou_gateway.main import shared_socket
from infou_gateway.settings import GatewaySettings


def test_gateway_processes_with_reuse_port_listen_on_one_port_and_others_are_refused() -> None:
    settings = GatewaySettings(host="127.0.0.1", port=free_port(), reuse_port=True)
    first, second = shared_socket(settings), shared_socket(settings)
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        first.listen()
        second.listen()
        # Both listen: the kernel hands each new connection to one of them.
        with socket.create_connection(("127.0.0.1", settings.port), timeout=5):
            pass
        with pytest.raises(OSError, match="in use") as refused:
            plain.bind(("127.0.0.1", settings.port))
        assert refused.value.errno == errno.EADDRINUSE
    finally:
        for sock in (first, second, plain):
            sock.close()
