# Service-to-service channels through Solo's control socket.
#   peer.py serve       answer every connection pushed on solo-control: "pong from ID: <line>"
#   peer.py call NAME   send "ping" on the granted fd NAME, print the reply; then ask
#                       the control socket for each service in $PEER_TRY (comma list)
#                       and for $PEER_TCP (HOST:PORT, with $PEER_TOKEN) and print the outcome
import array, json, os, socket, sys, threading, time

names = os.environ.get("LISTEN_FDNAMES", "").split(":")
fds = {name: 3 + i for i, name in enumerate(names[: int(os.environ.get("LISTEN_FDS", "0"))])}
print(f"fds: {':'.join(sorted(fds))}", flush=True)
ctl = socket.socket(fileno=fds["solo-control"])
me = os.environ["SOLO_SERVICE"]


def recv():
    """One message from the control socket, with the fd it carries (or None)."""
    fdarr = array.array("i")
    msg, anc, _, _ = ctl.recvmsg(65536, socket.CMSG_SPACE(4 * fdarr.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fdarr.frombytes(data[: len(data) - len(data) % fdarr.itemsize])
    return json.loads(msg), (fdarr[0] if fdarr else None)


def ask(req):
    ctl.send(json.dumps(req).encode())
    while True:
        reply, fd = recv()
        if "event" not in reply:
            return reply, fd


def serve_one(fd):
    with socket.socket(fileno=fd) as s:
        for line in s.makefile("r"):
            s.sendall(f"pong from {me}: {line.strip()}\n".encode())


if sys.argv[1] == "serve":
    print("serving", flush=True)
    while True:
        msg, fd = recv()
        print(f"control: {msg}", flush=True)
        if fd is not None:
            threading.Thread(target=serve_one, args=(fd,), daemon=True).start()
else:
    reply, _ = ask({"op": "hello"})
    print(f"hello: {reply}", flush=True)
    with socket.socket(fileno=fds[sys.argv[2]]) as s:
        s.sendall(b"ping\n")
        print(f"reply: {s.makefile('r').readline().strip()}", flush=True)
    if "echo" in fds:
        # A connect:tcp grant: the supervisor connected before the start.
        with socket.socket(fileno=fds["echo"]) as s:
            s.sendall(b"via grant\n")
            print(f"granted tcp reply: {s.makefile('r').readline().strip()}", flush=True)
    for other in filter(None, os.environ.get("PEER_TRY", "").split(",")):
        reply, fd = ask({"op": "connect", "service": other})
        print(f"connect {other}: ok={reply['ok']} fd={fd is not None} error={reply.get('error', '')}", flush=True)
    if os.environ.get("PEER_TCP"):
        target = os.environ["PEER_TCP"]
        reply, fd = ask({"op": "connect", "tcp": target})
        print(f"tcp without token: ok={reply['ok']} error={reply.get('error', '')}", flush=True)
        reply, fd = ask({"op": "connect", "tcp": target, "token": os.environ.get("PEER_TOKEN", "")})
        print(f"tcp with token: ok={reply['ok']} error={reply.get('error', '')}", flush=True)
        if fd is not None:
            with socket.socket(fileno=fd) as s:
                s.sendall(b"over tcp\n")
                print(f"tcp reply: {s.makefile('r').readline().strip()}", flush=True)
    print("done", flush=True)
    while True:
        time.sleep(3600)
