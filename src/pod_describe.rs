//! `podrun describe pod`: kubectl's layout (k8s.io/kubectl pkg/describe, DescribePod).

use podrun_pod::events::{human_age, EventLog, EventType};
use podrun_pod::k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, Probe, Volume,
};
use podrun_pod::podstate::PodView;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Left-aligned columns separated by 3 spaces (kubectl's tabwriter look).
pub fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{:w$}   ", c, w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ts(t: &podrun_pod::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> String {
    t.0.strftime("%a, %d %b %Y %H:%M:%S %z").to_string()
}

fn map_lines(out: &mut String, label: &str, m: Option<&BTreeMap<String, String>>) {
    match m.filter(|m| !m.is_empty()) {
        None => {
            let _ = writeln!(out, "{label:<18}<none>");
        }
        Some(m) => {
            for (i, (k, v)) in m.iter().enumerate() {
                let l = if i == 0 { label } else { "" };
                let _ = writeln!(out, "{l:<18}{k}={v}");
            }
        }
    }
}

fn state_lines(out: &mut String, indent: &str, label: &str, s: Option<&ContainerState>) {
    let Some(s) = s else {
        let _ = writeln!(out, "{indent}{label:<16}<none>");
        return;
    };
    if let Some(r) = &s.running {
        let _ = writeln!(out, "{indent}{label:<16}Running");
        if let Some(t) = &r.started_at {
            let _ = writeln!(out, "{indent}  Started:      {}", ts(t));
        }
    } else if let Some(w) = &s.waiting {
        let _ = writeln!(out, "{indent}{label:<16}Waiting");
        if let Some(r) = &w.reason {
            let _ = writeln!(out, "{indent}  Reason:       {r}");
        }
        if let Some(m) = &w.message {
            let _ = writeln!(out, "{indent}  Message:      {m}");
        }
    } else if let Some(t) = &s.terminated {
        let _ = writeln!(out, "{indent}{label:<16}Terminated");
        if let Some(r) = &t.reason {
            let _ = writeln!(out, "{indent}  Reason:       {r}");
        }
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "{indent}  Message:      {m}");
        }
        let _ = writeln!(out, "{indent}  Exit Code:    {}", t.exit_code);
        if let Some(sig) = t.signal.filter(|s| *s != 0) {
            let _ = writeln!(out, "{indent}  Signal:       {sig}");
        }
        if let Some(x) = &t.started_at {
            let _ = writeln!(out, "{indent}  Started:      {}", ts(x));
        }
        if let Some(x) = &t.finished_at {
            let _ = writeln!(out, "{indent}  Finished:     {}", ts(x));
        }
    } else {
        let _ = writeln!(out, "{indent}{label:<16}<none>");
    }
}

/// kubectl's one-line probe description.
pub fn probe_line(p: &Probe) -> String {
    let what = if let Some(e) = &p.exec {
        format!("exec [{}]", e.command.clone().unwrap_or_default().join(" "))
    } else if let Some(h) = &p.http_get {
        let port = match &h.port {
            podrun_pod::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => {
                i.to_string()
            }
            podrun_pod::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                s.clone()
            }
        };
        format!(
            "http-get {}://{}:{}{}",
            h.scheme.as_deref().unwrap_or("HTTP").to_lowercase(),
            h.host.as_deref().unwrap_or(""),
            port,
            h.path.as_deref().unwrap_or("/")
        )
    } else if let Some(t) = &p.tcp_socket {
        let port = match &t.port {
            podrun_pod::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => {
                i.to_string()
            }
            podrun_pod::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                s.clone()
            }
        };
        format!("tcp-socket {}:{}", t.host.as_deref().unwrap_or(""), port)
    } else if let Some(g) = &p.grpc {
        format!(
            "grpc <pod>:{} {}",
            g.port,
            g.service.as_deref().unwrap_or("")
        )
    } else {
        "unknown".into()
    };
    format!(
        "{what} delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    )
}

/// The last-result line under a probe: published result, last run's outcome, for how long, message.
pub fn probe_report_line(r: &podrun_pod::health::ProbeReport, now_secs: i64) -> String {
    let mut s = format!("result={}", r.result);
    if let Some(ok) = r.last_success {
        s.push_str(if ok {
            " last-run=ok"
        } else {
            " last-run=failed"
        });
        if let Some(since) = r.since {
            s.push_str(&format!(" for {}s", (now_secs - since).max(0)));
        }
    }
    if let Some(m) = r
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        let m: String = m.replace(['\n', '\r'], " ").chars().take(200).collect();
        s.push_str(&format!(": {m}"));
    }
    s
}

