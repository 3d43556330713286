//! The tools: each is one RPC of `solo.v1.Solo`, called with the caller's
//! token. Arguments are the RPC's request message in the protobuf JSON
//! mapping (field names as in the proto); the result is its reply, as
//! structured content and as text. A refusal of the API (a token outside
//! its scope, a bad field) comes back as a tool error carrying the API's
//! code and message: the agent reads why, the server goes on.
//!
//! Adding a tool for a new RPC is one [`ToolKind`] variant: its name,
//! description, request and reply messages, and one arm in [`call`].

use super::schema::{self, Mode};
use crate::cli::{protojson, Client};
use crate::proto::v1 as pb;
use base64::Engine;
use prost_reflect::SerializeOptions;
use rmcp::model::{CallToolResult, ContentBlock, Tool, ToolAnnotations};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The tools `solo mcp` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    Deploy,
    Status,
    List,
    Logs,
    Kill,
    Grant,
    Revoke,
    /// `Update`: roll out a spec (rolling/canary/blue-green), roll back,
    /// promote or abort; returns the progress to the end.
    Update,
}

/// Most log text a `logs` call returns (the newest lines are kept).
pub const MAX_LOG_BYTES: usize = 64 << 10;
/// Default number of buffered lines `logs` asks for.
pub const DEFAULT_TAIL: u32 = 100;
/// How long a `logs` snapshot or an `update` stream may take.
const STREAM_TIMEOUT: Duration = Duration::from_secs(600);

