"""A lease holder on the sanlock socket that restricted itself: ``restricted_holder.py SOCKET DEV FLAGS MARK``.

Registers, sends RESTRICT with FLAGS, acquires LS:R1 at 1 MiB of DEV, prints the two results, then
waits. On SIGTERM it writes "TERM" to MARK and exits 0, so the test sees which signal ended it."""

from __future__ import annotations

import signal
import socket
import struct
import sys
import time
from types import FrameType

from lockengine.daemon.sanlock import wire
from lockengine.daemon.sanlock.wire import Header, WireDisk, WireOptions, WireResource

M = 1 << 20


def main() -> None:
    path, dev, flags, mark = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    def on_term(signum: int, frame: FrameType | None) -> None:
        with open(mark, "w") as f:
            f.write("TERM")
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(Header(cmd=wire.REGISTER).encode())
    results = []
    payload = WireResource("LS", "R1", disks=(WireDisk(dev, M),)).encode() + WireOptions("restricted").encode()
    for h, body in [(Header(cmd=wire.RESTRICT, cmd_flags=flags, data2=wire.PID_SELF), b""),
                    (Header(cmd=wire.ACQUIRE, length=32 + len(payload), data=1, data2=wire.PID_SELF), payload)]:
        s.sendall(h.encode() + body)
        words = struct.unpack("<8I", s.recv(32, socket.MSG_WAITALL))
        results.append(struct.unpack("<i", struct.pack("<I", words[6]))[0])
    print("ready", *results, flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
