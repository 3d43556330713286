//! The protobuf JSON mapping of the API's messages, through the descriptor
//! set compiled from our own proto: `--json` output, and the MCP adapter's
//! tool arguments and results.

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use std::sync::OnceLock;

/// The descriptors of `proto/solo/v1/solo.proto` (with its comments).
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The descriptor set is generated at build time from our own proto.
        DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap_or_default()
    })
}

/// The descriptor of `full_name` (e.g. `solo.v1.DeployRequest`).
pub fn message(full_name: &str) -> Option<MessageDescriptor> {
    pool().get_message_by_name(full_name)
}

/// Proto3 canonical JSON of a message (field names in lowerCamelCase).
pub fn json<M: prost::Message>(m: &M, full_name: &str) -> String {
    to_value(m, full_name, &SerializeOptions::new()).map(|v| v.to_string()).unwrap_or_else(|| "{}".into())
}

/// A message as a JSON value with the given options; `None` if
/// `full_name` is not one of ours.
pub fn to_value<M: prost::Message>(m: &M, full_name: &str, opts: &SerializeOptions) -> Option<serde_json::Value> {
    let desc = message(full_name)?;
    let dm = DynamicMessage::decode(desc, m.encode_to_vec().as_slice()).ok()?;
    dm.serialize_with_options(serde_json::value::Serializer, opts).ok()
}

/// Why a JSON value is not a valid `full_name` message.
#[derive(Debug, thiserror::Error)]
pub enum FromJsonError {
    #[error("no message {0} in the API")]
    UnknownMessage(String),
    /// `path` is the field's path in the JSON (`spec.limits.cpu_weight`).
    #[error("{path}: {reason}")]
    Field { path: String, reason: String },
}

/// Parses the protobuf JSON mapping of `full_name` (either field naming;
/// unknown fields refused) into `M`. The error names the field's path.
pub fn from_value<M: prost::Message + Default>(v: serde_json::Value, full_name: &str) -> Result<M, FromJsonError> {
    let desc = message(full_name).ok_or_else(|| FromJsonError::UnknownMessage(full_name.to_owned()))?;
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(v, &mut track);
    let dm = DynamicMessage::deserialize_with_options(desc, de, &DeserializeOptions::new()).map_err(|e| {
        let path = track.path().to_string();
        FromJsonError::Field { path: if path == "." { "(arguments)".into() } else { path }, reason: e.to_string() }
    })?;
    dm.transcode_to::<M>().map_err(|e| FromJsonError::Field { path: "(arguments)".into(), reason: e.to_string() })
}
