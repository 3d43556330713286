//! What the bench targets share: the daemon they start and the /proc
//! readings that tell a quiet run from a disturbed one. Included with
//! `#[path]` (a directory without `main.rs` is not a target of its own).

pub mod daemon;
pub mod procfs;

use solo::proto::v1 as pb;

/// A spec that runs `program` (uploaded as an executable) with `args` as
/// service `id` under `profile`; the caller sets the rest.
pub fn executable_spec(id: &str, program: &[u8], args: &[String], profile: &str) -> pb::ServiceSpec {
    pb::ServiceSpec {
        id: id.to_owned(),
        artifact: Some(pb::Artifact {
            kind: Some(pb::artifact::Kind::Executable(pb::ExecutableArtifact {
                content: program.to_vec(),
                ..Default::default()
            })),
        }),
        args: args.to_vec(),
        profile: profile.to_owned(),
        ..Default::default()
    }
}