fn container_block(
    out: &mut String,
    c: &Container,
    st: Option<&ContainerStatus>,
    probes: Option<&std::collections::BTreeMap<String, podrun_pod::health::ProbeReport>>,
) {
    let _ = writeln!(out, "  {}:", c.name);
    let i = "    ";
    let id = st.and_then(|s| s.container_id.clone()).unwrap_or_default();
    let _ = writeln!(out, "{i}Container ID:   {id}");
    let _ = writeln!(
        out,
        "{i}Image:          {}",
        c.image.as_deref().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "{i}Image ID:       {}",
        st.map(|s| s.image_id.as_str()).unwrap_or("")
    );
    let ports: Vec<String> = c
        .ports
        .iter()
        .flatten()
        .map(|p| {
            format!(
                "{}/{}",
                p.container_port,
                p.protocol.as_deref().unwrap_or("TCP")
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "{i}Port:           {}",
        if ports.is_empty() {
            "<none>".into()
        } else {
            ports.join(", ")
        }
    );
    for (label, v) in [("Command:", &c.command), ("Args:", &c.args)] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            let _ = writeln!(out, "{i}{label}");
            for a in v {
                let _ = writeln!(out, "{i}  {a}");
            }
        }
    }
    state_lines(out, i, "State:", st.and_then(|s| s.state.as_ref()));
    if let Some(l) = st
        .and_then(|s| s.last_state.as_ref())
        .filter(|l| l.terminated.is_some() || l.running.is_some() || l.waiting.is_some())
    {
        state_lines(out, i, "Last State:", Some(l));
    }
    let _ = writeln!(
        out,
        "{i}Ready:          {}",
        if st.is_some_and(|s| s.ready) {
            "True"
        } else {
            "False"
        }
    );
    let _ = writeln!(
        out,
        "{i}Restart Count:  {}",
        st.map(|s| s.restart_count).unwrap_or(0)
    );
    if let Some(r) = &c.resources {
        for (label, m) in [("Limits:", &r.limits), ("Requests:", &r.requests)] {
            if let Some(m) = m.as_ref().filter(|m| !m.is_empty()) {
                let _ = writeln!(out, "{i}{label}");
                for (k, q) in m {
                    let _ = writeln!(out, "{i}  {k}:  {}", q.0);
                }
            }
        }
    }
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for (label, key, p) in [
        ("Liveness:", "liveness", &c.liveness_probe),
        ("Readiness:", "readiness", &c.readiness_probe),
        ("Startup:", "startup", &c.startup_probe),
    ] {
        if let Some(p) = p {
            let _ = writeln!(out, "{i}{label:<16}{}", probe_line(p));
            if let Some(r) = probes.and_then(|m| m.get(key)) {
                let _ = writeln!(out, "{i}  Last result:  {}", probe_report_line(r, now_secs));
            }
        }
    }
    let env = c.env.as_deref().unwrap_or_default();
    if env.is_empty() {
        let _ = writeln!(out, "{i}Environment:    <none>");
    } else {
        let _ = writeln!(out, "{i}Environment:");
        for e in env {
            let v = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(f)) => match &f.field_ref {
                    Some(r) => format!(
                        " ({}:{})",
                        r.api_version.as_deref().unwrap_or("v1"),
                        r.field_path
                    ),
                    None => "<set from a source>".into(),
                },
                _ => String::new(),
            };
            let _ = writeln!(out, "{i}  {}:  {v}", e.name);
        }
    }
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    if mounts.is_empty() {
        let _ = writeln!(out, "{i}Mounts:         <none>");
    } else {
        let _ = writeln!(out, "{i}Mounts:");
        for m in mounts {
            let sub = m
                .sub_path
                .as_deref()
                .map(|s| format!(",path=\"{s}\""))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{i}  {} from {} ({}{sub})",
                m.mount_path,
                m.name,
                if m.read_only == Some(true) {
                    "ro"
                } else {
                    "rw"
                }
            );
        }
    }
}

fn volume_block(out: &mut String, v: &Volume) {
    let _ = writeln!(out, "  {}:", v.name);
    if let Some(e) = &v.empty_dir {
        let _ = writeln!(
            out,
            "    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)"
        );
        let _ = writeln!(out, "    Medium:     {}", e.medium.as_deref().unwrap_or(""));
        let _ = writeln!(
            out,
            "    SizeLimit:  {}",
            e.size_limit
                .as_ref()
                .map(|q| q.0.clone())
                .unwrap_or_else(|| "<unset>".into())
        );
    } else if let Some(h) = &v.host_path {
        let _ = writeln!(
            out,
            "    Type:          HostPath (bare host directory volume)"
        );
        let _ = writeln!(out, "    Path:          {}", h.path);
        let _ = writeln!(
            out,
            "    HostPathType:  {}",
            h.type_.as_deref().unwrap_or("")
        );
    } else {
        let _ = writeln!(out, "    Type:       (not supported by podrun)");
    }
}

