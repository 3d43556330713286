//! Server-rendered HTML: the login page, the page shell, and the fragments
//! the page's script swaps in (the service tree, one service, its
//! profile). Everything that came from the daemon or the token is escaped.

use super::session::Sample;
use crate::auth::{Perm, Token};
use crate::cli::protojson;
use crate::proto::v1 as pb;
use crate::spec::format_bytes;
use std::fmt::Write;

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/static/ui.css\"></head>",
        esc(title)
    )
}

/// The login form (`error`: why the last attempt failed).
pub fn login(error: Option<&str>) -> String {
    let err = error.map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e))).unwrap_or_default();
    format!(
        "{}<body class=\"login\"><main><h1>Solo</h1>\
         <p>Log in with a Solo token. The page shows and does what the token allows, nothing more: an operator \
         token (<code>/var/lib/solo/operator.token</code>) sees everything; \
         <code>solo token issue --perm status,watch</code> makes a read-only one.</p>{err}\
         <form method=\"post\" action=\"/login\"><label for=\"token\">Token</label>\
         <textarea id=\"token\" name=\"token\" rows=\"4\" autocomplete=\"off\" spellcheck=\"false\" required></textarea>\
         <button type=\"submit\" id=\"login\">Log in</button></form></main></body></html>",
        head("Solo — log in")
    )
}

/// What the session's token says about itself (decoded, not verified:
/// only to choose which buttons to show; the daemon decides).
pub struct Who {
    pub subject: String,
    pub resource: String,
    pub perms: Vec<&'static str>,
    pub can_kill: bool,
    pub can_revoke: bool,
}

impl Who {
    pub fn of(token: &str) -> Who {
        match Token::parse(token) {
            Ok(t) => {
                let c = t.claims();
                Who {
                    subject: c.subject.clone(),
                    resource: c.resource.clone(),
                    perms: c.perms.names(),
                    can_kill: c.perms.contains(Perm::Kill),
                    can_revoke: c.perms.contains(Perm::Grant),
                }
            }
            Err(_) => {
                Who { subject: "?".into(), resource: "?".into(), perms: vec![], can_kill: false, can_revoke: false }
            }
        }
    }
}

/// The page: header, tree, the selected service, the live events.
pub fn shell(who: &Who, csrf: &str, tree_html: &str, daemon: Option<&pb::DaemonInfo>) -> String {
    let mode = if who.can_kill || who.can_revoke { "" } else { " · read-only" };
    let daemon = daemon.map_or(String::new(), |d| {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let up = u64::try_from(now_ms - d.image_started_at_unix_ms).unwrap_or(0);
        format!(
            "<span id=\"daemon\">solo {} · pid {} · up {}{}</span>",
            esc(&d.version),
            d.pid,
            crate::cli::output::duration_ms(up),
            if d.reexecuted { " (re-exec'd)" } else { "" }
        )
    });
    format!(
        "{}<body><meta name=\"csrf\" content=\"{}\">\
         <header><h1>Solo</h1>{daemon}<span id=\"who\">{} · {} on <code>{}</code>{mode}</span>\
         <span id=\"live\" class=\"off\">connecting…</span>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">Log out</button></form></header>\
         <main><section id=\"tree-pane\"><h2>Services</h2><div id=\"tree\">{tree_html}</div></section>\
         <section id=\"detail-pane\"><div id=\"detail\"><p class=\"hint\">Select a service.</p></div>\
         <div id=\"profile\"></div></section>\
         <section id=\"events-pane\"><h2>Events</h2><ol id=\"events\"></ol></section></main>\
         <script src=\"/static/ui.js\"></script></body></html>",
        head("Solo"),
        esc(csrf),
        esc(&who.subject),
        esc(&who.perms.join(",")),
        esc(&who.resource),
        esc(csrf),
    )
}

fn state_class(s: &str) -> &'static str {
    match s {
        "running" => "ok",
        "starting" | "stopping" | "backoff" | "degraded" => "warn",
        "failed" | "quarantined" => "bad",
        _ => "idle",
    }
}

/// CPU in millicores between consecutive samples, and memory in bytes.
fn series(h: &[Sample]) -> (Vec<f64>, Vec<f64>) {
    let cpu = h
        .windows(2)
        .map(|w| {
            let dt = w[1].at.duration_since(w[0].at).as_micros() as f64;
            let du = w[1].cpu_usec.saturating_sub(w[0].cpu_usec) as f64;
            if dt > 0.0 {
                du / dt * 1000.0
            } else {
                0.0
            }
        })
        .collect();
    (cpu, h.iter().map(|s| s.memory_bytes as f64).collect())
}

