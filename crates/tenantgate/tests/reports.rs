//! Reports from the live catalog on a real, mixed two-region deployment: the ADR
//! (counts, placements, regions, stability, exact diffs), the triggers (thresholds,
//! requirements, residency, exit codes) and the questionnaire (scoped to one tenant,
//! never naming another; unsupported answers say so).

mod common;

use std::collections::BTreeSet;

use common::Deployment;
use serde_json::Value;

/// Run and return (exit code, stdout, stderr).
fn run(d: &Deployment, args: &[&str]) -> (i32, String, String) {
    let out = d.tg(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn triggers(d: &Deployment) -> (i32, Value) {
    let (code, out, err) = run(d, &["triggers", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("triggers --json: {e}\n{out}\n{err}"));
    (code, v)
}

fn trigger<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["triggers"].as_array().expect("triggers").iter().find(|t| t["id"] == id).unwrap_or_else(|| panic!("no trigger {id} in {v}"))
}

fn append_config(d: &Deployment, text: &str) {
    let mut cfg = std::fs::read_to_string(&d.config).expect("config");
    cfg.push_str(text);
    std::fs::write(&d.config, cfg).expect("write config");
}

fn replace_config(d: &Deployment, from: &str, to: &str) {
    let cfg = std::fs::read_to_string(&d.config).expect("config");
    assert!(cfg.contains(from), "{from:?} not in config");
    std::fs::write(&d.config, cfg.replace(from, to)).expect("write config");
}

/// Lines of `b` not in `a` and lines of `a` not in `b`, as sets.
fn line_diff(a: &str, b: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let la: BTreeSet<String> = a.lines().map(str::to_string).collect();
    let lb: BTreeSet<String> = b.lines().map(str::to_string).collect();
    (lb.difference(&la).cloned().collect(), la.difference(&lb).cloned().collect())
}

#[test]
fn adr_states_the_deployment_and_is_stable() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    d.create("p-alpha", "pooled", "us-1");
    d.create("p-beta", "pooled", "us-1");
    d.create("p-gamma", "pooled", "eu-1");
    d.create("s-delta", "schema", "us-1");
    d.ok(&["tenant", "create", "d-eps", "--placement", "database", "--server", "eu-1", "--residency", "eu-central", "--requires", "dedicated-database,region:eu-central"]);

    let adr = d.ok(&["adr"]);
    let out_file = d.dir.path().join("adr.md");
    d.ok(&["adr", "--out", out_file.to_str().expect("path")]);
    assert_eq!(adr, std::fs::read_to_string(&out_file).expect("adr.md"), "two runs differ");
    assert_eq!(adr.lines().filter(|l| l.starts_with("Date: ")).count(), 1);

    for expect in [
        "The deployment holds 5 tenants on 2 servers in 2 regions.",
        "| pooled | 3 | 3 | 0 | 0 |",
        "| schema | 1 | 1 | 0 | 0 |",
        "| database | 1 | 1 | 0 | 0 |",
        "| eu-central | eu-1 | 1 | 0 | 1 | 2 |",
        "| us-east | us-1 | 2 | 1 | 0 | 3 |",
        "### pooled (3 tenants)",
        "### schema (1 tenant)",
        "### database (1 tenant)",
        "| in use | 3 tenants | 1 tenant | 1 tenant |",
        "1 tenant on eu-1 and 2 tenants on us-1",
        "| d-eps | dedicated-database, region:eu-central | database | eu-1 (eu-central) | dedicated-database: met; region:eu-central: met |",
        "| Pooled tenants (pooled-tenant-count) | 500 tenants | 3 tenants | ok |",
        "The catalog (slugs, keys, placement, audit trail; no tenant rows) lives on server us-1, region us-east",
        "| d-eps | eu-central | eu-1 | eu-central | yes |",
        "never run",
        "No certification is configured",
    ] {
        assert!(adr.contains(expect), "ADR lacks {expect:?}:\n{adr}");
    }
    assert!(adr.contains("keeping the pool's volume secret: `EXPLAIN` costs"), "the ADR names volume inference as a consequence of pooled:\n{adr}");
    for section in ["## Context", "## Isolation model", "## Alternatives considered", "## Decision", "## Trigger conditions for re-evaluation", "## Consequences", "## Data residency", "## Compliance scope"] {
        assert!(adr.contains(&format!("\n{section}\n")), "ADR lacks section {section}");
    }
    // Regions list their servers and tenants.
    let eu = adr.split("### eu-central").nth(1).and_then(|s| s.split("### us-east").next()).expect("eu section");
    assert!(eu.contains("- pooled: p-gamma") && eu.contains("- database: d-eps") && !eu.contains("p-alpha"), "{eu}");
    let us = adr.split("### us-east").nth(1).expect("us section");
    assert!(us.contains("- pooled: p-alpha, p-beta") && us.contains("- schema: s-delta"), "{us}");
    // No secrets.
    for pw in [d.us.password(), d.eu.password()] {
        assert!(!adr.contains(pw), "a server password leaked into the ADR");
    }

    // Adding a tenant changes exactly the lines that count it or list it.
    d.create("p-zulu", "pooled", "us-1");
    let after = d.ok(&["adr"]);
    let (added, removed) = line_diff(&adr, &after);
    let expected_added: BTreeSet<String> = [
        "The deployment holds 6 tenants on 2 servers in 2 regions. Sources: `catalog: tg.tenants`, `catalog: tg.servers`.",
        "| pooled | 4 | 4 | 0 | 0 |",
        "| us-east | us-1 | 3 | 1 | 0 | 4 |",
        "### pooled (4 tenants)",
        "| in use | 4 tenants | 1 tenant | 1 tenant |",
        "- `pooled` (in use by 4 tenants): for self-serve and small tenants without declared requirements.",
        "- pooled: p-alpha, p-beta, p-zulu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let other: Vec<&String> = added
        .iter()
        .filter(|l| !expected_added.contains(*l))
        .filter(|l| !(l.contains("1 tenant on eu-1 and 3 tenants on us-1") || l.starts_with("| Pooled tenants (pooled-tenant-count) | 500 tenants | 4 tenants | ok |")))
        .collect();
    assert!(other.is_empty(), "unexpected added lines: {other:#?}");
    for e in &expected_added {
        assert!(added.contains(e), "expected added line {e:?}; added: {added:#?}");
    }
    assert_eq!(added.len(), 9, "added: {added:#?}");
    assert_eq!(removed.len(), 9, "removed: {removed:#?}");
}

#[test]
fn triggers_go_ok_approaching_fired_and_requirements_fire() {
    let d = Deployment::start();
    append_config(&d, "\n[reports]\nmax_pooled_tenants = 5\n");
    d.create("t-one", "pooled", "us-1");
    d.create("t-two", "pooled", "us-1");
    d.create("t-three", "pooled", "eu-1");
    d.create("t-sch", "schema", "us-1");
    let (code, v) = triggers(&d);
    assert_eq!((code, trigger(&v, "pooled-tenant-count")["state"].as_str()), (0, Some("ok")), "{v}");
    assert_eq!(trigger(&v, "pooled-tenant-count")["value"], 3);

    d.create("t-four", "pooled", "us-1");
    let (code, v) = triggers(&d);
    assert_eq!((code, trigger(&v, "pooled-tenant-count")["state"].as_str()), (0, Some("approaching")), "{v}");
    assert_eq!(v["state"], "approaching");

    d.create("t-five", "pooled", "us-1");
    let (code, v) = triggers(&d);
    assert_eq!((code, trigger(&v, "pooled-tenant-count")["state"].as_str()), (3, Some("fired")), "{v}");
    assert_eq!(v["exit_code"], 3);
    let (code, text, _) = run(&d, &["triggers"]);
    assert_eq!(code, 3);
    assert!(text.contains("fired        pooled-tenant-count: 5 tenants (threshold 5 tenants)"), "{text}");
    assert!(d.ok(&["adr"]).contains("| Pooled tenants (pooled-tenant-count) | 5 tenants | 5 tenants | fired |"));

    // Only the requirement trigger from here on.
    replace_config(&d, "max_pooled_tenants = 5", "max_pooled_tenants = 100");
    assert_eq!(triggers(&d).0, 0);
    d.ok(&["tenant", "create", "needs-db", "--placement", "pooled", "--server", "us-1", "--requires", "dedicated-database"]);
    let (code, v) = triggers(&d);
    let req = trigger(&v, "unmet-requirements");
    assert_eq!((code, req["state"].as_str(), req["value"].as_u64()), (3, Some("fired"), Some(1)), "{v}");
    let detail = req["detail"].to_string();
    assert!(detail.contains("needs-db") && detail.contains("dedicated-database") && detail.contains("unmet"), "{detail}");
    assert_eq!(trigger(&v, "pooled-tenant-count")["state"], "ok");

    // Bad requirement values are refused and change nothing.
    let err = d.fails(&["tenant", "update", "needs-db", "--requires", "gold-tier"]);
    assert!(err.contains("invalid requirement \"gold-tier\"") && err.contains("Known requirements"), "{err}");
    let err = d.fails(&["tenant", "create", "bad-req", "--placement", "pooled", "--requires", "region:Mars"]);
    assert!(err.contains("invalid requirement"), "{err}");
    assert!(d.fails(&["tenant", "show", "bad-req"]).contains("no tenant"));
    assert!(d.fails(&["tenant", "update", "ghost", "--requires", "dedicated-schema"]).contains("no tenant \"ghost\""));
    assert_eq!(triggers(&d).0, 3);

    // Updating the declaration to what the placement meets clears the trigger.
    let v = d.json(&["tenant", "update", "needs-db", "--requires", "region:us-east", "--json"]);
    assert_eq!(v["requires"], serde_json::json!(["region:us-east"]));
    let (code, v) = triggers(&d);
    assert_eq!((code, trigger(&v, "unmet-requirements")["state"].as_str()), (0, Some("ok")), "{v}");
    d.ok(&["tenant", "update", "needs-db", "--requires", ""]);
    assert_eq!(d.json(&["tenant", "show", "needs-db", "--json"])["requires"], serde_json::json!([]));

    // A requirement this build does not understand (written by something else) is
    // reported as unsupported, never as met.
    let catalog = |sql: &str| d.admin("us-1", "tenantgate", sql);
    catalog("UPDATE tg.tenants SET requires = '{hipaa-enclave}' WHERE slug = 't-sch'");
    let (code, v) = triggers(&d);
    let detail = trigger(&v, "unmet-requirements")["detail"].to_string();
    assert!(code == 3 && detail.contains("t-sch") && detail.contains("unsupported"), "{v}");
    catalog("UPDATE tg.tenants SET requires = '{}' WHERE slug = 't-sch'");

    // A residency its server's region violates (refused at creation; checked anyway).
    catalog("UPDATE tg.tenants SET residency = '{us-east}' WHERE slug = 't-three'");
    let (code, v) = triggers(&d);
    let r = trigger(&v, "residency-violations");
    assert!(code == 3 && r["state"] == "fired" && r["detail"].to_string().contains("t-three"), "{v}");
    catalog("UPDATE tg.tenants SET residency = '{}' WHERE slug = 't-three'");
    assert_eq!(triggers(&d).0, 0);

    // Config errors stay exit 1, with what to do.
    replace_config(&d, "max_pooled_tenants = 100", "max_pooled_tenants = 0");
    let (code, _, err) = run(&d, &["triggers"]);
    assert!(code == 1 && err.contains("reports.max_pooled_tenants must be at least 1"), "{code} {err}");
}

#[test]
fn questionnaire_is_scoped_to_one_tenant_and_says_what_it_cannot_support() {
    let d = Deployment::start();
    std::fs::write(
        d.dir.path().join("move.json"),
        r#"{"format":"tenantgate-move-bench/1","measured_on":"2025-01-02","environment":"test fixture",
            "runs":[{"from":"pooled","to":"database","tenant_bytes":1000000000,"duration_ms":4321,"fence_ms":800}]}"#,
    )
    .expect("bench file");
    std::fs::write(
        d.dir.path().join("restore.json"),
        r#"{"format":"tenantgate-restore-bench/1","measured_on":"2025-01-03","environment":"test fixture",
            "export_import":{"rows":1000,"export_ms":[10,12,11],"import_ms":[20,22,21],"baseline_ms":[30,30,30],"ratio":1.1,"ratio_interval":[0.9,1.3]},
            "point_in_time":{"placement":"pooled","tenant_rows":10000,"pool_rows":1000000,"duration_ms":6543}}"#,
    )
    .expect("restore bench file");
    append_config(&d, "\n[reports]\ncompliance = [\"SOC 2 Type II\"]\nmove_benchmark = \"move.json\"\nrestore_benchmark = \"restore.json\"\n");
    d.ok(&["migrate"]);
    d.ok(&["tenant", "create", "euro-bank", "--placement", "database", "--server", "eu-1", "--residency", "eu-central"]);
    d.create("us-shop", "pooled", "us-1");
    // Canaries: other tenants whose slugs must never appear in a per-tenant answer.
    let canaries = ["canary-qz7k", "canary-wx3m", "canary-vb9p"];
    d.create(canaries[0], "pooled", "us-1");
    d.create(canaries[1], "schema", "us-1");
    d.create(canaries[2], "database", "eu-1");

    let answers = |slug: &str| -> Value { d.json(&["questionnaire", "--tenant", slug, "--json"]) };
    let by_id = |v: &Value| -> std::collections::BTreeMap<String, Value> {
        v["answers"].as_array().expect("answers").iter().map(|a| (a["id"].as_str().expect("id").to_string(), a.clone())).collect()
    };
    let eu = answers("euro-bank");
    let us = answers("us-shop");
    for (v, md_slug, others) in [(&eu, "euro-bank", ["us-shop"]), (&us, "us-shop", ["euro-bank"])] {
        let md = d.ok(&["questionnaire", "--tenant", md_slug, "--md"]);
        assert_eq!(md, d.ok(&["questionnaire", "--tenant", md_slug]), "--md is the default");
        for text in [v.to_string(), md] {
            for other in canaries.iter().chain(others.iter()) {
                assert!(!text.contains(other), "{md_slug}'s questionnaire names {other}:\n{text}");
            }
            for pw in [d.us.password(), d.eu.password()] {
                assert!(!text.contains(pw), "password leaked");
            }
        }
        for a in v["answers"].as_array().expect("answers") {
            assert!(a["question"].as_str().is_some_and(|q| q.ends_with('?')) && a["answer"].as_str().is_some_and(|s| !s.is_empty()));
            assert!(!a["facts"].as_array().expect("facts").is_empty(), "answer without facts: {a}");
            assert!(a["supported"].is_boolean());
        }
    }
    let (eu, us) = (by_id(&eu), by_id(&us));
    let loc = eu["data-location"]["answer"].as_str().expect("answer");
    assert!(loc.contains("server eu-1 in region eu-central") && loc.contains("residency is eu-central"), "{loc}");
    assert!(eu["db-isolation"]["answer"].as_str().expect("a").contains("`database` placement"));
    let loc = us["data-location"]["answer"].as_str().expect("answer");
    assert!(loc.contains("server us-1 in region us-east") && loc.contains("declares no residency"), "{loc}");
    assert!(us["blast-radius"]["answer"].as_str().expect("a").contains("shares server us-1's pool with 1 other tenant."));
    // Volume inference in the shared tables is a stated residual risk (issue #14).
    assert!(us["blast-radius"]["answer"].as_str().expect("a").contains("reveal how many rows the pool holds in all"));

    // The two differ exactly where placement, server and region matter.
    let differing: BTreeSet<&str> = eu.keys().filter(|k| eu[*k] != us[*k]).map(String::as_str).collect();
    let expected: BTreeSet<&str> = ["db-isolation", "blast-radius", "independent-restore", "data-location", "dedicated"].into();
    assert_eq!(differing, expected);

    // Unsupported answers say so: verify has never run.
    let verified = &us["isolation-verified"];
    assert_eq!(verified["supported"], false);
    assert!(verified["answer"].as_str().expect("a").contains("never run"), "{verified}");
    // This build has `tenant export`/`tenant import`: a pooled tenant is restored alone, and
    // the answer names the commands; a database tenant has its own backups besides.
    assert_eq!(us["independent-restore"]["supported"], true);
    let restore = us["independent-restore"]["answer"].as_str().expect("a");
    assert!(restore.contains("`tenantgate tenant export us-shop --out FILE`") && restore.contains("--replace"), "{restore}");
    assert_eq!(eu["independent-restore"]["supported"], true);
    // Point in time: the command, plainly unavailable without [backup], and the measured times.
    assert!(restore.contains("`tenantgate tenant restore us-shop --at TIME --as NEW_SLUG`"), "{restore}");
    assert!(restore.contains("not available in this deployment: no pgBackRest backups are configured"), "{restore}");
    assert!(restore.contains("Measured on 2025-01-03: a point-in-time restore of a pooled tenant of 10000 rows from a pool of 1000000 rows took 6543 ms"), "{restore}");
    assert!(restore.contains("took 32 ms (median of 3 rounds), 1.10x `pg_dump | pg_restore`"), "{restore}");
    assert!(us["independent-restore"]["facts"].to_string().contains("config: reports.restore_benchmark (restore.json)"));
    let adr = d.ok(&["adr"]);
    assert!(adr.contains("Backups: no pgBackRest backups are configured"), "{adr}");
    assert!(adr.contains("- backups: none (no [backup] in tenantgate.toml)"), "{adr}");
    // Dedicated: the exact move command, and the measured duration from the benchmark file.
    let ded = us["dedicated"]["answer"].as_str().expect("a");
    assert!(ded.contains("`tenantgate tenant move us-shop --to database --server us-1`"), "{ded}");
    assert!(ded.contains("4321 ms") && ded.contains("fenced for 800 ms"), "{ded}");
    assert!(!ded.contains("not yet available"), "this build has `tenant move`: {ded}");
    assert!(eu["dedicated"]["answer"].as_str().expect("a").contains("already has one"));
    assert_eq!(us["certifications"]["supported"], true);
    assert!(us["certifications"]["answer"].as_str().expect("a").contains("SOC 2 Type II"));

    // Once verify has recorded a run, the same question is answered from it.
    d.admin("us-1", "tenantgate", "INSERT INTO tg.verify_runs (started_at, finished_at, passed, scenarios, failures) VALUES ('2025-03-01 10:00Z', '2025-03-01 10:02Z', true, 42, 0)");
    let v = by_id(&answers("us-shop"));
    let verified = &v["isolation-verified"];
    assert_eq!(verified["supported"], true);
    assert!(verified["answer"].as_str().expect("a").contains("run #1 on 2025-03-01 10:02 UTC: passed (42 scenarios, 0 failures"), "{verified}");
    assert!(verified["facts"].to_string().contains("verify: tg.verify_runs#1"));
    assert!(d.ok(&["adr"]).contains("last run #1 on 2025-03-01 10:02 UTC: passed"));

    // The deployment-wide questionnaire, and an unknown tenant.
    let all = d.json(&["questionnaire", "--json"]);
    assert_eq!(all["scope"], "deployment");
    assert_eq!(all["answers"].as_array().map(Vec::len), Some(7));
    let err = d.fails(&["questionnaire", "--tenant", "ghost"]);
    assert!(err.contains("no tenant \"ghost\""), "{err}");
}