/// The whole `describe pod` text.
pub fn describe(v: &PodView) -> String {
    let p = &v.pod;
    let m = &p.metadata;
    let spec = p.spec.clone().unwrap_or_default();
    let st = p.status.clone().unwrap_or_default();
    let mut out = String::new();
    let line = |out: &mut String, k: &str, val: &str| {
        let _ = writeln!(out, "{:<18}{}", format!("{k}:"), val);
    };
    line(&mut out, "Name", m.name.as_deref().unwrap_or(""));
    line(
        &mut out,
        "Namespace",
        m.namespace.as_deref().unwrap_or("default"),
    );
    line(&mut out, "UID", m.uid.as_deref().unwrap_or(""));
    line(
        &mut out,
        "Priority",
        &spec.priority.unwrap_or(0).to_string(),
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    line(
        &mut out,
        "Node",
        &format!(
            "{}/{}",
            host.trim(),
            st.host_ip.as_deref().unwrap_or("127.0.0.1")
        ),
    );
    line(
        &mut out,
        "Start Time",
        &st.start_time
            .as_ref()
            .map(ts)
            .unwrap_or_else(|| "<unset>".into()),
    );
    map_lines(&mut out, "Labels:", m.labels.as_ref());
    map_lines(&mut out, "Annotations:", m.annotations.as_ref());
    line(&mut out, "Status", st.phase.as_deref().unwrap_or("Pending"));
    if let Some(r) = &st.reason {
        line(&mut out, "Reason", r);
    }
    if let Some(msg) = &st.message {
        line(&mut out, "Message", msg);
    }
    line(&mut out, "IP", st.pod_ip.as_deref().unwrap_or(""));
    let sup = match (v.supervisor, v.supervisor_alive) {
        (Some(s), true) => format!("pid {} (running)", s.pid),
        (Some(s), false) => format!("pid {} (not running)", s.pid),
        (None, _) => "<none> (pod finished or supervisor gone)".into(),
    };
    line(&mut out, "Supervisor", &sup);
    line(&mut out, "State Dir", &v.dir.display().to_string());
    let probes = podrun_pod::health::read_probe_reports(&v.dir);
    let find = |list: &Option<Vec<ContainerStatus>>, n: &str| {
        list.iter().flatten().find(|s| s.name == n).cloned()
    };
    if let Some(ic) = spec.init_containers.as_ref().filter(|v| !v.is_empty()) {
        out.push_str("Init Containers:\n");
        for c in ic {
            container_block(
                &mut out,
                c,
                find(&st.init_container_statuses, &c.name).as_ref(),
                probes.get(&c.name),
            );
        }
    }
    out.push_str("Containers:\n");
    for c in &spec.containers {
        container_block(
            &mut out,
            c,
            find(&st.container_statuses, &c.name).as_ref(),
            probes.get(&c.name),
        );
    }
    out.push_str("Conditions:\n");
    let mut rows = vec![vec!["  Type".to_string(), "Status".to_string()]];
    for c in st.conditions.iter().flatten() {
        rows.push(vec![format!("  {}", c.type_), c.status.clone()]);
    }
    out.push_str(&columns(&rows));
    let vols = spec.volumes.as_deref().unwrap_or_default();
    if vols.is_empty() {
        out.push_str("Volumes:            <none>\n");
    } else {
        out.push_str("Volumes:\n");
        for vol in vols {
            volume_block(&mut out, vol);
        }
    }
    line(&mut out, "QoS Class", st.qos_class.as_deref().unwrap_or(""));
    map_lines(&mut out, "Node-Selectors:", spec.node_selector.as_ref());
    let events = EventLog::load(&v.dir);
    if events.events.is_empty() {
        out.push_str("Events:            <none>\n");
    } else {
        out.push_str("Events:\n");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut rows = vec![
            ["  Type", "Reason", "Age", "From", "Message"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            ["  ----", "------", "----", "----", "-------"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ];
        for e in events.by_last_seen() {
            let age = if e.count > 1 {
                format!(
                    "{} (x{} over {})",
                    human_age(now - e.last),
                    e.count,
                    human_age(now - e.first)
                )
            } else {
                human_age(now - e.first)
            };
            let from = if matches!(
                e.reason.as_str(),
                "Scheduled" | "Pulling" | "Pulled" | "ErrImageNeverPull"
            ) {
                "podrun"
            } else {
                "supervisor"
            };
            let t = match e.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            };
            let obj = if e.object.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.object)
            };
            rows.push(vec![
                format!("  {t}"),
                e.reason.clone(),
                age,
                from.into(),
                format!("{obj}{}", e.message),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["NAME".to_string(), "READY".to_string()],
            vec!["web-long".to_string(), "1/1".to_string()],
        ];
        assert_eq!(columns(&rows), "NAME       READY\nweb-long   1/1\n");
    }

    #[test]
    fn probe_lines_like_kubectl() {
        let p: Probe = serde_json::from_value(serde_json::json!({
            "httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 3}))
        .unwrap();
        assert_eq!(
            probe_line(&p),
            "http-get http://:8080/healthz delay=0s timeout=1s period=3s #success=1 #failure=3"
        );
        let p: Probe = serde_json::from_value(serde_json::json!({
            "exec": {"command": ["cat", "/tmp/healthy"]}}))
        .unwrap();
        assert!(probe_line(&p).starts_with("exec [cat /tmp/healthy] delay=0s"));
    }
}