impl ToolKind {
    pub const OFFERED: [ToolKind; 8] = [
        ToolKind::Deploy,
        ToolKind::Status,
        ToolKind::List,
        ToolKind::Logs,
        ToolKind::Kill,
        ToolKind::Grant,
        ToolKind::Revoke,
        ToolKind::Update,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ToolKind::Deploy => "deploy",
            ToolKind::Status => "status",
            ToolKind::List => "list",
            ToolKind::Logs => "logs",
            ToolKind::Kill => "kill",
            ToolKind::Grant => "grant",
            ToolKind::Revoke => "revoke",
            ToolKind::Update => "update",
        }
    }

    /// The offered tool called `name`.
    pub fn parse(name: &str) -> Option<ToolKind> {
        Self::OFFERED.into_iter().find(|k| k.name() == name)
    }

    fn description(self) -> &'static str {
        match self {
            ToolKind::Deploy => {
                "Deploy a new service: each instance runs as its own sandboxed process, restarted when it crashes. \
                 The artifact is a script (source text + interpreter), an ELF executable (base64) or a host path \
                 (operator tokens only). A server that should be reachable gets a listening socket as a grant, e.g. \
                 {\"spec\": \"listen:tcp:127.0.0.1:8080\", \"name\": \"http\"}, passed as LISTEN_FDS like systemd \
                 socket activation. Set wait to return once every instance runs (and is ready)."
            }
            ToolKind::Status => {
                "One service: state, revision, instances (pid, uptime, restarts, memory/CPU/pids usage, last exit), \
                 limits, profile and what its sandbox enforces, grants."
            }
            ToolKind::List => "List the services this token can see, filtered by state, tier, id prefix or labels.",
            ToolKind::Logs => {
                "The newest buffered output lines (stdout, stderr, and Solo's own lines about the instance) of one \
                 service, oldest first; at most 64 KiB."
            }
            ToolKind::Kill => {
                "Stop a service: SIGTERM, a grace period, then SIGKILL of its whole cgroup (force: at once). \
                 remove also deletes its desired state, so it does not come back."
            }
            ToolKind::Grant => {
                "Give a running service a descriptor (fd: dir:, listen:tcp:, listen:unix:, service:, connect:tcp:), \
                 or issue a token no wider than yours (token)."
            }
            ToolKind::Revoke => {
                "Revoke a token (and every token derived from it) by token_id, or an fd grant by grant_id (SERVICE/NAME)."
            }
            ToolKind::Update => {
                "Replace a service's running revision without dropping a request: spec is the whole new spec (as \
                 status shows it, changed; without artifact the running one is kept), with a strategy (rolling: \
                 max_surge/max_unavailable; canary: percent, window_ms, manual; blue_green: grace_ms) and \
                 min_ready_ms. A new revision that crashes, is not ready in time or keeps crashing rolls back by \
                 itself (rolled_back and reason in the last progress). Or give id with action \
                 UPDATE_ACTION_ROLLBACK (to_revision: a kept revision, 0: the previous one), UPDATE_ACTION_PROMOTE, \
                 UPDATE_ACTION_ABORT or UPDATE_ACTION_FOLLOW for the update in progress. Returns every progress \
                 step to the end."
            }
        }
    }

    /// The RPC's request message.
    pub fn request(self) -> &'static str {
        match self {
            ToolKind::Deploy => "solo.v1.DeployRequest",
            ToolKind::Status => "solo.v1.StatusRequest",
            ToolKind::List => "solo.v1.ListRequest",
            ToolKind::Logs => "solo.v1.WatchRequest",
            ToolKind::Kill => "solo.v1.KillRequest",
            ToolKind::Grant => "solo.v1.GrantCapabilityRequest",
            ToolKind::Revoke => "solo.v1.RevokeCapabilityRequest",
            ToolKind::Update => "solo.v1.UpdateRequest",
        }
    }

    /// The RPC's reply message (for `logs`: one log line).
    pub fn reply(self) -> &'static str {
        match self {
            ToolKind::Deploy => "solo.v1.DeployResponse",
            ToolKind::Status => "solo.v1.StatusResponse",
            ToolKind::List => "solo.v1.ListResponse",
            ToolKind::Logs => "solo.v1.LogLine",
            ToolKind::Kill => "solo.v1.KillResponse",
            ToolKind::Grant => "solo.v1.GrantCapabilityResponse",
            ToolKind::Revoke => "solo.v1.RevokeCapabilityResponse",
            ToolKind::Update => "solo.v1.UpdateProgress",
        }
    }

    fn annotations(self) -> ToolAnnotations {
        let read_only = matches!(self, ToolKind::Status | ToolKind::List | ToolKind::Logs);
        let mut a = ToolAnnotations::with_title(self.name()).read_only(read_only);
        a.destructive_hint = Some(matches!(self, ToolKind::Kill | ToolKind::Revoke | ToolKind::Update));
        a.idempotent_hint = Some(read_only || self == ToolKind::Kill);
        a.open_world_hint = Some(false);
        a
    }

    /// The tool as `tools/list` shows it.
    pub fn tool(self) -> Tool {
        let (input, output) = match self {
            ToolKind::Logs => logs_schemas(),
            ToolKind::Update => {
                let item = Value::Object(schema::message(self.reply(), Mode::Output));
                let out = json!({ "type": "object", "properties": { "progress": { "type": "array", "items": item } } });
                let mut input = schema::message(self.request(), Mode::Input);
                // An update keeps the running artifact when the spec has none.
                if let Some(Value::Array(req)) =
                    input.get_mut("properties").and_then(|p| p.pointer_mut("/spec/required"))
                {
                    req.retain(|f| f != "artifact");
                }
                (input, as_object(out))
            }
            _ => (schema::message(self.request(), Mode::Input), schema::message(self.reply(), Mode::Output)),
        };
        Tool::new(self.name(), self.description(), Arc::new(input))
            .with_raw_output_schema(Arc::new(output))
            .with_annotations(self.annotations())
    }
}

fn as_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `logs` takes `id` and `tail` of `WatchRequest`; it returns log lines.
fn logs_schemas() -> (Map<String, Value>, Map<String, Value>) {
    let mut tail = schema::field("solo.v1.WatchRequest", "tail", Mode::Input);
    if let Value::Object(t) = &mut tail {
        t.insert("minimum".into(), json!(1));
        t.insert("default".into(), json!(DEFAULT_TAIL));
        t.insert("description".into(), json!(format!("how many of the newest lines (default {DEFAULT_TAIL})")));
    }
    let mut id = schema::limit("solo.v1.StatusRequest.id").unwrap_or_else(|| json!({}));
    if let Value::Object(i) = &mut id {
        i.insert("type".into(), json!("string"));
        i.insert("description".into(), json!("the service"));
    }
    let input = json!({
        "type": "object",
        "properties": { "id": id, "tail": tail },
        "required": ["id"],
        "additionalProperties": false,
    });
    let line = Value::Object(schema::message("solo.v1.LogLine", Mode::Output));
    let output = json!({
        "type": "object",
        "properties": {
            "lines": { "type": "array", "items": line },
            "truncated": { "type": "boolean", "description": "older lines were left out to stay within 64 KiB" },
        },
    });
    (as_object(input), as_object(output))
}

