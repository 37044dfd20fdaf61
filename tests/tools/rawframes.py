#!/usr/bin/env python3
"""Sends or counts test frames on one interface (run inside a test namespace).

  rawframes.py send IFACE COUNT [LEN]   sends COUNT frames of LEN bytes (default 60)
  rawframes.py recv IFACE SECONDS [DST] prints "ready", then counts frames of the test
                                        ethertype (and destination MAC DST, if given) until
                                        SECONDS pass with none; prints the count
Frames: dst 02:fe:00:00:00:02, src 02:fe:00:00:00:01, ethertype 0x88b5 (IEEE local
experimental), then a 4-byte sequence number, zero padded.
"""
import socket
import struct
import sys

ETHERTYPE = 0x88B5
DST = bytes.fromhex("02fe00000002")
SRC = bytes.fromhex("02fe00000001")


def send(iface, count, length):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for i in range(count):
        frame = DST + SRC + struct.pack("!HI", ETHERTYPE, i)
        s.send(frame.ljust(length, b"\0"))
    print(count, flush=True)


def recv(iface, seconds, dst=None):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE))
    s.bind((iface, 0))
    s.settimeout(seconds)
    print("ready", flush=True)
    n = 0
    try:
        while True:
            data, addr = s.recvfrom(65535)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            if dst is not None and data[:6] != dst:
                continue
            n += 1
    except socket.timeout:
        pass
    print(n, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 60)
    elif sys.argv[1] == "recv":
        recv(sys.argv[2], float(sys.argv[3]),
             bytes.fromhex(sys.argv[4].replace(":", "")) if len(sys.argv) > 4 else None)
    else:
        sys.exit(__doc__)
