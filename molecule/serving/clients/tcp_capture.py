"""Capture TCP payloads on every interface of this host for SECONDS and report, per PORT, how
many payload bytes passed, how many TLS application-data records they held, and whether MARKER
was among them: what a tap on the wire would see.

Usage: tcp_capture.py SECONDS MARKER PORT [PORT ...] (as root: a raw packet socket)."""

import json
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800


def main() -> None:
    seconds, marker = float(sys.argv[1]), sys.argv[2].encode()
    ports = [int(port) for port in sys.argv[3:]]
    seen = {port: bytearray() for port in ports}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL)) as capture:
        capture.settimeout(0.2)
        print("capturing", flush=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                frame = capture.recv(65535)
            except TimeoutError:
                continue
            if len(frame) < 34 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
                continue
            ip = frame[14:]
            header = (ip[0] & 0x0F) * 4
            if ip[9] != socket.IPPROTO_TCP:
                continue
            total = struct.unpack("!H", ip[2:4])[0]
            tcp = ip[header:total]
            source, destination = struct.unpack("!HH", tcp[:4])
            data = tcp[(tcp[12] >> 4) * 4 :]
            for port in ports:
                if data and port in (source, destination):
                    seen[port] += data
    report = {
        str(port): {
            "bytes": len(data),
            "tls_records": data.count(b"\x17\x03\x03"),
            "marker": marker in data,
        }
        for port, data in seen.items()
    }
    print(json.dumps(report))


main()
