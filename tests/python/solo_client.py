#!/usr/bin/env python3
"""Drives a running `solo serve` from Python, as a non-Rust agent would.

Stubs for solo.v1 are generated from proto/solo/v1/solo.proto with
grpc_tools.protoc at run time; nothing is checked in. Health uses the
grpcio-health-checking stubs and reflection the grpcio-reflection messages.

Usage: solo_client.py --socket /run/solo/solo.sock [--tcp 127.0.0.1:PORT]
                      --program /path/to/sleeper --token-file F [--out DIR]

Over the Unix socket and, with --tcp, over TCP, with grpcio's defaults (on
the socket it sends the socket path as :authority): health, reflection with
the stock grpcio-reflection client and by hand (v1alpha and v1),
UNIMPLEMENTED for unknown methods, the token checks, 300 calls on one
connection; then, on the socket,
Deploy, Status, List, error codes and Kill.

Prints one line per check and exits non-zero on the first failure.
"""

import argparse
import importlib
import os
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
SOLO_PROTO = "solo/v1/solo.proto"
# Every RPC gets a deadline, so a wedged daemon fails the run instead of hanging it.
TIMEOUT = 30.0


class CheckFailed(Exception):
    pass


def ok(msg):
    print(f"ok   {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def generate_stubs(out):
    """Runs protoc (from grpcio-tools) on solo.proto into `out` and imports it."""
    out.mkdir(parents=True, exist_ok=True)
    wkt = Path(protoc.__file__).resolve().parent / "_proto"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{wkt}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            SOLO_PROTO,
        ]
    )
    check(rc == 0, f"grpc_tools.protoc failed on {PROTO_ROOT / SOLO_PROTO} (exit {rc})")
    sys.path.insert(0, str(out))
    pb = importlib.import_module("solo.v1.solo_pb2")
    pb_grpc = importlib.import_module("solo.v1.solo_pb2_grpc")
    ok(f"generated Python stubs from {PROTO_ROOT / SOLO_PROTO} into {out}")
    return pb, pb_grpc


def rpc_error(fn, *args, **kwargs):
    """Calls `fn` and returns the grpc.RpcError it raises (fails if it succeeds)."""
    try:
        resp = fn(*args, timeout=TIMEOUT, **kwargs)
    except grpc.RpcError as e:
        return e
    raise CheckFailed(f"expected an error, got a response: {resp}")


def check_health(channel, where):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "solo.v1.Solo"):
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
        check(
            resp.status == health_pb2.HealthCheckResponse.SERVING,
            f"{where}: grpc.health.v1.Health/Check(service={service!r}) = {status}, want SERVING",
        )
        ok(f"{where}: health: service {service!r} is {status}")


