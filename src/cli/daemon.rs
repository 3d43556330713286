//! `solo daemon info` and `solo daemon reexec`.

use super::commands::status_err;
use super::output::json;
use super::{Client, DaemonCommand, Global};
use crate::proto::v1 as pb;
use anyhow::bail;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub async fn run(g: &Global, c: &mut Client, socket: &Path, cmd: DaemonCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DaemonCommand::Info => {
            let i = c.info(pb::InfoRequest {}).await.map_err(status_err)?.into_inner();
            if g.json {
                println!("{}", json(&i, "solo.v1.DaemonInfo"));
            } else {
                println!("version:   {}", i.version);
                println!("pid:       {}", i.pid);
                println!("binary:    {}", i.binary);
                println!(
                    "image:     started {} s ago{}",
                    (now_ms() - i.image_started_at_unix_ms).max(0) / 1000,
                    if i.reexecuted { " (by a re-exec)" } else { "" }
                );
                println!("services:  {} ({} instance(s) re-adopted at start)", i.services, i.adopted);
            }
        }
        DaemonCommand::Reexec { timeout } => {
            let r = c.reexec(pb::ReexecRequest {}).await.map_err(status_err)?.into_inner();
            // The old image stops accepting, the new one serves the same
            // socket: ask until an image that started later answers.
            let deadline = Instant::now() + Duration::from_millis(u64::from(timeout));
            let token = g.token().ok();
            let info = loop {
                if Instant::now() > deadline {
                    bail!(
                        "the daemon did not come back within {timeout} ms after the re-exec of {} (pid {}); see its log",
                        r.binary,
                        r.pid
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                let Ok(mut fresh) = super::connect(socket, token.as_deref()).await else { continue };
                match fresh.info(pb::InfoRequest {}).await {
                    Ok(i) if i.get_ref().image_started_at_unix_ms > r.image_started_at_unix_ms => break i.into_inner(),
                    _ => continue,
                }
            };
            if g.json {
                println!("{}", json(&info, "solo.v1.DaemonInfo"));
            } else {
                println!(
                    "re-executed {} (pid {}, version {}): {} instance(s) kept running, {} re-adopted",
                    info.binary, info.pid, info.version, r.running, info.adopted
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
