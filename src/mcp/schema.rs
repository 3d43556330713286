//! JSON Schemas of the tools, derived from the proto descriptors: every
//! field of the request message, its type, its comment in the proto as the
//! description, and the limits the daemon enforces (`crate::spec`) as
//! `pattern`, `maximum`, `maxItems`, … A limit names its field by full proto
//! name; a unit test fails if one names a field the proto no longer has.
//!
//! Field names are the proto's (`snake_case`); the arguments are parsed
//! with the protobuf JSON mapping, which also accepts `lowerCamelCase`.
//! Results are serialized with the proto field names and 64-bit integers
//! as numbers, so they match the output schemas built here.

use crate::auth::Perm;
use crate::cli::protojson;
use crate::spec::{self, grant::Readiness, Limits, ServiceSpec};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, OneofDescriptor};
use serde_json::{json, Map, Value};

/// Whether a schema describes a tool's arguments or its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Input,
    Output,
}

/// Deepest message nesting followed (the API's is 5: UpdateRequest →
/// ServiceSpec → Artifact → ScriptArtifact → source).
const MAX_DEPTH: usize = 8;

/// The largest `tail` a `Watch` accepts (the daemon refuses more).
pub const MAX_TAIL: u32 = 10_000;

/// The schema of message `full_name`, or an empty object schema if the
/// proto has no such message (a unit test checks every name used).
pub fn message(full_name: &str, mode: Mode) -> Map<String, Value> {
    match protojson::message(full_name) {
        Some(m) => object(&m, mode, 0),
        None => Map::from_iter([("type".to_owned(), json!("object"))]),
    }
}

/// The schema of one field of `full_name` (for tools that take a subset).
pub fn field(full_name: &str, field: &str, mode: Mode) -> Value {
    protojson::message(full_name)
        .and_then(|m| m.get_field_by_name(field))
        .map(|f| field_schema(&f, mode, 0))
        .unwrap_or_else(|| json!({}))
}

/// The comment above (or beside) a message or field in the proto.
pub fn comment(file: &prost_reflect::FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let loc = info.location.iter().find(|l| l.path == path)?;
    let text: Vec<&str> = [loc.leading_comments(), loc.trailing_comments()]
        .into_iter()
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!text.is_empty()).then(|| text.join(" "))
}

fn object(m: &MessageDescriptor, mode: Mode, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    if let Some(d) = comment(&m.parent_file(), m.path()) {
        out.insert("description".into(), json!(d));
    }
    let mut props = Map::new();
    for f in m.fields() {
        props.insert(f.name().to_owned(), field_schema(&f, mode, depth + 1));
    }
    out.insert("properties".into(), Value::Object(props));
    if mode == Mode::Input {
        let required = required(m.full_name());
        if !required.is_empty() {
            out.insert("required".into(), json!(required));
        }
        let oneofs: Vec<OneofDescriptor> = m.oneofs().filter(|o| !o.is_synthetic()).collect();
        if let [o] = oneofs.as_slice() {
            if required_oneof(o.full_name()) {
                let alts: Vec<Value> = o.fields().map(|f| json!({ "required": [f.name()] })).collect();
                out.insert("oneOf".into(), Value::Array(alts));
            }
        }
        // Unknown fields are refused when the arguments are parsed.
        out.insert("additionalProperties".into(), json!(false));
    }
    out
}

fn field_schema(f: &FieldDescriptor, mode: Mode, depth: usize) -> Value {
    let mut s = if f.is_map() {
        let value = match f.kind().as_message() {
            Some(entry) => kind_schema(&entry.map_entry_value_field(), mode, depth),
            None => json!({}),
        };
        json!({ "type": "object", "additionalProperties": value })
    } else if f.is_list() {
        json!({ "type": "array", "items": kind_schema(f, mode, depth) })
    } else {
        kind_schema(f, mode, depth)
    };
    let Value::Object(obj) = &mut s else { return s };
    let mut desc = comment(&f.parent_file(), f.path()).unwrap_or_default();
    if let Some(o) = f.containing_oneof().filter(|o| !o.is_synthetic()) {
        let names: Vec<String> = o.fields().map(|x| x.name().to_owned()).collect();
        let one = format!("One of: {}.", names.join(", "));
        desc = if desc.is_empty() { one } else { format!("{desc} ({one})") };
    }
    if mode == Mode::Input {
        if let Some(Value::Object(extra)) = limit(f.full_name()) {
            for (k, v) in extra {
                if k == "description" {
                    let v = v.as_str().unwrap_or_default();
                    desc = if desc.is_empty() { v.to_owned() } else { format!("{desc}. {v}") };
                } else if k == "items" {
                    if let (Some(Value::Object(items)), Value::Object(more)) = (obj.get_mut("items"), v) {
                        items.extend(more);
                    }
                } else if k == "additionalProperties" {
                    if let (Some(Value::Object(values)), Value::Object(more)) = (obj.get_mut("additionalProperties"), v)
                    {
                        values.extend(more);
                    }
                } else {
                    obj.insert(k, v);
                }
            }
        }
    }
    if !desc.is_empty() {
        obj.insert("description".into(), json!(desc));
    }
    s
}

