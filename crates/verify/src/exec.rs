//! Running scenarios through a gateway and judging what came back.
//!
//! Owns client sessions as a tenant (over the wire, as any application connects),
//! template filling, the canary search over everything a client can read (rows,
//! errors with DETAIL and HINT, notices, notifications), and the verdict per
//! expectation. It never connects to PostgreSQL directly: every attack goes through
//! the gateway under test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio_postgres::{AsyncMessage, Client, NoTls, SimpleQueryMessage};

use crate::probes::Probe;
use crate::scenarios::{Expect, Kind, Scenario};

/// A gateway to attack through.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Whether this gateway runs the SQL gate.
    pub gate: bool,
    /// The HTTP API sharing this gateway's router, pools and gate, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::http::HttpTarget>,
}

/// What a client saw for one statement string.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub rows: Vec<String>,
    pub error: Option<ErrInfo>,
    pub notices: Vec<String>,
    pub elapsed: Duration,
    /// The HTTP status, for scenarios run over the HTTP API.
    pub status: Option<u16>,
    /// How the attempt ended, when the runner knows better than the generic wording (HTTP).
    pub outcome: Option<String>,
    /// A failure the runner detected itself (e.g. two answers that must be identical differ).
    pub violation: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ErrInfo {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ErrInfo {
    fn from_pg(e: &tokio_postgres::Error) -> ErrInfo {
        match e.as_db_error() {
            Some(d) => ErrInfo {
                code: d.code().code().to_string(),
                message: d.message().to_string(),
                detail: d.detail().map(str::to_string),
                hint: d.hint().map(str::to_string),
            },
            None => ErrInfo { code: "connection".into(), message: e.to_string(), detail: None, hint: None },
        }
    }

    /// `Some(rule)` when the gateway's gate refused the statement.
    pub fn gate_rule(&self) -> Option<String> {
        if self.code != "42501" || !self.message.starts_with("tenantgate:") {
            return None;
        }
        let rest = self.message.split("(rule ").nth(1)?;
        Some(rest.split(')').next().unwrap_or(rest).to_string())
    }
}

impl Seen {
    fn haystack(&self) -> String {
        let mut h = self.rows.join("\n");
        if let Some(e) = &self.error {
            h.push('\n');
            h.push_str(&e.message);
            for s in [&e.detail, &e.hint].into_iter().flatten() {
                h.push('\n');
                h.push_str(s);
            }
        }
        for n in &self.notices {
            h.push('\n');
            h.push_str(n);
        }
        h
    }
}

/// A client session as a tenant, through the gateway.
pub struct Session {
    client: Client,
    notices: Arc<Mutex<Vec<String>>>,
}

impl Session {
    pub async fn connect(target: &Target, user: &str, password: &str, dbname: &str) -> Result<Session, ErrInfo> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&target.host).port(target.port).user(user).password(password).dbname(dbname);
        cfg.application_name("tenantgate-verify");
        cfg.connect_timeout(Duration::from_secs(10));
        let (client, mut connection) = cfg.connect(NoTls).await.map_err(|e| ErrInfo::from_pg(&e))?;
        let notices = Arc::new(Mutex::new(Vec::new()));
        let sink = notices.clone();
        tokio::spawn(async move {
            let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(msg) = stream.next().await {
                let text = match msg {
                    Ok(AsyncMessage::Notice(n)) => {
                        let mut t = n.message().to_string();
                        for s in [n.detail(), n.hint()].into_iter().flatten() {
                            t.push('\n');
                            t.push_str(s);
                        }
                        t
                    }
                    Ok(AsyncMessage::Notification(n)) => format!("notification {}: {}", n.channel(), n.payload()),
                    Ok(_) => continue,
                    Err(_) => break,
                };
                if let Ok(mut v) = sink.lock() {
                    v.push(text);
                }
            }
        });
        Ok(Session { client, notices })
    }

    fn take_notices(&self) -> Vec<String> {
        self.notices.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub async fn simple(&self, sql: &str) -> Seen {
        let started = Instant::now();
        let mut seen = Seen::default();
        match self.client.simple_query(sql).await {
            Ok(msgs) => {
                for m in msgs {
                    if let SimpleQueryMessage::Row(r) = m {
                        let vals: Vec<&str> = (0..r.len()).map(|i| r.get(i).unwrap_or("NULL")).collect();
                        seen.rows.push(vals.join("|"));
                    }
                }
            }
            Err(e) => seen.error = Some(ErrInfo::from_pg(&e)),
        }
        seen.elapsed = started.elapsed();
        // Notices arrive on the connection task just before the reply completes.
        tokio::time::sleep(Duration::from_millis(2)).await;
        seen.notices = self.take_notices();
        seen
    }

    pub async fn copy_out(&self, sql: &str) -> Seen {
        let started = Instant::now();
        let mut seen = Seen::default();
        match self.client.copy_out(sql).await {
            Ok(stream) => {
                futures::pin_mut!(stream);
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(b) => seen.rows.push(String::from_utf8_lossy(&b).into_owned()),
                        Err(e) => {
                            seen.error = Some(ErrInfo::from_pg(&e));
                            break;
                        }
                    }
                }
            }
            Err(e) => seen.error = Some(ErrInfo::from_pg(&e)),
        }
        seen.elapsed = started.elapsed();
        seen.notices = self.take_notices();
        seen
    }

    pub async fn copy_in(&self, sql: &str, data: &str) -> Seen {
        let started = Instant::now();
        let mut seen = Seen::default();
        let result = async {
            let sink = self.client.copy_in::<_, bytes::Bytes>(sql).await?;
            futures::pin_mut!(sink);
            sink.send(bytes::Bytes::from(data.as_bytes().to_vec())).await?;
            sink.finish().await
        }
        .await;
        if let Err(e) = result {
            seen.error = Some(ErrInfo::from_pg(&e));
        }
        seen.elapsed = started.elapsed();
        seen.notices = self.take_notices();
        seen
    }
}