# What reflection must list, whichever version is asked.
SERVICES = {
    "solo.v1.Solo",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


def proto_rpcs():
    """The rpc names of solo.v1.Solo, read from proto/solo/v1/solo.proto."""
    text = (PROTO_ROOT / SOLO_PROTO).read_text()
    rpcs = re.findall(r"^\s*rpc\s+(\w+)\s*\(", text, re.MULTILINE)
    check(len(rpcs) >= 9, f"{PROTO_ROOT / SOLO_PROTO}: found only rpcs {rpcs}")
    return rpcs


def check_reflection_db(channel, where):
    """What grpcurl and other reflection clients do, with the stock client.

    grpcio-reflection's ProtoReflectionDescriptorDatabase speaks v1alpha; a
    DescriptorPool on top of it resolves solo.v1.Solo, its messages and every
    file they import, as any dynamic client must. `list` and `describe` are
    printed the way grpcurl prints them.
    """
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    db = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(db.get_services())
    check(SERVICES <= set(services), f"{where}: reflection lists {services}, want all of {sorted(SERVICES)}")
    ok(f"{where}: grpcurl list (grpcio-reflection, v1alpha):")
    for name in services:
        print(f"       {name}")

    pool = DescriptorPool(db)
    svc = pool.FindServiceByName("solo.v1.Solo")
    want = proto_rpcs()
    got = [m.name for m in svc.methods]
    check(got == want, f"{where}: reflected solo.v1.Solo has methods {got}, proto/ has {want}")
    # Every request and reply type resolves, with the types of its fields.
    for m in svc.methods:
        for msg in (m.input_type, m.output_type):
            check(msg is not None and msg.full_name.startswith("solo.v1."), f"{where}: {m.full_name}: type {msg}")
            pool.FindMessageTypeByName(msg.full_name)
    pool.FindServiceByName("grpc.health.v1.Health")
    fd = db.FindFileContainingSymbol("solo.v1.Solo")
    for dep in fd.dependency:
        db.FindFileByName(dep)
    ok(
        f"{where}: DescriptorPool resolved solo.v1.Solo ({len(got)} methods) "
        f"from {fd.name}, imports {list(fd.dependency)}"
    )

    streaming = {}
    for sd in fd.service:
        for m in sd.method:
            streaming[m.name] = (m.client_streaming, m.server_streaming)
    ok(f"{where}: grpcurl describe solo.v1.Solo:")
    print("       solo.v1.Solo is a service:")
    print("       service Solo {")
    for m in svc.methods:
        cs, ss = streaming.get(m.name, (False, False))
        arg = ("stream " if cs else "") + "." + m.input_type.full_name
        ret = ("stream " if ss else "") + "." + m.output_type.full_name
        print(f"         rpc {m.name} ( {arg} ) returns ( {ret} );")
    print("       }")


def check_reflection_raw(channel, where, version):
    """Each reflection request kind, on one ServerReflectionInfo stream.

    grpcio-reflection ships only the v1alpha messages; v1's are wire-identical
    (same fields, same numbers), so they serve for both method paths.
    """
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2 as rpb

    method = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=rpb.ServerReflectionRequest.SerializeToString,
        response_deserializer=rpb.ServerReflectionResponse.FromString,
    )
    requests = [
        rpb.ServerReflectionRequest(list_services="*"),
        rpb.ServerReflectionRequest(file_containing_symbol="solo.v1.Solo"),
        rpb.ServerReflectionRequest(file_by_filename=SOLO_PROTO),
        rpb.ServerReflectionRequest(file_containing_symbol="solo.v1.DeployRequest"),
    ]
    resp = list(method(iter(requests), timeout=TIMEOUT))
    kinds = [r.WhichOneof("message_response") for r in resp]
    want = ["list_services_response"] + ["file_descriptor_response"] * 3
    check(kinds == want, f"{where}: reflection {version}: answers {kinds}, want {want}: {resp}")

    names = {s.name for s in resp[0].list_services_response.service}
    check(SERVICES <= names, f"{where}: reflection {version}: list_services {sorted(names)}")

    def files(r):
        raw = r.file_descriptor_response.file_descriptor_proto
        return [descriptor_pb2.FileDescriptorProto.FromString(b) for b in raw]

    asked = [
        "file_containing_symbol(solo.v1.Solo)",
        f"file_by_filename({SOLO_PROTO})",
        "file_containing_symbol(solo.v1.DeployRequest)",
    ]
    for i, what in enumerate(asked, start=1):
        fds = files(resp[i])
        check(
            [f.name for f in fds][:1] == [SOLO_PROTO],
            f"{where}: reflection {version}: {what} gave files {[f.name for f in fds]}",
        )
    methods = [m.name for s in files(resp[1])[0].service if s.name == "Solo" for m in s.method]
    check(methods == proto_rpcs(), f"{where}: reflection {version}: solo.v1.Solo methods {methods}")
    # An unknown symbol is NOT_FOUND. tonic-reflection ends the stream with
    # that status where the protocol has an error_response message; either
    # form is accepted here.
    try:
        (err,) = method(iter([rpb.ServerReflectionRequest(file_containing_symbol="no.such.Symbol")]), timeout=TIMEOUT)
        code = err.error_response.error_code
    except grpc.RpcError as e:
        code = e.code().value[0]
    check(
        code == grpc.StatusCode.NOT_FOUND.value[0],
        f"{where}: reflection {version}: file_containing_symbol(no.such.Symbol) answered code {code}, want NOT_FOUND",
    )
    # Every file solo.proto imports is served too.
    deps = list(files(resp[1])[0].dependency)
    if deps:
        more = list(method(iter(rpb.ServerReflectionRequest(file_by_filename=d) for d in deps), timeout=TIMEOUT))
        bad = [d for d, r in zip(deps, more) if r.WhichOneof("message_response") != "file_descriptor_response"]
        check(not bad, f"{where}: reflection {version}: imports {bad} not served")
    ok(
        f"{where}: reflection {version}: list, file_containing_symbol, file_by_filename, "
        f"imports {deps}; unknown symbol NOT_FOUND"
    )


