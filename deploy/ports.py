"""Free loopback ports, and the probes that tell when a started process is ready."""

from __future__ import annotations

import socket
from collections.abc import Collection, Iterable

import dns.exception
import dns.message
import dns.query
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_ports(count: int, host: str = "127.0.0.1", exclude: Collection[int] = ()) -> list[int]:
    """count distinct ports, each free for both TCP and UDP a moment ago.

    Every socket is held until all ports are chosen, so the ports differ from
    one another; exclude skips ports already promised to something else.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            if len(held) > 8 * count + 64:
                raise OSError(f"no {count} free ports on {host}")
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(tcp)
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            if port in exclude or port in ports:
                continue
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(udp)
            try:
                udp.bind((host, port))
            except OSError:
                continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports



class PortBook:
    """The ports of one run: those its configs promise to someone and those
    handed out already, so that none is handed out twice."""

    def __init__(self, promised: Iterable[int]) -> None:
        self.taken = set(promised)

    def take(self, host: str = "127.0.0.1") -> int:
        """A free port no one was promised or handed."""
        port = free_port(host, exclude=self.taken)
        self.taken.add(port)
        return port

def free_port(host: str = "127.0.0.1", exclude: Collection[int] = ()) -> int:
    """A port free for TCP and UDP a moment ago (bind port 0, read it, close)."""
    return free_ports(1, host, exclude)[0]


def port_is_free(host: str, port: int) -> bool:
    """True when both TCP and UDP port on host can be bound right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def grpc_serving(address: str, timeout: float = 1.0,
                 credentials: grpc.ChannelCredentials | None = None) -> bool:
    """True when the grpc.health.v1 service at address answers SERVING."""
    try:
        with (grpc.insecure_channel(address) if credentials is None
              else grpc.secure_channel(address, credentials)) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def dns_answers(host: str, port: int, name: str) -> bool:
    try:
        dns.query.udp(dns.message.make_query(name, "SOA"), host, port=port, timeout=0.5)
        return True
    except (OSError, dns.exception.DNSException):
        return False
