#!/usr/bin/env python3
"""A wss:// client for tests/proxy/run.sh. Standard library only: ssl, socket and just
enough RFC 6455 framing (masked frames out; unmasked frames in, fragments joined).

Against the TLS proxy in front of Tandem (which runs with MAX_CONNECTIONS_PER_IP=1), from
distinct loopback source addresses:
  1. GET /health from 127.0.0.4: 200, JSON with "status":"ok".
  2. A session from 127.0.0.2: client_hello, create_room -> room_state, ping -> pong (the
     protocol's) and a WebSocket Ping -> Pong.
  3. While it is open, a second upgrade from 127.0.0.2 gets 429 (Tandem counts the client,
     not the proxy), and one from 127.0.0.3 claiming X-Forwarded-For: 127.0.0.2 gets 101
     (the spoofed header is not believed).
  4. The party page through the proxy: GET / from 127.0.0.5 is 200 HTML with its
     Content-Security-Policy, and the page's own WebSocket (Origin https://<name>:<port>,
     not on ALLOWED_ORIGINS) from 127.0.0.5 is 101: nginx passes the browser's Host on.
  5. The session closes cleanly (1000).
Exits 0 on success; otherwise prints what failed and exits 1.
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import sys

TIMEOUT = 10.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def tls_context(cafile):
    context = ssl.create_default_context(cafile=cafile)
    # A self-signed certificate is its own trust anchor. X509_STRICT (on by default in
    # Python 3.13) wants CA-style extensions such a certificate need not have.
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    return context


def tls_connect(args, source):
    """A TLS connection to the proxy from loopback address `source`, the certificate checked
    against the self-signed one and `args.name` (as a browser would: SNI and Host too)."""
    raw = socket.create_connection(
        ("127.0.0.1", args.port), timeout=TIMEOUT, source_address=(source, 0)
    )
    return tls_context(args.cafile).wrap_socket(raw, server_hostname=args.name)


class WebSocket:
    def __init__(self, args, source, path="/ws", extra_headers=(), origin=None):
        self.sock = tls_connect(args, source)
        self.buf = b""
        key = base64.b64encode(os.urandom(16))
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {args.name}:{args.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key.decode()}",
            "Sec-WebSocket-Version: 13",
            f"Origin: {origin or args.origin}",
            *extra_headers,
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.status == 101:
            expected = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
            accept = self.headers.get("sec-websocket-accept")
            check(accept == expected, f"bad Sec-WebSocket-Accept {accept!r}")

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            check(chunk, "connection closed during the handshake")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            check(chunk, "connection closed mid-frame")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send_frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, value):
        self.send_frame(0x1, json.dumps(value).encode())

    def recv_frame(self):
        """One message: (opcode, payload); fragments joined."""
        opcode, parts = None, []
        while True:
            b0, b1 = self._read_exact(2)
            fin, op = b0 & 0x80, b0 & 0x0F
            check(not b1 & 0x80, "server frame is masked")
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read_exact(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read_exact(8))
            payload = self._read_exact(n)
            if op >= 0x8:  # control frames may sit between fragments
                if op == 0x9:
                    self.send_frame(0xA, payload)
                    continue
                return op, payload
            if op != 0x0:
                opcode = op
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts)

    def recv_json_of(self, wanted):
        """The next message of type `wanted` (others, e.g. room_list, are skipped)."""
        seen = []
        while True:
            opcode, payload = self.recv_frame()
            check(opcode == 0x1, f"expected a text message, got opcode {opcode} {payload!r} "
                                 f"after {seen}")
            message = json.loads(payload)
            if message.get("type") == wanted:
                return message
            seen.append(message.get("type"))
            check(len(seen) < 20, f"no {wanted} among {seen}")

    def close(self):
        self.send_frame(0x8, struct.pack("!H", 1000))
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                check(code == 1000, f"close answered with {code}")
                break
        self.sock.close()


def https_get(args, source, path):
    """One GET through the proxy from `source`: (status, lower-case headers, body)."""
    sock = tls_connect(args, source)
    request = f"GET {path} HTTP/1.1\r\nHost: {args.name}:{args.port}\r\nConnection: close\r\n\r\n"
    sock.sendall(request.encode())
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip() for n, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def health(args):
    status, headers, body = https_get(args, "127.0.0.4", "/health")
    check(status == 200, f"/health answered {status}: {body!r}")
    ctype = headers.get("content-type", "")
    check("json" in ctype, f"/health Content-Type {ctype!r}")
    document = json.loads(body)
    check(document.get("status") == "ok", f"/health body {document}")
    print(f"proxy-client: GET https://{args.name}:{args.port}/health -> 200 {body.decode()}")


def party_page(args):
    status, headers, body = https_get(args, "127.0.0.5", "/")
    check(status == 200, f"GET / answered {status}")
    check(headers.get("content-type", "").startswith("text/html"), f"GET / headers {headers}")
    check("script-src 'sha256-" in headers.get("content-security-policy", ""), f"GET / headers {headers}")
    check(body.startswith(b"<!doctype html>"), f"GET / body {body[:80]!r}")
    print(f"proxy-client: GET https://{args.name}:{args.port}/ -> 200 the party page ({len(body)} bytes)")
    own = f"https://{args.name}:{args.port}"
    ws = WebSocket(args, "127.0.0.5", origin=own)
    check(ws.status == 101, f"the page's own WebSocket (Origin {own}) got {ws.status}, not 101")
    ws.recv_json_of("client_hello")
    ws.close()
    print(f"proxy-client: the page's WebSocket, Origin {own} -> 101")


def session(args):
    ws = WebSocket(args, "127.0.0.2")
    check(ws.status == 101, f"upgrade answered {ws.status}")
    hello = ws.recv_json_of("client_hello")
    client_id = hello.get("payload", {}).get("client_id")
    check(client_id, f"client_hello without client_id: {hello}")
    print(f"proxy-client: wss upgrade 101, client_hello client_id={client_id}")

    ws.send_json({"type": "create_room", "payload": {"name": "proxy"}})
    state = ws.recv_json_of("room_state")
    payload = state.get("payload", {})
    check(payload.get("name") == "proxy", f"room_state {state}")
    check(payload.get("host_id") == client_id, f"room_state host is not us: {state}")
    room = state.get("room")
    print(f"proxy-client: create_room -> room_state room={room} host_id={client_id}")

    ws.send_json({"type": "ping", "room": room, "payload": {"probe": 42}})
    pong = ws.recv_json_of("pong")
    check(pong.get("payload") == {"probe": 42}, f"pong payload {pong}")
    print(f"proxy-client: ping -> pong server_ts={pong.get('server_ts')}")

    ws.send_frame(0x9, b"through-nginx")
    opcode, payload = ws.recv_frame()
    check((opcode, payload) == (0xA, b"through-nginx"), f"WebSocket Ping got {opcode} {payload!r}")
    print("proxy-client: WebSocket Ping -> Pong")
    return ws


def attribution(args):
    second = WebSocket(args, "127.0.0.2")
    check(second.status == 429,
          f"a second connection from 127.0.0.2 (MAX_CONNECTIONS_PER_IP=1) got {second.status}, "
          f"not 429: Tandem does not count it under the client's address")
    second.sock.close()
    print("proxy-client: second connection from 127.0.0.2 -> 429 (counted under the client)")

    other = WebSocket(args, "127.0.0.3", extra_headers=["X-Forwarded-For: 127.0.0.2"])
    check(other.status == 101,
          f"a connection from 127.0.0.3 claiming X-Forwarded-For: 127.0.0.2 got {other.status}, "
          f"not 101: a client-supplied header was believed, or all clients share one address")
    other.recv_json_of("client_hello")
    other.close()
    print("proxy-client: connection from 127.0.0.3 spoofing X-Forwarded-For -> 101 (not believed)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True, help="the proxy's TLS port")
    parser.add_argument("--cafile", required=True, help="the proxy's self-signed certificate")
    parser.add_argument("--name", default="localhost", help="TLS server name")
    parser.add_argument("--origin", required=True, help="Origin header sent on upgrades")
    args = parser.parse_args()
    try:
        health(args)
        ws = session(args)
        attribution(args)
        party_page(args)
        ws.close()
        print("proxy-client: session closed 1000")
    except (Failure, OSError, ValueError, ssl.SSLError) as error:
        print(f"proxy-client: FAIL: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
