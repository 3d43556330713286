# A minimal HTTP/1.0 server that knows nothing of Solo: it serves on the
# socket systemd-style activation hands it (LISTEN_FDS / LISTEN_FDNAMES,
# name "http"), says READY=1 on $NOTIFY_SOCKET when there is one, and on
# SIGTERM stops accepting and exits after the request in hand: connections
# still queued stay in the (shared) socket for the next instance. Each
# answer names the instance and its revision ($SOLO_REVISION), and the
# value of $V when set (the update tests change it).
import os, select, signal, socket, sys

if os.environ.get("LISTEN_PID") != str(os.getpid()):
    sys.exit(f"LISTEN_PID={os.environ.get('LISTEN_PID')} is not my pid {os.getpid()}")
names = os.environ.get("LISTEN_FDNAMES", "").split(":")
fds = {name: 3 + i for i, name in enumerate(names[: int(os.environ.get("LISTEN_FDS", "0"))])}
print(f"fds: {sorted(fds)}", flush=True)
if "http" not in fds:
    sys.exit("no socket named http")
listener = socket.socket(fileno=fds["http"])
# Every instance shares this socket (one open file description): accept
# without blocking, so an instance another one beat to a connection goes
# back to select (and sees SIGTERM) instead of waiting in accept.
listener.setblocking(False)
stopping = False


def on_term(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, on_term)
if os.environ.get("NOTIFY_SOCKET"):
    n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    n.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
    print("sent READY=1", flush=True)
while not stopping:
    # A blocking accept could take a connection off the queue just as
    # SIGTERM arrives; polling keeps every accepted connection served.
    if not select.select([listener], [], [], 0.1)[0] or stopping:
        continue
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        continue
    with conn:
        # Longer than a blue-green grace period in the tests (8 s): a
        # request accepted just before the switch is frozen with its
        # instance and read only after the thaw; timing out then would
        # close it unread (a reset the client sees as a failed request).
        conn.settimeout(30)
        try:
            conn.recv(65536)
            body = (
                f"hello from {os.environ['SOLO_SERVICE']}.{os.environ['SOLO_REPLICA']}"
                f" revision {os.environ.get('SOLO_REVISION')} v {os.environ.get('V', '-')}\n"
            ).encode()
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except OSError as e:
            print(f"request failed: {e}", flush=True)
