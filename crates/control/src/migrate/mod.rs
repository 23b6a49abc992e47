//! App-schema migrations: the numbered SQL files, their lint against the table
//! contract (`lint`), and their fan-out to every target (`fanout`).
//!
//! The files are registered in the catalog when `tenantgate migrate` runs, so that a
//! tenant created later gets exactly the registered migrations, wherever the CLI runs.
//! An applied migration may never change; a new file is the way to evolve the schema.

pub mod fanout;
pub mod lint;

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::catalog::{AppMigration, Catalog};
use crate::error::{Error, Result};

/// Read `NNNN_name.sql` files from `dir`, ordered by version.
pub fn load_dir(dir: &Path) -> Result<Vec<AppMigration>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Migration(format!(
        "cannot read migrations directory {}: {e}. Set migrations.dir in tenantgate.toml or pass --dir",
        dir.display()
    )))?;
    let mut out: Vec<AppMigration> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if !name.ends_with(".sql") {
            continue;
        }
        let version = parse_version(&name)?;
        let sql = std::fs::read_to_string(&path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
        if let Some(dup) = out.iter().find(|m| m.version == version) {
            return Err(Error::Migration(format!(
                "{name} and {} both have version {version}; give each file its own number",
                dup.name
            )));
        }
        out.push(AppMigration { version, name, checksum: checksum(&sql), sql });
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

fn parse_version(name: &str) -> Result<i32> {
    let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
    let ok = !digits.is_empty() && name[digits.len()..].starts_with('_');
    match digits.parse::<i32>() {
        Ok(v) if ok && v > 0 => Ok(v),
        _ => Err(Error::Migration(format!(
            "{name}: migration files are named NNNN_description.sql with NNNN ≥ 1 (e.g. 0003_add_tips.sql)"
        ))),
    }
}

pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Lint every file; returns all findings.
pub fn check(files: &[AppMigration]) -> Vec<lint::Finding> {
    files.iter().flat_map(|m| lint::lint_sql(&m.name, &m.sql)).collect()
}

/// Register new files in the catalog. Refuses files with lint errors, and refuses
/// a registered migration whose file has changed. Returns the versions registered now.
pub async fn register(catalog: &Catalog, files: &[AppMigration]) -> Result<Vec<i32>> {
    let findings = check(files);
    if lint::has_errors(&findings) {
        let text: Vec<String> = findings.iter().filter(|f| f.severity == lint::Severity::Error).map(|f| f.to_string()).collect();
        return Err(Error::Migration(format!(
            "the migrations break the table contract; nothing was applied:\n{}",
            text.join("\n")
        )));
    }
    let known = catalog.app_migrations().await?;
    for k in &known {
        match files.iter().find(|f| f.version == k.version) {
            Some(f) if f.checksum != k.checksum => {
                return Err(Error::Migration(format!(
                    "{} was changed after it was registered (as {}); applied migrations are immutable. \
                     Restore the original file and put the change in a new migration",
                    f.name, k.name
                )))
            }
            Some(_) => {}
            None => {
                return Err(Error::Migration(format!(
                    "migration {} ({}) is registered in the catalog but missing from the directory; restore it",
                    k.version, k.name
                )))
            }
        }
    }
    let latest_known = known.last().map_or(0, |m| m.version);
    let mut added = Vec::new();
    for f in files.iter().filter(|f| !known.iter().any(|k| k.version == f.version)) {
        if f.version < latest_known {
            return Err(Error::Migration(format!(
                "{} has version {} but migration {latest_known} is already registered; new migrations must come after it",
                f.name, f.version
            )));
        }
        catalog.register_app_migration(f).await?;
        added.push(f.version);
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("0001_init.sql").unwrap(), 1);
        assert_eq!(parse_version("12_x.sql").unwrap(), 12);
        assert!(parse_version("init.sql").is_err());
        assert!(parse_version("0000_x.sql").is_err());
        assert!(parse_version("0001init.sql").is_err());
    }
}
