#!/usr/bin/env python3
"""echo-http: a tiny HTTP server for trying Solo (Python standard library only).

Listens on 127.0.0.1:8080 (set PORT to change it) and answers every GET with
the request line, the request headers and the service's identity as Solo
sets it (SOLO_SERVICE, SOLO_REPLICA, SOLO_REVISION), as plain text.

Deploy it:

    solo deploy echo --script examples/echo-http.py --interpreter python3 \
        --profile network-client

or socket-activated, with no network of its own, as many replicas as you
like, updatable without dropping a request (docs/updates.md): given a
listening socket named "http" (LISTEN_FDS, as systemd passes it), it serves
on that socket instead of binding one, and says READY=1 on $NOTIFY_SOCKET:

    solo deploy echo --script examples/echo-http.py --interpreter python3 \
        --grant http=listen:tcp:127.0.0.1:8080 --ready notify --replicas 2

Behaves as Solo expects a service to: logs to stdout/stderr (captured by the
supervisor), and on SIGTERM stops serving and exits 0 within the grace period.
"""

import os
import signal
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
PORT = int(os.environ.get("PORT", "8080"))


def log(msg):
    # Flush every line: stdout is a pipe to the supervisor, not a terminal.
    print(msg, flush=True)


class Echo(BaseHTTPRequestHandler):
    server_version = "echo-http/1"

    def do_GET(self):
        who = "{}.{} (revision {}, pid {}, uid {})".format(
            os.environ.get("SOLO_SERVICE", "?"),
            os.environ.get("SOLO_REPLICA", "?"),
            os.environ.get("SOLO_REVISION", "?"),
            os.getpid(),
            os.getuid(),
        )
        lines = ["{} {} {}".format(self.command, self.path, self.request_version)]
        lines += ["{}: {}".format(k, v) for k, v in self.headers.items()]
        lines += ["", "served by " + who, ""]
        body = "\n".join(lines).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        # One access-log line per request, on stdout.
        log("{} {}".format(self.address_string(), fmt % args))


def activated():
    """The listening socket named "http" that socket activation passed, if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")[: int(os.environ.get("LISTEN_FDS", "0"))]
    if "http" not in names:
        return None
    sock = socket.socket(fileno=3 + names.index("http"))
    # Other instances accept on this same socket: never block in accept
    # after another took the connection (that would delay our SIGTERM).
    sock.setblocking(False)
    return sock


class ActivatedServer(ThreadingHTTPServer):
    """Serves on a socket it was given: it creates none (under a profile
    without network, creating one would be refused)."""

    def __init__(self, sock, handler):
        socketserver.BaseServer.__init__(self, sock.getsockname()[:2], handler)
        self.socket = sock


def main():
    sock = activated()
    if sock is None:
        server = ThreadingHTTPServer((HOST, PORT), Echo)
        where = "http://{}:{}/".format(HOST, PORT)
    else:
        server = ActivatedServer(sock, Echo)
        where = "the activated socket http://{}:{}/".format(*sock.getsockname()[:2])

    def on_term(signum, _frame):
        log("echo-http: got signal {}, shutting down".format(signum))
        # shutdown() waits for serve_forever() to return: call it from
        # another thread, not from the signal handler's frame.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log("echo-http: listening on {} as uid {}".format(where, os.getuid()))
    if os.environ.get("NOTIFY_SOCKET"):
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
    server.serve_forever()
    server.server_close()
    log("echo-http: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
