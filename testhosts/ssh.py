"""paramiko connections to the test hosts: readiness checks and running commands.

Host keys are known in advance (the harness made them), so connections verify them strictly.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paramiko

from .errors import HarnessError, HostTimeout, HostUnreachable


class SshPool:
    def __init__(self, identity_file: Path) -> None:
        self.identity_file = identity_file
        self._key: paramiko.PKey | None = None
        self._clients: dict[str, paramiko.SSHClient] = {}
        self._lock = threading.Lock()

    @property
    def key(self) -> paramiko.PKey:
        if self._key is None:
            self._key = paramiko.Ed25519Key.from_private_key_file(str(self.identity_file))
        return self._key

    def connect(self, name: str, address: str, host_key_line: str | None, timeout: float,
                port: int = 22) -> paramiko.SSHClient:
        started = time.monotonic()
        client = paramiko.SSHClient()
        if host_key_line:
            keytype, blob = host_key_line.split()[:2]
            client.get_host_keys().add(address, keytype, paramiko.PKey.from_type_string(keytype, _b64(blob)))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(address, port=port, username="root", pkey=self.key, timeout=timeout,
                           banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout,
                           allow_agent=False, look_for_keys=False)
        except TimeoutError as exc:
            client.close()
            raise HostTimeout(f"{name} ({address}): no SSH answer within {timeout:.1f} s") from exc
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HarnessError(f"{name} ({address}) presented a different host key than the one it was given: "
                               f"{exc}") from exc
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            # paramiko words a stalled handshake in many ways ("No existing session", "Error reading
            # SSH protocol banner"...): what counts is that the host used up the time it was given.
            if time.monotonic() - started >= timeout * 0.9 or "timed out" in str(exc).lower():
                raise HostTimeout(f"{name} ({address}): no SSH answer within {timeout:.1f} s ({exc})") from exc
            raise HostUnreachable(f"{name} ({address}): SSH failed: {exc}") from exc
        return client

    def client(self, name: str, address: str, host_key_line: str | None, timeout: float) -> paramiko.SSHClient:
        with self._lock:
            client = self._clients.get(name)
            transport = client.get_transport() if client else None
            if client is not None and transport is not None and transport.is_active():
                return client
            if client is not None:
                client.close()
                del self._clients[name]
        client = self.connect(name, address, host_key_line, timeout)
        with self._lock:
            self._clients[name] = client
        return client

    def drop(self, name: str) -> None:
        with self._lock:
            client = self._clients.pop(name, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()

    def run(self, name: str, address: str, host_key_line: str | None, command: str,
            timeout: float) -> tuple[int, str, str]:
        deadline = time.monotonic() + timeout
        client = self.client(name, address, host_key_line, timeout)
        transport = client.get_transport()
        try:
            if transport is None:
                raise paramiko.SSHException("no transport")
            channel = transport.open_session(timeout=max(0.1, deadline - time.monotonic()))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.drop(name)
            if time.monotonic() >= deadline:
                raise HostTimeout(f"{name}: no SSH session within {timeout:.1f} s") from exc
            # a stale cached connection (host restarted): one fresh attempt
            client = self.client(name, address, host_key_line, max(0.1, deadline - time.monotonic()))
            transport = client.get_transport()
            assert transport is not None
            try:
                channel = transport.open_session(timeout=max(0.1, deadline - time.monotonic()))
            except (paramiko.SSHException, EOFError, OSError) as exc2:
                self.drop(name)
                raise HostUnreachable(f"{name}: cannot open an SSH session: {exc2}") from exc2
        out = bytearray()
        err = bytearray()
        try:
            channel.exec_command(command)
            while True:
                if channel.recv_ready():
                    out += channel.recv(65536)
                    continue
                if channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                    continue
                if channel.exit_status_ready() or channel.closed:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise HostTimeout(f"{name}: {command!r} did not finish within {timeout:.1f} s")
                select.select([channel], [], [], min(remaining, 0.2))
            while channel.recv_ready():
                out += channel.recv(65536)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            rc = channel.recv_exit_status()
        except HostTimeout:
            channel.close()
            self.drop(name)
            raise
        finally:
            channel.close()
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    def server_key(self, name: str, address: str, timeout: float) -> paramiko.PKey:
        """The host key the live sshd presents (fresh connection, nothing cached)."""
        client = self.connect(name, address, None, timeout)
        try:
            transport = client.get_transport()
            assert transport is not None
            return transport.get_remote_server_key()
        finally:
            client.close()

    def wait_ready(self, name: str, address: str, host_key_line: str | None, timeout: float,
                   still_starting: Callable[[], str | None]) -> None:
        """Until `timeout`: a paramiko login (with our key, checking the host key) must succeed.

        `still_starting` returns a reason to give up early (the host's nspawn died), else None.
        """
        deadline = time.monotonic() + timeout
        last = "no attempt yet"
        while time.monotonic() < deadline:
            problem = still_starting()
            if problem:
                raise HarnessError(f"{name} did not come up: {problem}")
            try:
                with socket.create_connection((address, 22), timeout=1.0):
                    pass
                self.drop(name)
                self.client(name, address, host_key_line, min(5.0, max(0.5, deadline - time.monotonic())))
                return
            except (OSError, HarnessError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise HostTimeout(f"{name} ({address}): sshd did not accept a login within {timeout:.0f} s (last: {last})")


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)
