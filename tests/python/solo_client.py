#!/usr/bin/env python3
"""Drives a running `solo serve` from Python, as a non-Rust agent would.

Stubs for solo.v1 are generated from proto/solo/v1/solo.proto with
grpc_tools.protoc at run time; nothing is checked in. Health uses the
grpcio-health-checking stubs and reflection the grpcio-reflection messages.

Usage: solo_client.py --socket /run/solo/solo.sock --program /path/to/sleeper [--out DIR]

Prints one line per check and exits non-zero on the first failure.
"""

import argparse
import importlib
import os
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


def check_health(channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "solo.v1.Solo"):
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
        check(
            resp.status == health_pb2.HealthCheckResponse.SERVING,
            f"grpc.health.v1.Health/Check(service={service!r}) = {status}, want SERVING",
        )
        ok(f"health: service {service!r} is {status}")


def check_reflection(channel):
    """Lists services over server reflection and finds solo.v1.Solo.

    The server speaks grpc.reflection.v1; grpcio-reflection ships only the
    v1alpha stubs, whose messages are wire-identical to v1 (same fields, same
    numbers), so they are used with the v1 method path. v1alpha is the fallback.
    """
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2 as rpb

    def call(version, requests):
        method = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString,
        )
        return list(method(iter(requests), timeout=TIMEOUT))

    list_req = rpb.ServerReflectionRequest(list_services="*")
    version = "v1"
    try:
        responses = call(version, [list_req])
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        version = "v1alpha"
        responses = call(version, [list_req])
    check(len(responses) == 1, f"reflection: {len(responses)} responses to list_services, want 1")
    resp = responses[0]
    check(
        resp.WhichOneof("message_response") == "list_services_response",
        f"reflection: list_services answered with {resp}",
    )
    names = sorted(s.name for s in resp.list_services_response.service)
    check("solo.v1.Solo" in names, f"reflection ({version}): solo.v1.Solo not among services {names}")
    ok(f"reflection ({version}): services {names} include solo.v1.Solo")

    # The descriptor the server hands out describes the same API as proto/.
    resp = call(version, [rpb.ServerReflectionRequest(file_containing_symbol="solo.v1.Solo")])[0]
    check(
        resp.WhichOneof("message_response") == "file_descriptor_response",
        f"reflection: file_containing_symbol(solo.v1.Solo) answered with {resp.error_response}",
    )
    methods = set()
    for raw in resp.file_descriptor_response.file_descriptor_proto:
        fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        for svc in fd.service:
            if fd.package == "solo.v1" and svc.name == "Solo":
                methods = {m.name for m in svc.method}
    for want in ("Deploy", "Status", "List", "Kill"):
        check(want in methods, f"reflection: solo.v1.Solo lacks method {want} (has {sorted(methods)})")
    ok(f"reflection ({version}): solo.v1.Solo descriptor has methods {sorted(methods)}")


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


def check_needs_token(channel, pb, pb_grpc):
    """Without a token the daemon refuses; with a forged one, too."""
    stub = pb_grpc.SoloStub(channel)
    e = rpc_error(stub.List, pb.ListRequest())
    check(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"List without a token: {e.code()}, want UNAUTHENTICATED")
    e = rpc_error(stub.List, pb.ListRequest(), metadata=[("authorization", "Bearer solo1.e30.AAAA")])
    check(e.code() == grpc.StatusCode.PERMISSION_DENIED, f"List with a forged token: {e.code()}, want PERMISSION_DENIED")
    ok("List without a token: UNAUTHENTICATED; with a forged one: PERMISSION_DENIED")


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
    ap.add_argument("--program", required=True, help="static ELF test program (the sleeper)")
    ap.add_argument("--out", help="directory for the generated stubs (default: a temp dir)")
    ap.add_argument("--token-file", required=True, help="the operator token the daemon wrote (STATE_DIR/operator.token)")
    args = ap.parse_args()
    token = Path(args.token_file).read_text().strip()

    with tempfile.TemporaryDirectory(prefix="solo-pystubs-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        try:
            pb, pb_grpc = generate_stubs(out)
            target = "unix://" + os.path.abspath(args.socket)
            # grpcio (grpc-core >= 1.57) sends the socket path as :authority on
            # unix: targets; tonic's HTTP/2 layer (h2) rejects that as a malformed
            # authority and resets every stream with PROTOCOL_ERROR. "localhost"
            # is the convention for Unix sockets (grpc-go, tonic's own client).
            options = [("grpc.default_authority", "localhost")]
            with grpc.insecure_channel(target, options=options) as channel:
                grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
                ok(f"connected to {target} with :authority localhost (grpcio {grpc.__version__})")
                check_health(channel)
                check_reflection(channel)
                check_needs_token(channel, pb, pb_grpc)
                drive_solo(grpc.intercept_channel(channel, Bearer(token)), pb, pb_grpc, args.program)
        except CheckFailed as e:
            print(f"FAIL {e}", file=sys.stderr, flush=True)
            return 1
        except grpc.RpcError as e:
            print(f"FAIL unexpected gRPC error: {e.code()} {e.details()!r}", file=sys.stderr, flush=True)
            return 1
        except grpc.FutureTimeoutError:
            print(f"FAIL could not connect to {args.socket} within {TIMEOUT} s", file=sys.stderr, flush=True)
            return 1
    print("PASS solo_client.py: all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