/// An SVG line of `values` in a `w`×`h` box, scaled to their maximum.
pub fn spark(values: &[f64], w: u32, h: u32, class: &str) -> String {
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let n = values.len().max(2) - 1;
    let mut pts = String::new();
    for (i, v) in values.iter().enumerate() {
        let x = f64::from(w) * i as f64 / n as f64;
        // 10 % headroom, so a flat line is not drawn along the top edge.
        let y = if max > 0.0 { f64::from(h) - 1.0 - v / (max * 1.1) * f64::from(h - 2) } else { f64::from(h) - 1.0 };
        let _ = write!(pts, "{x:.1},{y:.1} ");
    }
    format!(
        "<svg class=\"spark {class}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">\
         <polyline points=\"{}\" fill=\"none\"/></svg>",
        pts.trim_end()
    )
}

fn cpu_text(m: f64) -> String {
    if m >= 1000.0 {
        format!("{:.2} cores", m / 1000.0)
    } else {
        format!("{m:.0}m")
    }
}

/// The service tree: tiers, then services, then their replicas.
pub fn tree(services: &[pb::ServiceStatus], history: impl Fn(&str) -> Vec<Sample>) -> String {
    if services.is_empty() {
        return "<p class=\"hint\" id=\"empty\">No services this token can see.</p>".into();
    }
    let mut out = String::new();
    for name in ["system", "user"] {
        let of_tier: Vec<&pb::ServiceStatus> =
            services.iter().filter(|s| (s.tier == pb::Tier::System as i32) == (name == "system")).collect();
        if of_tier.is_empty() {
            continue;
        }
        let _ = write!(out, "<h3 class=\"tier\">{name}</h3><table class=\"services\"><thead><tr><th>service</th><th>state</th><th>ready</th><th>restarts</th><th>CPU</th><th>memory</th></tr></thead>");
        for s in of_tier {
            let state = crate::cli::output::service_state(s.state);
            let running = s.instances.iter().filter(|i| i.state == pb::InstanceState::Running as i32).count();
            let restarts: u32 = s.instances.iter().map(|i| i.restart_count).sum();
            let (cpu, mem) = series(&history(&s.id));
            let _ = write!(
                out,
                "<tbody class=\"svc\" data-service=\"{id}\"><tr class=\"service\"><td class=\"id\">{id}</td>\
                 <td><span class=\"state {cls}\">{state}</span></td><td>{running}/{replicas}</td><td>{restarts}</td>\
                 <td>{}<span class=\"num\">{}</span></td><td>{}<span class=\"num\">{}</span></td></tr>",
                spark(&cpu, 80, 18, "cpu"),
                cpu.last().map_or("-".into(), |m| cpu_text(*m)),
                spark(&mem, 80, 18, "mem"),
                mem.last().map_or("-".into(), |b| format_bytes(*b as u64)),
                id = esc(&s.id),
                cls = state_class(state),
                replicas = s.replicas,
            );
            for i in &s.instances {
                let st = crate::cli::output::instance_state(i.state);
                let pid = if i.pid == 0 { "-".to_owned() } else { format!("pid {}", i.pid) };
                let _ = write!(
                    out,
                    "<tr class=\"replica\"><td class=\"id\">└ {}.{}</td><td><span class=\"state {}\">{st}</span></td>\
                     <td>{pid}</td><td>{}</td><td colspan=\"2\">{}</td></tr>",
                    esc(&s.id),
                    i.replica,
                    state_class(st),
                    i.restart_count,
                    esc(i.last_exit.as_ref().map(|e| e.reason.as_str()).unwrap_or("")),
                );
            }
            out.push_str("</tbody>");
        }
        out.push_str("</table>");
    }
    out
}