/// Results name fields as the proto does, 64-bit integers as numbers.
fn out_opts() -> SerializeOptions {
    SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false)
}

fn ok<M: prost::Message>(m: &M, full_name: &str) -> CallToolResult {
    let v = protojson::to_value(m, full_name, &out_opts()).unwrap_or_else(|| json!({}));
    structured(v)
}

fn structured(v: Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = Some(v);
    r
}

/// A tool error: the text an agent reads, and `{code, message}`.
pub fn error(code: &str, message: &str) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(format!("{code}: {message}"))]);
    r.structured_content = Some(json!({ "error": { "code": code, "message": message } }));
    r
}

fn status(s: tonic::Status) -> CallToolResult {
    error(crate::cli::code_name(s.code()), s.message())
}

/// Parses `args` as message `name`; a bad field is a tool error naming it.
fn parse<M: prost::Message + Default>(args: Value, name: &str) -> Result<M, CallToolResult> {
    protojson::from_value(args, name).map_err(|e| error("invalid argument", &e.to_string()))
}

/// `ScriptArtifact.source` arrives as text; the JSON mapping wants base64.
fn encode_script_source(args: &mut Value) {
    if let Some(Value::String(src)) = args.pointer_mut("/spec/artifact/script/source") {
        *src = base64::engine::general_purpose::STANDARD.encode(src.as_bytes());
    }
}

/// Runs tool `kind` with `args` on `c` (which presents the caller's token).
pub async fn call(c: &mut Client, kind: ToolKind, mut args: Value) -> CallToolResult {
    let r = match kind {
        ToolKind::Deploy => {
            encode_script_source(&mut args);
            match parse::<pb::DeployRequest>(args, kind.request()) {
                Ok(req) => c.deploy(req).await.map(|r| ok(r.get_ref(), kind.reply())),
                Err(e) => return e,
            }
        }
        ToolKind::Status => match parse::<pb::StatusRequest>(args, kind.request()) {
            Ok(req) => c.status(req).await.map(|r| ok(r.get_ref(), kind.reply())),
            Err(e) => return e,
        },
        ToolKind::List => match parse::<pb::ListRequest>(args, kind.request()) {
            Ok(req) => c.list(req).await.map(|r| ok(r.get_ref(), kind.reply())),
            Err(e) => return e,
        },
        ToolKind::Kill => match parse::<pb::KillRequest>(args, kind.request()) {
            Ok(req) => c.kill(req).await.map(|r| ok(r.get_ref(), kind.reply())),
            Err(e) => return e,
        },
        ToolKind::Grant => match parse::<pb::GrantCapabilityRequest>(args, kind.request()) {
            Ok(req) => c.grant_capability(req).await.map(|r| ok(r.get_ref(), kind.reply())),
            Err(e) => return e,
        },
        ToolKind::Revoke => match parse::<pb::RevokeCapabilityRequest>(args, kind.request()) {
            Ok(req) => c.revoke_capability(req).await.map(|r| ok(r.get_ref(), kind.reply())),
            Err(e) => return e,
        },
        ToolKind::Logs => return logs(c, args).await,
        ToolKind::Update => return update(c, args).await,
    };
    r.unwrap_or_else(status)
}

