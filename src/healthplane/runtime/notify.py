"""Readiness notification for systemd (``Type=notify``), without libsystemd.

systemd passes ``NOTIFY_SOCKET``, the path of a Unix datagram socket (a
leading ``@`` is an abstract-namespace name); a service tells it "READY=1"
once it serves and "STOPPING=1" when it begins to stop, one datagram each
(sd_notify(3)). Without the variable (not under systemd) nothing is sent.
"""

from __future__ import annotations

import os
import socket


def sd_notify(state: str) -> bool:
    """Send one notification such as "READY=1"; True when it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False     # systemd gone or not listening: nothing to tell
    return True


def ready(status: str = "") -> bool:
    """READY=1, with a STATUS= line for ``systemctl status`` when given."""
    return sd_notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping() -> bool:
    return sd_notify("STOPPING=1")
