"""An agent's MCP client drives Solo: the official `mcp` package (PyPI)
starts `solo mcp` over stdio with an agent token scoped to `service:mcp-*`,
lists the tools, deploys tests/services/httpd.py on a granted listening
socket, fetches a page from it, reads its status and logs, kills it; every
call outside the token's scope comes back as a tool error naming the scope,
and the server keeps serving. Then the same over streamable HTTP, where the
token travels in each request's Authorization header.

Run by tests/mcp.rs; prints one `ok ...` line per check, exits non-zero on
the first failure.
"""

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

TOOLS = {"deploy", "status", "list", "logs", "kill", "grant", "revoke", "update"}


def check(cond, what, detail=""):
    if not cond:
        print(f"FAIL {what}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def text(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def agent_session(session, a):
    init = await session.initialize()
    check(init.server_info.name == "solo", "server identifies as solo", init.server_info)

    tools = {t.name: t for t in (await session.list_tools()).tools}
    check(set(tools) == TOOLS, "the tools are listed", sorted(tools))
    spec = tools["deploy"].input_schema["properties"]["spec"]
    check(spec["properties"]["id"]["pattern"] == "^[a-z0-9][a-z0-9-]{0,62}$", "deploy schema has the id limit", spec["properties"]["id"])
    check(spec["properties"]["replicas"]["maximum"] == 64, "deploy schema has the replicas limit", spec["properties"]["replicas"])
    check("script" in spec["properties"]["artifact"]["properties"], "deploy schema offers scripts")
    check(tools["status"].annotations.read_only_hint is True, "status is read-only")

    source = open(a.service).read()
    deploy = {
        "spec": {
            "id": "mcp-web",
            "artifact": {"script": {"interpreter": "python3", "source": source}},
            "profile": "web-server",
            "grants": [{"spec": f"listen:tcp:127.0.0.1:{a.port}", "name": "http"}],
            "readiness": {"kind": "READINESS_KIND_TCP", "tcp_grant": "http"},
        },
        "wait": True,
    }
    r = await session.call_tool("deploy", deploy)
    check(not r.is_error, "deploy succeeds", text(r))
    check(r.structured_content["id"] == "mcp-web", "deploy returns the service id", r.structured_content)
    pid = r.structured_content["instances"][0]["pid"]
    check(pid > 0, "deploy returns the instance's pid", r.structured_content)

    body = urllib.request.urlopen(f"http://127.0.0.1:{a.port}/", timeout=10).read().decode()
    check("hello from mcp-web.0" in body, "the deployed server answers", body)

    r = await session.call_tool("status", {"id": "mcp-web"})
    check(not r.is_error, "status succeeds", text(r))
    svc = r.structured_content["service"]
    check(svc["state"] == "SERVICE_STATE_RUNNING", "status says running", svc.get("state"))
    check(svc["instances"][0]["pid"] == pid, "status shows the same pid", svc["instances"][0])
    check(any(g["name"] == "http" for g in svc.get("grants", [])), "status shows the grant", svc.get("grants"))

    r = await session.call_tool("logs", {"id": "mcp-web", "tail": 20})
    check(not r.is_error, "logs succeeds", text(r))
    lines = [l["line"] for l in r.structured_content["lines"]]
    check(any("fds:" in l and "'http'" in l for l in lines), "logs show the service's output", lines)
    check(r.structured_content["truncated"] is False, "logs are not truncated", r.structured_content)

    r = await session.call_tool("list", {})
    ids = [s["id"] for s in r.structured_content.get("services", [])]
    check(ids == ["mcp-web"], "list shows only the token's services", ids)

    # Outside the token's scope: refused by the daemon, reported as tool errors.
    r = await session.call_tool("status", {"id": a.outside})
    check(r.is_error and "permission denied" in text(r) and "service:mcp-*" in text(r), "status outside the scope is refused", text(r))
    check(r.structured_content["error"]["code"] == "permission denied", "the refusal carries the code", r.structured_content)
    r = await session.call_tool("kill", {"id": a.outside, "force": True})
    check(r.is_error and "permission denied" in text(r), "kill outside the scope is refused", text(r))
    other = dict(deploy, spec=dict(deploy["spec"], id="intruder", grants=[], readiness={}))
    r = await session.call_tool("deploy", other)
    check(r.is_error and "permission denied" in text(r), "deploy outside the scope is refused", text(r))
    r = await session.call_tool("grant", {"service": "mcp-web", "token": {"permissions": ["shutdown"]}})
    check(r.is_error and "permission denied" in text(r), "a token wider than the agent's is refused", text(r))

    # Bad input: the field is named, nothing changes.
    bad = dict(deploy, spec=dict(deploy["spec"], id="mcp-bad", limits={"cpu_weight": "lots"}))
    r = await session.call_tool("deploy", bad)
    check(r.is_error and "spec.limits.cpu_weight" in text(r), "a malformed field is named", text(r))
    bad = dict(deploy, spec=dict(deploy["spec"], id="mcp-Bad"))
    r = await session.call_tool("deploy", bad)
    check(r.is_error and "invalid argument" in text(r) and "spec.id" in text(r), "the daemon's validation is passed on", text(r))
    r = await session.call_tool("logs", {"id": "mcp-web", "tail": 0})
    check(r.is_error and "tail" in text(r), "logs refuses tail 0", text(r))

    # An update: the same spec without the artifact (kept) and one change;
    # the progress comes back step by step to its end.
    spec2 = {k: v for k, v in deploy["spec"].items() if k != "artifact"}
    spec2["env"] = {"V": "2"}
    r = await session.call_tool("update", {"spec": spec2, "min_ready_ms": 200})
    check(not r.is_error, "update succeeds", text(r))
    last = r.structured_content["progress"][-1]
    check(last.get("done") is True and not last.get("rolled_back") and last.get("revision") == 2, "the update commits revision 2", last)
    body = urllib.request.urlopen(f"http://127.0.0.1:{a.port}/", timeout=10).read().decode()
    check("revision 2 v 2" in body, "the new revision answers", body)
    r = await session.call_tool("update", {"id": "mcp-web", "action": "UPDATE_ACTION_PROMOTE"})
    check(r.is_error and "no update in progress" in text(r), "promote without an update is refused", text(r))

    r = await session.call_tool("kill", {"id": "mcp-web", "remove": True})
    check(not r.is_error and r.structured_content.get("removed") is True, "kill --remove succeeds", text(r))
    r = await session.call_tool("status", {"id": "mcp-web"})
    check(r.is_error and "not found" in text(r), "the service is gone", text(r))
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{a.port}/", timeout=2).read()
        check(False, "the server stopped answering", "it still answers")
    except (urllib.error.URLError, ConnectionError, OSError):
        check(True, "the server stopped answering")


async def over_stdio(a):
    params = StdioServerParameters(
        command=a.solo,
        args=["--socket", a.socket, "mcp"],
        env={"SOLO_TOKEN_FILE": a.token_file},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await agent_session(session, a)


async def over_http(a):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    url = f"http://127.0.0.1:{a.http_port}/mcp"
    # No token: the endpoint answers 401 before any MCP message is read.
    req = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5)
        check(False, "http without a token is refused", "it was accepted")
    except urllib.error.HTTPError as e:
        check(e.code == 401, "http without a token is refused with 401", e.code)

    token = open(a.token_file).read().strip()
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name for t in (await session.list_tools()).tools}
                check(tools == TOOLS, "http: the tools are listed", sorted(tools))
                r = await session.call_tool("status", {"id": a.outside})
                check(r.is_error and "service:mcp-*" in text(r), "http: the request's token is the one checked", text(r))
                r = await session.call_tool("list", {})
                check(not r.is_error, "http: list succeeds", text(r))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--solo", required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--outside", required=True)
    p.add_argument("--http-port", type=int)
    a = p.parse_args()
    asyncio.run(over_stdio(a))
    if a.http_port:
        asyncio.run(over_http(a))
    print("mcp client: all checks passed", flush=True)


if __name__ == "__main__":
    main()