/// Fill a template for `attacker` attacking `victim` (or only `attacker` for solo scenarios).
pub fn fill(template: &str, attacker: &Probe, victim: Option<&Probe>, victim_branch: Option<&str>) -> String {
    let (t, c) = attacker.planted.tables.iter().next().map(|(t, c)| (t.as_str(), c.as_str())).unwrap_or(("none", "none"));
    let t2 = attacker.planted.tables.keys().nth(1).map(String::as_str).unwrap_or(t);
    let mut s = template.replace("{t2}", t2).replace("{t}", t).replace("{c}", c);
    if let Some(v) = victim {
        s = s
            .replace("{v_key}", &v.key)
            .replace("{v_schema}", &v.schema)
            .replace("{v_db}", &v.database)
            .replace("{v_canary}", &v.canary)
            .replace("{v_branch}", victim_branch.unwrap_or("00000000-0000-0000-0000-000000000000"));
    }
    s
}

/// The verdict on one run of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub passed: bool,
    /// Which layer stopped it, or what happened.
    pub outcome: String,
    /// Short evidence: the error or row count, and any marker found.
    pub evidence: String,
    /// Set when the result is a documented residual risk rather than a pass or a failure.
    pub residual: bool,
}

/// Judge what `seen` shows for `scenario`, given the markers the attacker must never see.
pub fn judge(scenario: &Scenario, seen: &Seen, gate: bool, markers: &[&str], own_canary: &str, cutoff_bound: Duration) -> Verdict {
    let hay = seen.haystack();
    let leaked: Vec<&str> = markers.iter().copied().filter(|m| !m.is_empty() && hay.contains(m)).collect();
    let gate_rule = seen.error.as_ref().and_then(ErrInfo::gate_rule);
    let outcome = match (&seen.error, &gate_rule) {
        (Some(_), Some(rule)) => format!("refused by the gate (rule {rule})"),
        (Some(e), None) if e.code == "connection" => "connection closed".to_string(),
        (Some(e), None) => format!("refused by the database ({})", e.code),
        (None, _) => format!("database returned only the tenant's own data ({} rows)", seen.rows.len()),
    };
    let outcome = seen.outcome.clone().unwrap_or(outcome);
    let mut evidence = match &seen.error {
        Some(e) => format!("{}: {}", e.code, truncate(&e.message, 160)),
        None => match seen.status {
            Some(st) => format!("HTTP {st}"),
            None => format!("{} rows, {} notices", seen.rows.len(), seen.notices.len()),
        },
    };
    if !leaked.is_empty() && scenario.expect == Expect::GateOnlyResidual && !gate {
        // A channel shared by one database (NOTIFY, advisory locks): the victim itself sent
        // the data. Only the gate closes it; the `database` placement removes it.
        return Verdict {
            passed: true,
            outcome: "residual risk without the gate: data the victim published on a database-wide channel reached another tenant in the same database".into(),
            evidence: format!("marker seen by the listener; {evidence}"),
            residual: true,
        };
    }
    if let Some(v) = &seen.violation {
        return Verdict { passed: false, outcome: v.clone(), evidence, residual: false };
    }
    if !leaked.is_empty() {
        evidence = format!("LEAK: found another tenant's marker(s) {leaked:?}; {evidence}");
        return Verdict { passed: false, outcome: "another tenant's data reached the attacker".into(), evidence, residual: false };
    }
    let refused = seen.error.is_some();
    let (passed, residual) = match scenario.expect {
        Expect::NoLeak => (true, false),
        Expect::Refused => (refused, false),
        Expect::GateRefuses => (!gate || gate_rule.is_some(), false),
        Expect::OwnRows => (!refused && hay.contains(own_canary), false),
        Expect::Succeeds => (!refused, false),
        Expect::Status(code) => (seen.status == Some(code), false),
        // With the gate on, other tenants' keys are among the markers (see `lib.rs`): no leak
        // and an answer is the pass. With it off, the stock catalog names them.
        Expect::ScopedCatalog => {
            if gate {
                (!refused, false)
            } else {
                (true, true)
            }
        }
        Expect::LimitHolds => {
            let lifted = seen.rows.last().is_some_and(|v| v.trim() == "0");
            (refused || !lifted, false)
        }
        Expect::CutOff => {
            let cut = seen.error.as_ref().is_some_and(|e| matches!(e.code.as_str(), "57014" | "25P03" | "57P01" | "53400" | "connection") || gate_rule.is_some());
            if cut && seen.elapsed > cutoff_bound {
                evidence.push_str(&format!(" (took {} ms, bound {} ms)", seen.elapsed.as_millis(), cutoff_bound.as_millis()));
            }
            (cut && seen.elapsed <= cutoff_bound, false)
        }
        Expect::GateOnlyResidual => {
            if gate {
                // Channels are allowed to a tenant with a database of its own, where nothing
                // of another tenant can arrive on them: no leak is the pass there.
                let own_channel = matches!(scenario.kind, crate::scenarios::Kind::ListenNotify) && leaked.is_empty() && seen.error.is_none();
                (gate_rule.is_some() || own_channel, false)
            } else {
                (true, !refused)
            }
        }
    };
    if !passed {
        evidence = format!("expected {:?}; {evidence}", scenario.expect);
    }
    Verdict { passed, outcome: if residual { format!("residual risk without the gate: {outcome}") } else { outcome }, evidence, residual }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Which kinds run once per pair (vs. once per attacker).
pub fn is_pairwise(kind: &Kind) -> bool {
    match kind {
        Kind::Http(a) => a.pairwise(),
        k => matches!(k, Kind::Pair(_) | Kind::CopyOut(_) | Kind::CopyIn(..) | Kind::Wire(_) | Kind::ListenNotify),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{judge, ErrInfo, Seen};
    use crate::scenarios::catalogue;

    fn scenario(id: &str) -> crate::scenarios::Scenario {
        catalogue().into_iter().find(|s| s.id == id).unwrap_or_else(|| panic!("no scenario {id}"))
    }

    fn own_rows() -> Seen {
        Seen { rows: vec!["own".into()], ..Default::default() }
    }

    #[test]
    fn the_judge_can_fail() {
        let bound = Duration::from_secs(5);
        // A marker of another tenant anywhere (here: an error's DETAIL) fails any scenario.
        let leak = Seen {
            error: Some(ErrInfo { code: "23505".into(), message: "dup".into(), detail: Some("Key (name)=(tgcanaryX)".into()), hint: None }),
            ..Default::default()
        };
        assert!(!judge(&scenario("rls.filter-victim"), &leak, true, &["tgcanaryX"], "own", bound).passed);
        // State carried to the next client fails the session scenarios.
        let carried = Seen { violation: Some("session state carried over".into()), ..Default::default() };
        assert!(!judge(&scenario("session.temp-table"), &carried, true, &[], "own", bound).passed);
        // A refused-expected scenario that succeeded fails; with the gate on, a catalogue
        // enumeration must be refused by the gate, not merely return nothing.
        assert!(!judge(&scenario("role.set-role-victim"), &Seen::default(), false, &[], "own", bound).passed);
        assert!(!judge(&scenario("catalog.pg-locks"), &Seen::default(), true, &[], "own", bound).passed);
        // A scoped catalog read must answer with the gate on, and name no other tenant's key.
        let other_key = Seen { rows: vec!["t0123456789ab".into()], ..Default::default() };
        assert!(!judge(&scenario("catalog.pg-roles"), &other_key, true, &["t0123456789ab"], "own", bound).passed);
        let refused = Seen { error: Some(ErrInfo { code: "42501".into(), message: "no".into(), detail: None, hint: None }), ..Default::default() };
        assert!(!judge(&scenario("catalog.pg-roles"), &refused, true, &[], "own", bound).passed);
        assert!(judge(&scenario("catalog.pg-roles"), &own_rows(), true, &["t0123456789ab"], "own", bound).passed);
        let off = judge(&scenario("catalog.pg-roles"), &other_key, false, &[], "own", bound);
        assert!(off.passed && off.residual, "{off:?}");
        // The positive control needs the tenant's own canary.
        assert!(!judge(&scenario("rls.own-rows"), &Seen::default(), true, &[], "own", bound).passed);
        let own = Seen { rows: vec!["own".into()], ..Default::default() };
        assert!(judge(&scenario("rls.own-rows"), &own, true, &[], "own", bound).passed);
    }
}