def check_long_connection(channel, where, pb, pb_grpc, token):
    """Hundreds of calls on one connection, each with fresh metadata.

    grpc-core adds every new header value to the HPACK dynamic table
    (4096 bytes), so 200-byte values evict entries every few calls; on the
    socket the daemon must track that table exactly to hand h2 the right
    path and token (a wrong one would be UNIMPLEMENTED or PERMISSION_DENIED).
    """
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    solo = pb_grpc.SoloStub(channel)
    bearer = ("authorization", f"Bearer {token}")
    calls = 300
    start = time.monotonic()
    for i in range(calls):
        md = [(f"x-solo-test-{i % 7}", secrets.token_hex(100))]
        if i % 3 == 0:
            resp = health.Check(health_pb2.HealthCheckRequest(service="solo.v1.Solo"), metadata=md, timeout=TIMEOUT)
            check(resp.status == health_pb2.HealthCheckResponse.SERVING, f"{where}: call {i}: health {resp.status}")
        elif i % 3 == 1:
            solo.List(pb.ListRequest(id_prefix=f"p{i}"), metadata=md + [bearer], timeout=TIMEOUT)
        else:
            e = rpc_error(solo.List, pb.ListRequest(), metadata=md)
            check(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"{where}: call {i} without a token: {e.code()}")
    ok(f"{where}: {calls} calls on one connection, HPACK table churned: {time.monotonic() - start:.2f} s")


def check_unknown_methods(channel, where, token):
    """A method nobody serves is UNIMPLEMENTED, with or without a token."""
    paths = [
        "/solo.v1.Solo/NoSuchMethod",
        "/no.such.Service/NoSuchMethod",
        "/grpc.health.v1.Health/NoSuchMethod",
        "/grpc.reflection.v1.ServerReflection/NoSuchMethod",
        "/grpc.reflection.v1alpha.ServerReflection/NoSuchMethod",
    ]
    for path in paths:
        method = channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        for metadata in (None, [("authorization", f"Bearer {token}")]):
            e = rpc_error(method, b"", metadata=metadata)
            with_token = "with" if metadata else "without"
            check(
                e.code() == grpc.StatusCode.UNIMPLEMENTED,
                f"{where}: {path} {with_token} a token: {e.code()} {e.details()!r}, want UNIMPLEMENTED",
            )
    ok(f"{where}: {len(paths)} unknown methods answer UNIMPLEMENTED, with and without a token")


def proc_uids(pid):
    """Real, effective, saved and fs uid of `pid`, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise CheckFailed(f"/proc/{pid}/status has no Uid: line")


def proc_alive(pid):
    """True if /proc/<pid> exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


class Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token):
        self.header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        md = list(details.metadata or []) + [self.header]
        return details._replace(metadata=md)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


