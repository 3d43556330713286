# gunicorn, unpatched, serving a WSGI app under Solo on a granted socket
# (systemd socket activation), started programmatically through gunicorn's
# documented "custom application" API (a BaseApplication subclass).
#
#   gunicorn_app.py SITE_PACKAGES [NAME...]
#
# SITE_PACKAGES is the venv's site-packages, granted `dir:...:ro` (the view
# has no other copy of gunicorn); NAME... are the LISTEN_FDNAMES entries
# gunicorn is to serve on (default: http).
#
# Why this file does anything to the descriptors before gunicorn runs:
# gunicorn's systemd support (gunicorn/systemd.py listen_fds(), then
# sock.create_sockets) takes *every* descriptor 3 .. 3+LISTEN_FDS-1 as a
# listening socket and ignores LISTEN_FDNAMES. Solo's LISTEN_FDS always
# includes `solo-control` (a connected SOCK_SEQPACKET socket, fd 3) and one
# O_PATH descriptor per `dir:` grant; gunicorn calls listen() on the
# former and fails with EINVAL ("OSError: [Errno 22] Invalid argument" in
# sock.py set_options), so unmodified gunicorn cannot start under Solo.
# So, as a socket-activation launcher would, this narrows the activation
# to the named sockets: they move down to fd 3.., LISTEN_FDS and
# LISTEN_FDNAMES shrink to them, and the other descriptors stay open above
# (close-on-exec, not announced). LISTEN_PID is left as Solo set it (the
# pid this process has in its pid namespace, 1), and from there gunicorn's
# own code does all of the activation: the LISTEN_PID check, adopting the
# inherited listening socket without binding, and logging "Listening at".
import os, sys

sys.path.insert(0, sys.argv[1])
from gunicorn.app.base import BaseApplication  # noqa: E402

wanted = sys.argv[2:] or ["http"]
names = os.environ.get("LISTEN_FDNAMES", "").split(":")[: int(os.environ.get("LISTEN_FDS", "0"))]
print(f"solo passed: {names}, LISTEN_PID={os.environ.get('LISTEN_PID')}, my pid {os.getpid()}", flush=True)
missing = [n for n in wanted if n not in names]
if missing:
    sys.exit(f"no socket named {', '.join(missing)} in LISTEN_FDNAMES")
# Copies first (above every passed fd, close-on-exec), then the originals go.
saved = {name: os.dup(3 + i) for i, name in enumerate(names)}
for i in range(len(names)):
    os.close(3 + i)
for i, name in enumerate(wanted):
    os.dup2(saved.pop(name), 3 + i, inheritable=True)
os.environ["LISTEN_FDS"] = str(len(wanted))
os.environ["LISTEN_FDNAMES"] = ":".join(wanted)
print(f"gunicorn gets: {wanted} (kept aside: {sorted(saved)})", flush=True)


def app(environ, start_response):
    body = f"hello from gunicorn worker {os.getpid()} of {os.environ.get('SOLO_SERVICE')}\n".encode()
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