/// One service: status, usage graphs, grants, and what the token may do.
pub fn service(s: &pb::ServiceStatus, history: &[Sample], who: &Who) -> String {
    let state = crate::cli::output::service_state(s.state);
    let (cpu, mem) = series(history);
    let mut out = format!(
        "<h2 id=\"detail-id\" data-service=\"{id}\">{id} <span class=\"state {}\">{state}</span></h2>",
        state_class(state),
        id = esc(&s.id)
    );
    if !s.failure_reason.is_empty() {
        let _ = write!(out, "<p class=\"error\">{}</p>", esc(&s.failure_reason));
    }
    let _ = write!(
        out,
        "<dl><dt>revision</dt><dd>{}</dd><dt>artifact</dt><dd>{} <code>{}</code></dd>\
         <dt>profile</dt><dd>{} <code>{}</code></dd><dt>uid</dt><dd>{}</dd></dl>",
        s.revision,
        esc(&s.artifact_kind),
        esc(s.artifact_sha256.get(..12).unwrap_or("")),
        esc(&s.profile),
        esc(s.profile_sha256.get(..12).unwrap_or("")),
        s.uid
    );
    let minutes = history.len() as u64 * super::session::SAMPLE_EVERY.as_secs() / 60;
    let _ = write!(
        out,
        "<div class=\"graphs\"><figure><figcaption>CPU, last {} min · now {} · peak {}</figcaption>{}</figure>\
         <figure><figcaption>memory · now {} · peak {}</figcaption>{}</figure></div>",
        minutes.max(1),
        cpu.last().map_or("-".into(), |m| cpu_text(*m)),
        cpu_text(cpu.iter().copied().fold(0.0, f64::max)),
        spark(&cpu, 360, 80, "cpu"),
        mem.last().map_or("-".into(), |b| format_bytes(*b as u64)),
        format_bytes(mem.iter().copied().fold(0.0, f64::max) as u64),
        spark(&mem, 360, 80, "mem"),
    );
    out.push_str("<h3>instances</h3><table class=\"instances\"><tr><th>replica</th><th>state</th><th>pid</th><th>uptime</th><th>restarts</th><th>memory</th><th>last exit</th></tr>");
    for i in &s.instances {
        let u = i.usage.unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i.replica,
            crate::cli::output::instance_state(i.state),
            i.pid,
            crate::cli::output::duration_ms(i.uptime_ms),
            i.restart_count,
            format_bytes(u.memory_bytes),
            esc(i.last_exit.as_ref().map(|e| e.reason.as_str()).unwrap_or("-")),
        );
    }
    out.push_str("</table><h3>grants</h3><ul class=\"grants\"><li><code>solo-control</code> (fd 3)</li>");
    for g in &s.grants {
        let revoke = if who.can_revoke {
            format!(
                " <button class=\"act\" data-act=\"revoke\" data-grant=\"{}/{}\">revoke</button>",
                esc(&s.id),
                esc(&g.name)
            )
        } else {
            String::new()
        };
        let _ = write!(out, "<li><code>{}</code> = <code>{}</code>{revoke}</li>", esc(&g.name), esc(&g.spec));
    }
    out.push_str("</ul>");
    if who.can_kill {
        let _ = write!(
            out,
            "<p class=\"actions\"><button class=\"act\" data-act=\"kill\" data-id=\"{id}\">stop</button> \
             <button class=\"act danger\" data-act=\"remove\" data-id=\"{id}\">remove</button>\
             <span id=\"act-result\"></span></p>",
            id = esc(&s.id)
        );
    }
    let json = protojson::json(s, "solo.v1.ServiceStatus");
    let _ = write!(out, "<details><summary>status as JSON</summary><pre>{}</pre></details>", esc(&json));
    out
}

/// The service's profile, explained and audited (offline, as `solo profile`).
pub fn profile(name: &str, daemon_sha: &str, set: &crate::profiles::ProfileSet) -> String {
    let Some(p) = set.get(name) else {
        return format!(
            "<p class=\"hint\">profile <code>{}</code> is not one this view knows (the daemon's --profiles-dir? give it to <code>solo ui --profiles-dir</code>)</p>",
            esc(name)
        );
    };
    let note = if p.sha256 != daemon_sha {
        "<p class=\"error\">this view's copy of the profile differs from the one the instance runs under (sha256 differs): pass the daemon's --profiles-dir</p>"
    } else {
        ""
    };
    let audit = crate::profiles::audit::audit(p);
    let explain = crate::profiles::explain::explain(p, set);
    format!(
        "<h3>profile {} · exposure {:.1}/10</h3>{note}<details open><summary>audit</summary><pre id=\"audit\">{}</pre></details>\
         <details><summary>explain</summary><pre id=\"explain\">{}</pre></details>",
        esc(name),
        audit.score,
        esc(&audit.render()),
        esc(&explain.render())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn a_spark_scales_to_its_maximum() {
        let s = spark(&[0.0, 5.0, 10.0], 100, 20, "cpu");
        assert!(s.contains("0.0,19.0 50.0,10.8 100.0,2.6"), "{s}");
        assert!(spark(&[], 10, 10, "mem").contains("<polyline points=\"\""));
    }
}
