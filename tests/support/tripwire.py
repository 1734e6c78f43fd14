"""A listening socket on 127.0.0.1 that counts connections: the fake host that must see none.

Tests of the credential rules point a refused URL at it and assert ``connections() == 0``, so a
refusal is proven by nothing having been sent, not by an error message alone.
"""

from __future__ import annotations

import socket


class Listener:
    """A TCP socket on 127.0.0.1 that counts the connections made to it (none may arrive)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def connections(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()
