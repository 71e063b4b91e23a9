//! `GET /`: a status page for people. Current status, every check with its value and threshold,
//! the worker unit, the agent's restarts, backoff and pause, recent events and journal errors, disk
//! and memory charts, and example requests for this very listener. It refreshes itself every
//! [`REFRESH_SECONDS`]; it has inline CSS and SVG only (no scripts, no external assets), and every
//! piece of data in it is HTML-escaped.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use axum::{extract::State, response::Html};
use chrono::{DateTime, SecondsFormat, Utc};

use super::{
    AppState,
    chart::{Projection, percent_chart},
};
use crate::{
    checks::heartbeat::Heartbeat,
    forecast::describe,
    handle::{EventKind, Snapshot},
    health::Status,
    report::local,
};

/// Seconds between the page's own reloads.
pub const REFRESH_SECONDS: u32 = 10;

/// Events shown, newest first.
const MAX_EVENTS: usize = 20;

/// The handler: reads the latest snapshot, never probes.
pub(crate) async fn page(State(state): State<AppState>) -> Html<String> {
    Html(render(
        &state.handle.snapshot(),
        state.local_addr,
        state.config.token.is_some(),
    ))
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

fn status_class(status: Status) -> &'static str {
    match status {
        Status::Healthy => "healthy",
        Status::Warning => "warning",
        Status::Critical => "critical",
        Status::Unknown => "unknown",
    }
}

fn time(t: DateTime<Utc>) -> String {
    local(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".to_owned(), time)
}

/// `http://HOST:PORT` a client on this machine can use to reach the listener.
fn base_url(addr: SocketAddr) -> String {
    let port = addr.port();
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!("http://127.0.0.1:{port}"),
        SocketAddr::V6(a) if a.ip().is_unspecified() => format!("http://[::1]:{port}"),
        SocketAddr::V4(a) => format!("http://{}:{port}", a.ip()),
        SocketAddr::V6(a) => format!("http://[{}]:{port}", a.ip()),
    }
}