fn kind_schema(f: &FieldDescriptor, mode: Mode, depth: usize) -> Value {
    match f.kind() {
        Kind::Message(m) if depth < MAX_DEPTH => Value::Object(object(&m, mode, depth)),
        Kind::Message(_) => json!({ "type": "object" }),
        Kind::Bytes if mode == Mode::Input && script_text(f) => {
            json!({ "type": "string", "description": "the script's source text (UTF-8)" })
        }
        k => scalar(&k),
    }
}

/// `ScriptArtifact.source` is taken as text, not base64: agents write
/// scripts. [`super::tools`] encodes it before parsing.
pub fn script_text(f: &FieldDescriptor) -> bool {
    f.full_name() == "solo.v1.ScriptArtifact.source"
}

fn scalar(k: &Kind) -> Value {
    match k {
        Kind::Double | Kind::Float => json!({ "type": "number" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({ "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX })
        }
        Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({ "type": "integer" }),
        Kind::Uint64 | Kind::Fixed64 => json!({ "type": "integer", "minimum": 0 }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Kind::Enum(e) => {
            let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
            json!({ "type": "string", "enum": names })
        }
        Kind::Message(_) => json!({ "type": "object" }),
    }
}

/// Fields a tool call must give (proto3 has no `required`; the daemon
/// refuses these when empty).
fn required(message: &str) -> &'static [&'static str] {
    match message {
        // UpdateRequest: spec, or an action with id.
        "solo.v1.DeployRequest" => &["spec"],
        "solo.v1.ServiceSpec" => &["id", "artifact"],
        "solo.v1.StatusRequest" | "solo.v1.KillRequest" => &["id"],
        "solo.v1.ScriptArtifact" => &["interpreter", "source"],
        "solo.v1.ExecutableArtifact" => &["content"],
        "solo.v1.HostPathArtifact" => &["path"],
        "solo.v1.Grant" => &["spec"],
        "solo.v1.TokenGrant" => &["permissions"],
        _ => &[],
    }
}

/// Oneofs of which exactly one member must be set.
fn required_oneof(oneof: &str) -> bool {
    matches!(
        oneof,
        "solo.v1.Artifact.kind" | "solo.v1.GrantCapabilityRequest.what" | "solo.v1.RevokeCapabilityRequest.what"
    )
}

/// Service ids: `[a-z0-9][a-z0-9-]{0,62}` (spec::validate_service_id).
const ID_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,62}$";

/// Every field limit by full proto field name, as extra schema keywords.
pub const LIMITED_FIELDS: &[&str] = &[
    "solo.v1.ServiceSpec.id",
    "solo.v1.ServiceSpec.args",
    "solo.v1.ServiceSpec.env",
    "solo.v1.ServiceSpec.profile",
    "solo.v1.ServiceSpec.replicas",
    "solo.v1.ServiceSpec.shutdown_timeout_ms",
    "solo.v1.ServiceSpec.labels",
    "solo.v1.ServiceSpec.grants",
    "solo.v1.ScriptArtifact.interpreter",
    "solo.v1.HostPathArtifact.path",
    "solo.v1.ExecutableArtifact.content",
    "solo.v1.ExecutableArtifact.sha256",
    "solo.v1.ScriptArtifact.sha256",
    "solo.v1.Limits.memory_bytes",
    "solo.v1.Limits.memory_high_bytes",
    "solo.v1.Limits.cpu_weight",
    "solo.v1.Limits.cpu_max_millicores",
    "solo.v1.Limits.max_pids",
    "solo.v1.Limits.max_open_files",
    "solo.v1.RestartSpec.backoff_jitter",
    "solo.v1.Readiness.startup_timeout_ms",
    "solo.v1.Grant.spec",
    "solo.v1.StatusRequest.id",
    "solo.v1.KillRequest.id",
    "solo.v1.KillRequest.timeout_ms",
    "solo.v1.WatchRequest.id",
    "solo.v1.WatchRequest.tail",
    "solo.v1.GrantCapabilityRequest.service",
    "solo.v1.TokenGrant.permissions",
    "solo.v1.TokenGrant.resource",
    "solo.v1.ListRequest.id_prefix",
    "solo.v1.ShutdownRequest.timeout_ms",
];

/// The limit of field `full_name`, if it has one (see [`LIMITED_FIELDS`]).
pub fn limit(full_name: &str) -> Option<Value> {
    let v = match full_name {
        "solo.v1.ServiceSpec.id"
        | "solo.v1.StatusRequest.id"
        | "solo.v1.KillRequest.id"
        | "solo.v1.GrantCapabilityRequest.service" => {
            json!({ "pattern": ID_PATTERN, "maxLength": 63 })
        }
        "solo.v1.WatchRequest.id" => json!({ "pattern": "^$|^[a-z0-9][a-z0-9-]{0,62}$", "maxLength": 63 }),
        "solo.v1.ListRequest.id_prefix" => json!({ "pattern": "^[a-z0-9-]*$", "maxLength": 63 }),
        "solo.v1.ServiceSpec.args" => json!({
            "maxItems": spec::MAX_ARGS,
            "items": { "maxLength": spec::MAX_ARG_BYTES },
            "description": format!("argv and env together at most {} bytes", spec::MAX_ARGV_ENV_TOTAL),
        }),
        "solo.v1.ServiceSpec.env" => json!({
            "maxProperties": spec::MAX_ENV,
            "description": format!(
                "names {} and {}* are set by Solo and refused",
                spec::RESERVED_ENV.join(", "),
                spec::RESERVED_ENV_PREFIX
            ),
        }),
        "solo.v1.ServiceSpec.profile" => json!({
            "examples": crate::profiles::BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            "description": "built-in: base (host network), default (no network), network-client, web-server (a granted listening socket only), strict (compute only); the daemon may know more",
        }),
        "solo.v1.ServiceSpec.replicas" => json!({ "maximum": ServiceSpec::MAX_REPLICAS }),
        "solo.v1.ServiceSpec.shutdown_timeout_ms" | "solo.v1.KillRequest.timeout_ms" => {
            json!({ "maximum": ServiceSpec::MAX_SHUTDOWN_TIMEOUT_MS })
        }
        "solo.v1.ShutdownRequest.timeout_ms" => json!({ "maximum": 600_000 }),
        "solo.v1.ServiceSpec.labels" => json!({
            "maxProperties": spec::MAX_LABELS,
            "additionalProperties": { "maxLength": spec::MAX_LABEL_VALUE },
        }),
        "solo.v1.ServiceSpec.grants" => json!({ "maxItems": spec::grant::MAX_GRANTS }),
        "solo.v1.Grant.spec" => json!({
            "description": "dir:PATH:ro|rw, listen:tcp:ADDR:PORT, listen:unix:PATH, service:ID or connect:tcp:HOST:PORT",
        }),
        "solo.v1.ScriptArtifact.interpreter" => json!({ "enum": spec::INTERPRETERS }),
        "solo.v1.HostPathArtifact.path" => json!({
            "pattern": "^/",
            "maxLength": spec::MAX_HOST_PATH,
            "description": "an ELF binary already on the host, executable by other users",
        }),
        "solo.v1.ExecutableArtifact.content" => json!({
            "description": "base64 of the ELF file; at most the daemon's upload limit (solo serve --upload-limit)",
        }),
        "solo.v1.ExecutableArtifact.sha256" | "solo.v1.ScriptArtifact.sha256" => json!({
            "pattern": "^([0-9a-f]{64})?$",
            "description": "optional: the sha256 of the bytes (64 lowercase hex digits), checked by the daemon",
        }),
        "solo.v1.Limits.memory_bytes" | "solo.v1.Limits.memory_high_bytes" => json!({
            "maximum": Limits::MAX_MEMORY,
            "description": format!("0 = the profile's default; else at least {} bytes", Limits::MIN_MEMORY),
        }),
        "solo.v1.Limits.cpu_weight" => json!({ "maximum": Limits::MAX_CPU_WEIGHT }),
        "solo.v1.Limits.cpu_max_millicores" => json!({
            "maximum": Limits::MAX_MILLICORES,
            "description": format!("else at least {}", Limits::MIN_MILLICORES),
        }),
        "solo.v1.Limits.max_pids" => json!({ "maximum": Limits::MAX_PIDS }),
        "solo.v1.Limits.max_open_files" => json!({ "maximum": Limits::MAX_OPEN_FILES }),
        "solo.v1.RestartSpec.backoff_jitter" => json!({ "minimum": 0.0, "maximum": 1.0 }),
        "solo.v1.Readiness.startup_timeout_ms" => json!({ "maximum": Readiness::MAX_TIMEOUT_MS }),
        "solo.v1.WatchRequest.tail" => json!({ "maximum": MAX_TAIL }),
        "solo.v1.TokenGrant.permissions" => json!({
            "items": { "enum": Perm::ALL.iter().map(|p| p.name()).collect::<Vec<_>>() },
            "minItems": 1,
        }),
        "solo.v1.TokenGrant.resource" => json!({
            "description": "* | service:ID | service:PREFIX* | tcp:HOST:PORT | tcp:HOST:*; empty = yours; never wider than yours",
        }),
        _ => return None,
    };
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_names_a_field_of_the_proto() {
        for name in LIMITED_FIELDS {
            let (msg, field) = name.rsplit_once('.').expect("a dotted name");
            let m = protojson::message(msg).unwrap_or_else(|| panic!("{name}: no message {msg}"));
            assert!(m.get_field_by_name(field).is_some(), "{name}: no field {field} in {msg}");
            assert!(limit(name).is_some(), "{name} is listed but has no limit");
        }
    }

    #[test]
    fn the_deploy_schema_carries_the_proto_comments_and_the_limits() {
        let s = Value::Object(message("solo.v1.DeployRequest", Mode::Input));
        let spec = &s["properties"]["spec"];
        assert_eq!(s["required"], json!(["spec"]));
        assert_eq!(spec["required"], json!(["id", "artifact"]));
        assert_eq!(spec["properties"]["id"]["pattern"], json!(ID_PATTERN));
        assert!(spec["properties"]["id"]["description"].as_str().unwrap_or("").contains("[a-z0-9]"));
        assert_eq!(spec["properties"]["replicas"]["maximum"], json!(ServiceSpec::MAX_REPLICAS));
        assert_eq!(spec["properties"]["limits"]["properties"]["cpu_weight"]["maximum"], json!(Limits::MAX_CPU_WEIGHT));
        let artifact = &spec["properties"]["artifact"];
        assert_eq!(artifact["oneOf"].as_array().map(Vec::len), Some(3));
        let script = &artifact["properties"]["script"]["properties"];
        assert_eq!(script["source"]["type"], json!("string"));
        assert!(script["source"].get("contentEncoding").is_none(), "script source is text");
        assert_eq!(script["interpreter"]["enum"], json!(spec::INTERPRETERS));
        assert_eq!(spec["properties"]["env"]["additionalProperties"]["type"], json!("string"));
        assert_eq!(spec["properties"]["labels"]["additionalProperties"]["maxLength"], json!(256));
        assert_eq!(spec["properties"]["restart"]["properties"]["policy"]["enum"][1], json!("RESTART_POLICY_ALWAYS"));
        assert_eq!(spec["properties"]["args"]["items"]["maxLength"], json!(spec::MAX_ARG_BYTES));
    }

    #[test]
    fn output_schemas_have_no_input_constraints() {
        let s = Value::Object(message("solo.v1.StatusResponse", Mode::Output));
        let svc = &s["properties"]["service"];
        assert!(svc.get("required").is_none());
        assert!(svc.get("additionalProperties").is_none());
        assert_eq!(svc["properties"]["instances"]["type"], json!("array"));
        assert_eq!(svc["properties"]["instances"]["items"]["properties"]["pid"]["type"], json!("integer"));
    }
}