def check_needs_token(channel, where, pb, pb_grpc, token):
    """Without a token the daemon refuses; with a forged one, too; with the operator's it answers."""
    stub = pb_grpc.SoloStub(channel)
    e = rpc_error(stub.List, pb.ListRequest())
    check(
        e.code() == grpc.StatusCode.UNAUTHENTICATED,
        f"{where}: List without a token: {e.code()}, want UNAUTHENTICATED",
    )
    e = rpc_error(stub.List, pb.ListRequest(), metadata=[("authorization", "Bearer solo1.e30.AAAA")])
    check(
        e.code() == grpc.StatusCode.PERMISSION_DENIED,
        f"{where}: List with a forged token: {e.code()}, want PERMISSION_DENIED",
    )
    resp = stub.List(pb.ListRequest(), metadata=[("authorization", f"Bearer {token}")], timeout=TIMEOUT)
    ok(
        f"{where}: List without a token: UNAUTHENTICATED; with a forged one: PERMISSION_DENIED; "
        f"with the operator token: {len(resp.services)} services"
    )


def drive_solo(channel, pb, pb_grpc, program):
    stub = pb_grpc.SoloStub(channel)
    sid = f"py-{secrets.token_hex(4)}"
    content = Path(program).read_bytes()
    check(content[:4] == b"\x7fELF", f"--program {program} is not an ELF file")

    # Deploy and wait until the instance runs.
    spec = pb.ServiceSpec(
        id=sid,
        artifact=pb.Artifact(executable=pb.ExecutableArtifact(content=content)),
        args=["from-python"],
        labels={"client": "python"},
    )
    resp = stub.Deploy(pb.DeployRequest(spec=spec, wait=True), timeout=TIMEOUT)
    check(resp.id == sid, f"Deploy: response id {resp.id!r}, want {sid!r}")
    check(len(resp.instances) == 1, f"Deploy: {len(resp.instances)} instances, want 1: {resp}")
    pid = resp.instances[0].pid
    check(pid > 0, f"Deploy: instance pid is {pid}, want > 0: {resp}")
    ok(
        f"Deploy {sid}: revision {resp.revision}, pid {pid}, "
        f"artifact sha256 {resp.artifact_sha256[:12]}, startup {resp.startup_us} us"
    )

    # Status: running, same pid, not root.
    st = stub.Status(pb.StatusRequest(id=sid), timeout=TIMEOUT).service
    state = pb.ServiceState.Name(st.state)
    check(st.state == pb.SERVICE_STATE_RUNNING, f"Status {sid}: state {state}, want SERVICE_STATE_RUNNING")
    check(len(st.instances) == 1, f"Status {sid}: {len(st.instances)} instances, want 1")
    check(st.instances[0].pid == pid, f"Status {sid}: instance pid {st.instances[0].pid}, Deploy said {pid}")
    uids = proc_uids(pid)
    check(all(u != 0 for u in uids), f"/proc/{pid}/status: Uid {uids}; the service runs as root")
    check(
        uids[0] == st.instances[0].uid,
        f"/proc/{pid}/status: real uid {uids[0]}, Status says instance uid {st.instances[0].uid}",
    )
    ok(f"Status {sid}: {state}, pid {pid}, /proc/{pid}/status Uid {uids} (not root)")

    # List finds it.
    listed = stub.List(pb.ListRequest(), timeout=TIMEOUT).services
    ids = [s.id for s in listed]
    check(sid in ids, f"List: {sid} not among {ids}")
    by_label = stub.List(pb.ListRequest(labels={"client": "python"}), timeout=TIMEOUT).services
    check(sid in [s.id for s in by_label], f"List(labels client=python): {sid} missing")
    ok(f"List: {sid} present among {len(ids)} services (also by label)")

    # Errors carry gRPC status codes that name the field.
    bad = pb.ServiceSpec(
        id="Bad_Id", artifact=pb.Artifact(executable=pb.ExecutableArtifact(content=content))
    )
    e = rpc_error(stub.Deploy, pb.DeployRequest(spec=bad, wait=True))
    check(
        e.code() == grpc.StatusCode.INVALID_ARGUMENT,
        f"Deploy(id=Bad_Id): {e.code()} {e.details()!r}, want INVALID_ARGUMENT",
    )
    check("spec.id" in (e.details() or ""), f"Deploy(id=Bad_Id): details {e.details()!r} do not name spec.id")
    ok(f"Deploy(id=Bad_Id): INVALID_ARGUMENT {e.details()!r}")

    missing = f"py-missing-{secrets.token_hex(4)}"
    e = rpc_error(stub.Status, pb.StatusRequest(id=missing))
    check(e.code() == grpc.StatusCode.NOT_FOUND, f"Status({missing}): {e.code()} {e.details()!r}, want NOT_FOUND")
    ok(f"Status({missing}): NOT_FOUND {e.details()!r}")

    # Kill and remove: the process is gone and so is the service.
    resp = stub.Kill(pb.KillRequest(id=sid, remove=True), timeout=TIMEOUT)
    check(resp.removed, f"Kill({sid}, remove=true): removed=false: {resp}")
    gone_at_return = not proc_alive(pid)
    deadline = time.monotonic() + 5.0
    while proc_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    check(not proc_alive(pid), f"Kill({sid}): pid {pid} still alive 5 s after Kill returned")
    exits = [i.last_exit.reason for i in resp.instances if i.HasField("last_exit")]
    ok(
        f"Kill({sid}, remove=true): pid {pid} gone "
        f"({'at once' if gone_at_return else 'after Kill returned'}), exits {exits}"
    )

    ids = [s.id for s in stub.List(pb.ListRequest(), timeout=TIMEOUT).services]
    check(sid not in ids, f"List after Kill(remove=true): {sid} still listed: {ids}")
    e = rpc_error(stub.Status, pb.StatusRequest(id=sid))
    check(e.code() == grpc.StatusCode.NOT_FOUND, f"Status({sid}) after remove: {e.code()}, want NOT_FOUND")
    ok(f"List after Kill(remove=true): {sid} absent; Status NOT_FOUND")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket", required=True, help="the daemon's Unix socket")
    ap.add_argument("--tcp", help="HOST:PORT of the daemon's --listen address, checked like the socket")
    ap.add_argument("--program", required=True, help="static ELF test program (the sleeper)")
    ap.add_argument("--out", help="directory for the generated stubs (default: a temp dir)")
    ap.add_argument("--token-file", required=True, help="the operator token the daemon wrote (STATE_DIR/operator.token)")
    args = ap.parse_args()
    token = Path(args.token_file).read_text().strip()

    # No grpc.default_authority: on unix: targets grpc-core sends the
    # percent-encoded socket path as :authority, which h2 alone refuses
    # (hyperium/h2 PR 487); the daemon must accept it as it comes.
    transports = [("unix", "unix://" + os.path.abspath(args.socket))]
    if args.tcp:
        transports.append(("tcp", args.tcp))
    with tempfile.TemporaryDirectory(prefix="solo-pystubs-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        try:
            pb, pb_grpc = generate_stubs(out)
            for where, target in transports:
                with grpc.insecure_channel(target) as channel:
                    grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
                    ok(f"{where}: connected to {target} (grpcio {grpc.__version__}, its default :authority)")
                    check_health(channel, where)
                    check_reflection_db(channel, where)
                    for version in ("v1alpha", "v1"):
                        check_reflection_raw(channel, where, version)
                    check_unknown_methods(channel, where, token)
                    check_needs_token(channel, where, pb, pb_grpc, token)
                    check_long_connection(channel, where, pb, pb_grpc, token)
                    if where == "unix":
                        drive_solo(grpc.intercept_channel(channel, Bearer(token)), pb, pb_grpc, args.program)
        except CheckFailed as e:
            print(f"FAIL {e}", file=sys.stderr, flush=True)
            return 1
        except grpc.RpcError as e:
            print(f"FAIL unexpected gRPC error: {e.code()} {e.details()!r}", file=sys.stderr, flush=True)
            return 1
        except grpc.FutureTimeoutError:
            print(f"FAIL could not connect within {TIMEOUT} s", file=sys.stderr, flush=True)
            return 1
    print("PASS solo_client.py: all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