async fn logs(c: &mut Client, args: Value) -> CallToolResult {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Args {
        id: String,
        tail: Option<u32>,
    }
    let a: Args = match serde_json::from_value(args) {
        Ok(a) => a,
        Err(e) => return error("invalid argument", &format!("(arguments): {e}")),
    };
    let tail = a.tail.unwrap_or(DEFAULT_TAIL);
    if tail == 0 || tail > schema::MAX_TAIL {
        return error("invalid argument", &format!("tail: {tail} is not between 1 and {}", schema::MAX_TAIL));
    }
    let req = pb::WatchRequest { id: a.id, include_logs: true, include_events: false, tail, snapshot: true };
    let collect = async {
        let mut s = c.watch(req).await?.into_inner();
        let mut lines = Vec::new();
        while let Some(item) = s.message().await? {
            if let Some(pb::watch_event::Payload::Log(l)) = item.payload {
                lines.push(l);
            }
        }
        Ok::<_, tonic::Status>(lines)
    };
    let lines = match tokio::time::timeout(STREAM_TIMEOUT, collect).await {
        Ok(Ok(l)) => l,
        Ok(Err(s)) => return status(s),
        Err(_) => return error("deadline exceeded", "the log snapshot did not end in time"),
    };
    // Keep the newest lines within the byte budget.
    let mut budget = MAX_LOG_BYTES;
    let mut kept = Vec::new();
    for l in lines.iter().rev() {
        let n = l.line.len() + l.service.len() + 16;
        if n > budget {
            break;
        }
        budget -= n;
        kept.push(protojson::to_value(l, "solo.v1.LogLine", &out_opts()).unwrap_or_else(|| json!({})));
    }
    let truncated = kept.len() < lines.len();
    kept.reverse();
    let text: Vec<String> = lines[lines.len() - kept.len()..]
        .iter()
        .map(|l| {
            let tag = match pb::LogStream::try_from(l.stream) {
                Ok(pb::LogStream::Stderr) => "err",
                Ok(pb::LogStream::Supervisor) => "solo",
                _ => "out",
            };
            format!("{}.{} {tag} | {}", l.service, l.replica, l.line)
        })
        .collect();
    let mut r = CallToolResult::success(vec![ContentBlock::text(if truncated {
        format!("(older lines left out)\n{}", text.join("\n"))
    } else {
        text.join("\n")
    })]);
    r.structured_content = Some(json!({ "lines": kept, "truncated": truncated }));
    r
}

async fn update(c: &mut Client, mut args: Value) -> CallToolResult {
    encode_script_source(&mut args);
    let req = match parse::<pb::UpdateRequest>(args, ToolKind::Update.request()) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let collect = async {
        let mut s = c.update(req).await?.into_inner();
        let mut progress = Vec::new();
        while let Some(p) = s.message().await? {
            progress.push(protojson::to_value(&p, "solo.v1.UpdateProgress", &out_opts()).unwrap_or_else(|| json!({})));
        }
        Ok::<_, tonic::Status>(progress)
    };
    match tokio::time::timeout(STREAM_TIMEOUT, collect).await {
        Ok(Ok(progress)) => structured(json!({ "progress": progress })),
        Ok(Err(s)) => status(s),
        Err(_) => error("deadline exceeded", "the update did not finish in time; `status` shows where it is"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_request_and_a_reply_in_the_proto() {
        for k in ToolKind::OFFERED {
            assert!(protojson::message(k.request()).is_some(), "{}: {}", k.name(), k.request());
            assert!(protojson::message(k.reply()).is_some(), "{}: {}", k.name(), k.reply());
            let t = k.tool();
            assert_eq!(t.input_schema.get("type"), Some(&json!("object")), "{}", k.name());
        }
        assert_eq!(ToolKind::parse("update"), Some(ToolKind::Update));
        let t = ToolKind::Update.tool();
        let spec_required = t.input_schema.get("properties").and_then(|p| p.pointer("/spec/required"));
        assert_eq!(spec_required, Some(&json!(["id"])), "an update may keep the artifact");
        assert!(t.input_schema.get("required").is_none(), "spec or an action with id");
    }

    #[test]
    fn script_source_is_text_and_a_bad_field_is_named() {
        let mut args =
            json!({ "spec": { "id": "a", "artifact": { "script": { "interpreter": "sh", "source": "echo hi" } } } });
        encode_script_source(&mut args);
        let req: pb::DeployRequest = parse(args, "solo.v1.DeployRequest").map_err(|_| "parse").expect("parses");
        let Some(pb::artifact::Kind::Script(s)) = req.spec.and_then(|s| s.artifact).and_then(|a| a.kind) else {
            panic!("no script")
        };
        assert_eq!(s.source, b"echo hi");
        let bad = json!({ "spec": { "id": "a", "limits": { "cpu_weight": "many" } } });
        let e = parse::<pb::DeployRequest>(bad, "solo.v1.DeployRequest").expect_err("refused");
        let text = serde_json::to_string(&e.content).unwrap_or_default();
        assert!(text.contains("spec.limits.cpu_weight"), "{text}");
        let unknown = json!({ "spec": { "idd": "a" } });
        let e = parse::<pb::DeployRequest>(unknown, "solo.v1.DeployRequest").expect_err("refused");
        let text = serde_json::to_string(&e.content).unwrap_or_default();
        assert!(text.contains("idd"), "{text}");
    }
}
