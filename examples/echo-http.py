#!/usr/bin/env python3
"""echo-http: a tiny HTTP server for trying Solo (Python standard library only).

Listens on 127.0.0.1:8080 (set PORT to change it) and answers every GET with
the request line, the request headers and the service's identity as Solo
sets it (SOLO_SERVICE, SOLO_REPLICA, SOLO_REVISION), as plain text.

Deploy it:

    solo deploy echo --script examples/echo-http.py --interpreter python3 \
        --profile network-client

Behaves as Solo expects a service to: logs to stdout/stderr (captured by the
supervisor), and on SIGTERM stops serving and exits 0 within the grace period.
"""

import os
import signal
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


def main():
    server = ThreadingHTTPServer((HOST, PORT), Echo)

    def on_term(signum, _frame):
        log("echo-http: got signal {}, shutting down".format(signum))
        # shutdown() waits for serve_forever() to return: call it from
        # another thread, not from the signal handler's frame.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log("echo-http: listening on http://{}:{}/ as uid {}".format(HOST, PORT, os.getuid()))
    server.serve_forever()
    server.server_close()
    log("echo-http: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