/// Stops the demo clusters a test started, even when the test fails.
struct DemoGuard(std::path::PathBuf);

impl Drop for DemoGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_tenantgate"))
            .args(["demo", "--stop", "--dir"])
            .arg(&self.0)
            .env_remove("TENANTGATE_CONFIG")
            .output();
    }
}

/// Physical sizes of schema and database tenants vary between two fresh demos (page
/// layout, autovacuum), and so does their order in the size table; the date varies by
/// day, and the recovery window (`backup status`: times to the second) by run. Those are
/// normalised in the examples; everything else must match exactly.
fn normalise_example(text: &str) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| if l.starts_with("Date: ") { "Date: YYYY-MM-DD".to_string() } else { normalise_times(l) })
        .collect();
    if let Some(header) = lines.iter().position(|l| l == "| tenant | placement | server | size | bytes |") {
        let first = header + 2;
        let end = lines[first..].iter().position(|l| !l.starts_with("| ")).map_or(lines.len(), |n| first + n);
        for line in &mut lines[first..end] {
            let cells: Vec<&str> = line.split(" | ").collect();
            if matches!(cells.get(1), Some(&"schema") | Some(&"database")) {
                *line = format!("{} | {} | {} | (size varies) | (bytes vary) |", cells[0], cells[1], cells[2]);
            }
        }
        lines[first..end].sort();
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Every `YYYY-MM-DD HH:MM:SS UTC` in `line` (the recovery window's times) replaced by a placeholder.
fn normalise_times(line: &str) -> String {
    const PATTERN: &[u8] = b"dddd-dd-dd dd:dd:dd UTC";
    let b = line.as_bytes();
    let matches_at = |i: usize| {
        b.len() >= i + PATTERN.len()
            && PATTERN.iter().zip(&b[i..]).all(|(p, c)| if *p == b'd' { c.is_ascii_digit() } else { p == c })
    };
    let (mut out, mut i) = (String::new(), 0);
    while i < b.len() {
        if matches_at(i) {
            out.push_str("YYYY-MM-DD HH:MM:SS UTC");
            i += PATTERN.len();
        } else {
            let ch = line[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[test]
fn recovery_window_times_are_normalised() {
    assert_eq!(
        normalise_times("server us-1 (us-east): from 2026-12-06 21:01:02 UTC to 2026-12-06 21:09:59 UTC; é"),
        "server us-1 (us-east): from YYYY-MM-DD HH:MM:SS UTC to YYYY-MM-DD HH:MM:SS UTC; é"
    );
}

/// The committed examples under docs/examples/ are what `tenantgate demo` gives today.
/// Regenerate them with `TENANTGATE_BLESS=1 cargo test -p tenantgate --test reports examples`.
#[test]
fn examples_match_the_demo() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let _guard = DemoGuard(dir.clone());
    let tg = |args: &[&str], config: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tenantgate"));
        cmd.args(args).env_remove("TENANTGATE_CONFIG");
        if let Some(c) = config {
            cmd.env("TENANTGATE_CONFIG", c);
        }
        let out = cmd.output().expect("run tenantgate");
        assert!(out.status.success(), "tenantgate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    tg(&["demo", "--no-serve", "--dir", dir.to_str().expect("path")], None);
    let config = dir.join("tenantgate.toml");
    // The demo configures a development JWT key: `tenantgate token` works at once.
    let jwt = tg(&["token", "pasta-palace", "--ttl", "5m"], Some(&config));
    assert_eq!(jwt.trim().split('.').count(), 3, "not a JWT: {jwt}");
    let header = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, jwt.trim().split('.').next().unwrap_or_default()).expect("header");
    assert!(String::from_utf8_lossy(&header).contains("HS256"), "{}", String::from_utf8_lossy(&header));
    let examples = common::repo_root().join("docs/examples");
    let bless = std::env::var("TENANTGATE_BLESS").is_ok_and(|v| v == "1");
    let mut drift = Vec::new();
    for (file, args) in [
        ("adr.md", vec!["adr"]),
        ("questionnaire-pasta-palace.md", vec!["questionnaire", "--tenant", "pasta-palace"]),
        ("questionnaire-brasserie-berlin.md", vec!["questionnaire", "--tenant", "brasserie-berlin"]),
    ] {
        let now = normalise_example(&tg(&args, Some(&config)));
        let path = examples.join(file);
        if bless {
            std::fs::create_dir_all(&examples).expect("mkdir docs/examples");
            std::fs::write(&path, &now).expect("write example");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(now.as_str()) {
            let actual = std::env::temp_dir().join(format!("tenantgate-example-{file}"));
            std::fs::write(&actual, &now).expect("write actual");
            drift.push(format!("{file} (now: {})", actual.display()));
        }
    }
    assert!(
        drift.is_empty(),
        "docs/examples drifted from the code: {drift:?}. Regenerate with `TENANTGATE_BLESS=1 cargo test -p tenantgate --test reports examples` and review the diff"
    );
}
