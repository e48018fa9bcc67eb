#!/usr/bin/env python3
"""Raw HTTP/1.1 over TLS for end-to-end specs: the bytes go out exactly as
given (curl would normalise duplicate or odd headers, bad chunk sizes,
request lines), and slow or idle connections can be held open.

    raw_https.py --port N --ca FILE [--cert FILE --key FILE] MODE [options]

Modes (one JSON line on stdout, or in --out FILE when given):

  send     --data-hex HEX: send these bytes, read the answer until the server
           closes or --timeout. {"status", "head", "body", "closed", "elapsed", "error"}
  idle     complete the TLS handshake (--no-tls: not even that), send nothing,
           wait for the server to close. {"closed", "elapsed"} per connection
  drip     send --data-hex HEX, then one byte of --drip-hex every --interval
           seconds (TLS records of one byte) until the server closes or
           --duration ends (an empty --drip-hex: send nothing more).
           {"closed", "elapsed", "sent"} per connection
  hello    send a bare ClientHello (--hello sslv2: SSLv2 format offering SSL
           2.0 ciphers; sslv3: SSL 3.0 offering CBC suites), report what came
           back. {"answer_hex", "closed", "elapsed"}

--count N runs N connections of idle/drip at once: {"connections": [...],
"connected": n}. Only loopback addresses are used.
"""
import argparse
import os
import json
import socket
import ssl
import sys
import threading
import time


def tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(args.ca)
    ctx.check_hostname = False
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


def connect(args, use_tls=True):
    raw = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout)
    if not use_tls:
        return raw
    return tls_context(args).wrap_socket(raw, server_hostname="localhost")


def read_until_closed(sock, deadline):
    """Reads until EOF, an error or the deadline; returns (data, closed)."""
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return b"".join(chunks), False
        except (ssl.SSLError, OSError):
            return b"".join(chunks), True
        if not data:
            return b"".join(chunks), True
        chunks.append(data)


def mode_send(args):
    start = time.monotonic()
    out = {"status": None, "head": "", "body": "", "closed": False, "error": None}
    try:
        sock = connect(args)
    except (ssl.SSLError, OSError) as e:
        out["error"] = "connect: %s" % e
        out["elapsed"] = time.monotonic() - start
        return out
    try:
        sock.sendall(bytes.fromhex(args.data_hex))
    except (ssl.SSLError, OSError) as e:
        out["error"] = "send: %s" % e
    data, closed = read_until_closed(sock, start + args.timeout)
    out["closed"] = closed
    head, _, body = data.partition(b"\r\n\r\n")
    out["head"] = head.decode("latin-1")
    out["body"] = body.decode("latin-1")
    first = out["head"].split("\r\n", 1)[0].split(" ")
    if len(first) >= 2 and first[0].startswith("HTTP/") and first[1].isdigit():
        out["status"] = int(first[1])
    out["elapsed"] = time.monotonic() - start
    try:
        sock.close()
    except OSError:
        pass
    return out


def hold(args, index, results, ready):
    """One idle or dripping connection; records when the server closed it."""
    start = time.monotonic()
    result = {"closed": False, "elapsed": None, "sent": 0, "error": None}
    results[index] = result
    try:
        sock = connect(args, use_tls=not args.no_tls)
    except (ssl.SSLError, OSError) as e:
        result["error"] = "connect: %s" % e
        result["closed"] = True
        result["elapsed"] = time.monotonic() - start
        ready.release()
        return
    ready.release()
    deadline = start + args.duration
    try:
        if args.mode == "drip":
            sock.sendall(bytes.fromhex(args.data_hex))
            drip = bytes.fromhex(args.drip_hex)
            i = 0
            while drip and time.monotonic() < deadline:
                data, closed = read_until_closed(sock, min(deadline, time.monotonic() + args.interval))
                if closed:
                    result["closed"] = True
                    break
                sock.sendall(drip[i % len(drip):i % len(drip) + 1])
                result["sent"] += 1
                i += 1
            if not drip:
                _, result["closed"] = read_until_closed(sock, deadline)
        else:
            _, closed = read_until_closed(sock, deadline)
            result["closed"] = closed
    except (ssl.SSLError, OSError) as e:
        result["closed"] = True
        result["error"] = str(e)
    result["elapsed"] = time.monotonic() - start
    try:
        sock.close()
    except OSError:
        pass


def mode_hold(args):
    results = [None] * args.count
    ready = threading.Semaphore(0)
    threads = []
    for i in range(args.count):
        t = threading.Thread(target=hold, args=(args, i, results, ready), daemon=True)
        t.start()
        threads.append(t)
    for _ in threads:
        ready.acquire()
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    for t in threads:
        t.join()
    return {"connections": results,
            "connected": sum(1 for r in results if not (r["error"] or "").startswith("connect"))}


def sslv2_hello():
    """An SSLv2-format ClientHello offering SSL 2.0 only (RFC 6101 appendix E)."""
    ciphers = bytes.fromhex("010080" "030080" "060040" "0700c0")  # SSL2 RC4, RC2, DES, 3DES
    challenge = b"\x01" * 16
    body = b"\x01" + b"\x00\x02" + len(ciphers).to_bytes(2, "big") + b"\x00\x00" \
        + len(challenge).to_bytes(2, "big") + ciphers + challenge
    return bytes([0x80 | (len(body) >> 8), len(body) & 0xff]) + body


def sslv3_hello():
    """An SSL 3.0 ClientHello (record and client_version 3.0), CBC suites, no extensions."""
    suites = bytes.fromhex("c009" "c013" "002f" "0035" "000a")
    body = b"\x03\x00" + b"\x02" * 32 + b"\x00" + len(suites).to_bytes(2, "big") + suites + b"\x01\x00"
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x00" + len(handshake).to_bytes(2, "big") + handshake


def mode_hello(args):
    start = time.monotonic()
    sock = connect(args, use_tls=False)
    sock.sendall(sslv2_hello() if args.hello == "sslv2" else sslv3_hello())
    data, closed = read_until_closed(sock, start + args.timeout)
    sock.close()
    return {"answer_hex": data.hex(), "closed": closed, "elapsed": time.monotonic() - start}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["send", "idle", "drip", "hello"])
    p.add_argument("--hello", choices=["sslv2", "sslv3"], default="sslv2")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--data-hex", default="")
    p.add_argument("--drip-hex", default="78")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--no-tls", action="store_true")
    p.add_argument("--out")
    p.add_argument("--ready-file")
    args = p.parse_args()
    if args.mode == "send":
        result = mode_send(args)
    elif args.mode == "hello":
        result = mode_hello(args)
    else:
        result = mode_hold(args)
    text = json.dumps(result)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text + "\n")
        os.rename(args.out + ".tmp", args.out)
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
