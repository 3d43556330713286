# gunicorn, unpatched, serving a WSGI app under Solo on a granted socket
# (systemd socket activation), started programmatically through gunicorn's
# documented "custom application" API (a BaseApplication subclass).
#
#   gunicorn_app.py SITE_PACKAGES
#
# SITE_PACKAGES is the venv's site-packages, granted `dir:...:ro` (the view
# has no other copy of gunicorn).
#
# Nothing is done to the descriptors: the service is deployed with
# `--listen-only` (spec.socket_activation = LISTEN_ONLY), because gunicorn's
# systemd support (gunicorn/systemd.py listen_fds(), then
# sock.create_sockets) takes *every* descriptor 3 .. 3+LISTEN_FDS-1 as a
# listening socket and ignores LISTEN_FDNAMES. In that mode Solo announces
# only the listening sockets in LISTEN_FDS/LISTEN_FDNAMES; solo-control and
# the directory grant follow, named in SOLO_FDNAMES from SOLO_FDS_START.
# From there gunicorn's own code does all of the activation: the LISTEN_PID
# check, adopting the inherited listening socket without binding, logging
# "Listening at", and READY=1 on $NOTIFY_SOCKET.
import os, sys

sys.path.insert(0, sys.argv[1])
from gunicorn.app.base import BaseApplication  # noqa: E402

print(
    f"LISTEN_FDS={os.environ.get('LISTEN_FDS')} LISTEN_FDNAMES={os.environ.get('LISTEN_FDNAMES')} "
    f"LISTEN_PID={os.environ.get('LISTEN_PID')} my pid {os.getpid()}; "
    f"SOLO_FDNAMES={os.environ.get('SOLO_FDNAMES')} from fd {os.environ.get('SOLO_FDS_START')}",
    flush=True,
)


def app(environ, start_response):
    body = (
        f"hello from gunicorn worker {os.getpid()} of {os.environ.get('SOLO_SERVICE')}"
        f" revision {os.environ.get('SOLO_REVISION')}\n"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class SoloApp(BaseApplication):
    def load_config(self):
        for key, value in {
            "workers": 2,
            "worker_class": "sync",
            "loglevel": "info",
            "errorlog": "-",
            "accesslog": "-",
            # gunicorn 25+'s admin socket would be bound under $HOME: not needed here.
            "control_socket_disable": True,
        }.items():
            self.cfg.set(key, value)

    def load(self):
        return app


SoloApp().run()