const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; background: #f6f8fa; }
main { max-width: 1120px; margin: 0 auto; padding: 24px; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 24px; margin-bottom: 20px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 10px; }
.meta { color: #57606a; font-size: 13px; }
.status { font-size: 44px; font-weight: 800; letter-spacing: 2px; color: #fff;
          padding: 10px 28px; border-radius: 12px; }
.healthy { background: #1a7f37; } .warning { background: #bf5700; }
.critical { background: #cf222e; } .unknown { background: #6e7781; }
.pill { display: inline-block; min-width: 84px; text-align: center; color: #fff; font-size: 12px;
        font-weight: 700; padding: 2px 8px; border-radius: 10px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 10px; padding: 16px;
          margin-bottom: 16px; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; color: #57606a; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dt { color: #57606a; } dd { margin: 0; }
ul.alerts { margin: 0; padding-left: 20px; } ul.alerts li { color: #cf222e; font-weight: 600; }
code, pre { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f6f8fa; border: 1px solid #eaeef2; border-radius: 6px; padding: 8px 10px;
      margin: 4px 0 10px; white-space: pre-wrap; word-break: break-all; }
.muted { color: #57606a; }
svg.chart { max-width: 100%; height: auto; }
"#;

/// The page for one snapshot. `local_addr` is the listener's address, `token` whether a bearer
/// token is configured (the token itself never appears).
pub(crate) fn render(snapshot: &Snapshot, local_addr: SocketAddr, token: bool) -> String {
    let report = &snapshot.report;
    let daemon = &snapshot.daemon;
    let status = report.status;
    let mut h = String::with_capacity(16 * 1024);

    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status_word} · {host} · cryptobot-agent</title>
<style>{STYLE}</style></head>
<body><main>
<header><div class="status {class}" id="status">{status_word}</div>
<div><h1>{unit} on {host}</h1>
<div class="meta">checked {checked} · agent {version}, running since {started} · refreshes every {REFRESH_SECONDS} s</div></div>
</header>
"#,
        status_word = status.as_str(),
        class = status_class(status),
        host = escape(&report.agent.hostname),
        unit = escape(
            report
                .unit
                .as_ref()
                .map_or("the worker", |u| u.name.as_str())
        ),
        checked = escape(&report.timestamp.format("%Y-%m-%d %H:%M:%S %:z").to_string()),
        version = escape(&report.agent.version),
        started = time(daemon.started_at),
    );

    // Alerts and checks.
    h.push_str("<section><h2>Checks</h2>");
    if report.alerts.is_empty() {
        h.push_str(r#"<p class="muted">No alerts.</p>"#);
    } else {
        h.push_str(r#"<ul class="alerts">"#);
        for alert in &report.alerts {
            let _ = write!(h, "<li>{}</li>", escape(alert));
        }
        h.push_str("</ul>");
    }
    h.push_str(
        "<table><thead><tr><th>check</th><th>status</th><th>value</th><th>threshold</th><th>alert</th></tr></thead><tbody>",
    );
    for check in &report.checks {
        let _ = write!(
            h,
            r#"<tr><td><code>{name}</code></td><td><span class="pill {class}">{status}</span></td><td>{value}</td><td>{threshold}</td><td>{alert}</td></tr>"#,
            name = escape(&check.name),
            class = status_class(check.status),
            status = check.status.as_str(),
            value = escape(check.value.as_deref().unwrap_or("unknown")),
            threshold = escape(check.threshold.as_deref().unwrap_or("—")),
            alert = escape(check.alert.as_ref().map_or("", |a| a.text.as_str())),
        );
    }
    h.push_str("</tbody></table></section>\n");

    // Charts.
    let disk: Vec<_> = snapshot
        .history
        .iter()
        .map(|s| (s.time, s.disk_percent))
        .collect();
    // The soonest disk-full forecast, drawn on the disk chart.
    let projection = report
        .disks
        .iter()
        .filter_map(|d| d.forecast.map(|s| (s, &d.mount)))
        .min()
        .map(|(seconds, mount)| Projection {
            full_at: report.timestamp.with_timezone(&chrono::Utc)
                + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000)),
            label: format!("{mount} full in {}", describe(Duration::from_secs(seconds))),
        });
    let memory: Vec<_> = snapshot
        .history
        .iter()
        .map(|s| (s.time, s.memory_percent))
        .collect();
    let _ = writeln!(
        h,
        r#"<div class="grid"><section><h2>Disk usage</h2>{}</section><section><h2>Memory usage</h2>{}</section></div>"#,
        percent_chart("Disk usage, percent", "#0969da", &disk, projection.as_ref()),
        percent_chart("Memory usage, percent", "#8250df", &memory, None),
    );

    // The unit and the agent's own state, side by side.
    h.push_str(r#"<div class="grid"><section><h2>Worker unit</h2><dl>"#);
    match &report.unit {
        None => h.push_str(
            r#"<dt>unit</dt><dd class="muted">systemd could not be asked (see the alerts)</dd>"#,
        ),
        Some(u) => {
            let _ = write!(
                h,
                "<dt>unit</dt><dd><code>{name}</code> ({load})</dd>\
                 <dt>state</dt><dd>{active} ({sub})</dd>\
                 <dt>last result</dt><dd>{result}</dd>\
                 <dt>main pid</dt><dd>{pid}</dd>\
                 <dt>systemd restarts</dt><dd>{restarts}</dd>\
                 <dt>active since</dt><dd>{since}</dd>\
                 <dt>invocation</dt><dd><code>{invocation}</code></dd>",
                name = escape(&u.name),
                load = escape(&u.load_state),
                active = escape(&u.active_state),
                sub = escape(&u.sub_state),
                result = escape(&u.result),
                pid = if u.main_pid == 0 {
                    "none".to_owned()
                } else {
                    u.main_pid.to_string()
                },
                restarts = u.n_restarts,
                since = opt_time(u.active_enter_timestamp),
                invocation = escape(&u.invocation_id),
            );
        }
    }
    let heartbeat = match &report.heartbeat {
        None => "unknown".to_owned(),
        Some(Heartbeat::Missing) => "no heartbeat file".to_owned(),
        Some(Heartbeat::Found {
            path, age_seconds, ..
        }) => format!(
            "{age_seconds} s ago (<code>{}</code>)",
            escape(&path.display().to_string())
        ),
    };
    let _ = write!(h, "<dt>heartbeat</dt><dd>{heartbeat}</dd>");
    for d in &report.disks {
        let value = match (&d.usage, &d.error) {
            (Some(u), _) => format!(
                "{}% of {:.1} GiB",
                u.percent,
                u.total_bytes as f64 / f64::from(1u32 << 30)
            ),
            (None, Some(e)) => escape(e),
            (None, None) => "unknown".to_owned(),
        };
        let value = match d.forecast {
            Some(s) => format!(
                "{value}, full in {}",
                escape(&describe(Duration::from_secs(s)))
            ),
            None => value,
        };
        let _ = write!(
            h,
            "<dt>disk <code>{}</code></dt><dd>{value}</dd>",
            escape(&d.mount)
        );
    }
    if let Some(m) = &report.memory {
        let _ = write!(
            h,
            "<dt>memory</dt><dd>{}% of {:.1} GiB</dd>",
            m.percent,
            m.total_kib as f64 / f64::from(1u32 << 20)
        );
    }
    h.push_str("</dl></section>");

    let b = &daemon.backoff;
    let pause = match &daemon.pause {
        None => "not paused".to_owned(),
        Some(p) => match p.until {
            Some(until) => format!(
                "<strong>paused</strong> since {} until {}",
                time(p.since),
                time(until)
            ),
            None => format!(
                "<strong>paused</strong> since {} until resumed",
                time(p.since)
            ),
        },
    };
    let _ = write!(
        h,
        r#"<section><h2>Restarts</h2><dl><dt>agent restarts</dt><dd>{enabled}</dd>
<dt>maintenance</dt><dd id="pause">{pause}</dd>
<dt>restarts this episode</dt><dd>{count}</dd><dt>backoff</dt><dd>{backoff} s</dd>
<dt>last restart</dt><dd>{last}</dd><dt>next restart</dt><dd>{next}</dd></dl></section></div>
"#,
        enabled = if daemon.restart_enabled {
            "enabled"
        } else {
            "disabled"
        },
        count = b.restart_count,
        backoff = b.backoff_seconds,
        last = opt_time(b.last_restart_time),
        next = b
            .next_restart_at
            .map_or_else(|| "none pending".to_owned(), time),
    );

    // Events, newest first.
    h.push_str("<section><h2>Recent events</h2>");
    if daemon.events.is_empty() {
        h.push_str(r#"<p class="muted">None yet.</p>"#);
    } else {
        h.push_str("<table><thead><tr><th>time</th><th>kind</th><th>what</th><th>outcome</th><th>delay</th></tr></thead><tbody>");
        for e in daemon.events.iter().rev().take(MAX_EVENTS) {
            let kind = match e.kind {
                EventKind::Transition => "transition",
                EventKind::Restart => "restart",
                EventKind::BackoffReset => "backoff reset",
                EventKind::Paused => "paused",
                EventKind::Resumed => "resumed",
                EventKind::Agent => "agent",
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time(e.time),
                escape(&e.message),
                escape(e.outcome.as_deref().unwrap_or("")),
                e.delay_seconds
                    .map_or_else(String::new, |d| format!("{d} s")),
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>\n");

    // Journal errors of the latest window.
    if let Some(j) = report.journal.as_ref().filter(|j| !j.recent.is_empty()) {
        let _ = write!(
            h,
            "<section><h2>Journal errors</h2><p class=\"muted\">{} since {}</p><table><tbody>",
            j.count,
            time(j.since)
        );
        for entry in &j.recent {
            let _ = write!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td></tr>",
                time(entry.time),
                escape(&entry.message)
            );
        }
        h.push_str("</tbody></table></section>\n");
    }

    // How to ask.
    let base = base_url(local_addr);
    let auth = if token {
        r#" -H "Authorization: Bearer $TOKEN""#
    } else {
        ""
    };
    let access = if token {
        "From other machines <code>/metrics</code> and this page need the bearer token."
    } else {
        "From other machines only <code>/health</code> answers unless a token is configured."
    };
    let _ = write!(
        h,
        r#"<section><h2>Endpoints</h2>
<p><code>/health</code> — 200 when healthy, 503 otherwise (Azure Application Health rich mode):</p>
<pre>curl -i {base}/health</pre>
<p><code>/metrics</code> — the full report as JSON, or the Prometheus text format:</p>
<pre>curl{auth} {base}/metrics
curl{auth} -H 'Accept: text/plain;version=0.0.4' {base}/metrics</pre>
<p class="muted">{access} Generated {generated}.</p></section>
</main></body></html>
"#,
        base = escape(&base),
        auth = escape(auth),
        generated = escape(&report.timestamp.to_rfc3339_opts(SecondsFormat::Secs, false)),
    );
    h
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        daemon::testing::sample_snapshot,
        handle::{Event, PauseView},
    };

    fn addr() -> SocketAddr {
        "127.0.0.1:43210".parse().unwrap()
    }

    #[test]
    fn shows_status_checks_and_port() {
        let html = render(&sample_snapshot(Status::Critical), addr(), false);
        assert!(html.contains(r#"<div class="status critical" id="status">CRITICAL</div>"#));
        assert!(
            html.contains("curl -i http://127.0.0.1:43210/health"),
            "{html}"
        );
        assert!(html.contains("Service is not active"));
        assert!(html.contains(r#"<meta http-equiv="refresh" content="10">"#));
        for check in [
            "service",
            "restarts",
            "disk:/",
            "memory",
            "heartbeat",
            "journal",
        ] {
            assert!(html.contains(&format!("<code>{check}</code>")), "{check}");
        }
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("worker failed (result: signal)"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("Bearer"));
    }

    #[test]
    fn data_is_escaped() {
        let mut snapshot = sample_snapshot(Status::Warning);
        snapshot
            .report
            .alerts
            .push("<script>alert(1)</script>".into());
        snapshot.report.agent.hostname = "\"><img src=x>".into();
        snapshot.daemon.events.push(Event {
            time: snapshot.daemon.started_at,
            kind: EventKind::Agent,
            message: "a & b <i>".into(),
            outcome: Some("'quoted'".into()),
            delay_seconds: None,
        });
        let html = render(&snapshot, addr(), true);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<img src=x>"));
        assert!(html.contains("&quot;&gt;&lt;img src=x&gt;"));
        assert!(html.contains("a &amp; b &lt;i&gt;"));
        assert!(html.contains("&#39;quoted&#39;"));
        assert!(html.contains("Authorization: Bearer $TOKEN"));
    }

    #[test]
    fn pause_and_empty_history() {
        let mut snapshot = sample_snapshot(Status::Healthy);
        snapshot.daemon.pause = Some(PauseView {
            since: snapshot.daemon.started_at,
            until: None,
        });
        snapshot.history = Arc::from(Vec::new());
        snapshot.daemon.events.clear();
        let html = render(&snapshot, "[::]:8080".parse().unwrap(), false);
        assert!(html.contains("until resumed"));
        assert_eq!(html.matches("no samples yet").count(), 2);
        assert!(html.contains("None yet."));
        assert!(html.contains("http://[::1]:8080/metrics"));
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("10.1.2.3:80".parse().unwrap()),
            "http://10.1.2.3:80"
        );
        assert_eq!(
            base_url("[fe80::1]:9".parse().unwrap()),
            "http://[fe80::1]:9"
        );
    }
}
