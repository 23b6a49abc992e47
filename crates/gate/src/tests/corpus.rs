//! Test corpus: every statement of PostgreSQL's own SQL scripts (system views,
//! information_schema, every contrib extension: some 3,800 statements, DDL and DML, using most
//! node types), from the installed server's `pg_config --sharedir`.

/// The statements, each with the script it came from.
pub(crate) fn postgres_scripts() -> Vec<(std::path::PathBuf, String)> {
    let share = std::process::Command::new("pg_config")
        .arg("--sharedir")
        .output()
        .ok()
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|dir| dir.join("system_views.sql").exists())
        .unwrap_or_else(|| "/usr/share/postgresql/15".into());
    let mut files: Vec<_> = [share.clone(), share.join("extension")]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    assert!(
        files.len() > 20,
        "PostgreSQL's SQL scripts not found in {} (install postgresql-15, as `make test` does)",
        share.display()
    );
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("PostgreSQL's scripts are UTF-8");
        // psql meta-commands (`\echo … \quit`) are not SQL.
        let text: String = text.lines().filter(|l| !l.starts_with('\\')).map(|l| format!("{l}\n")).collect();
        let statements = pg_query::split_with_scanner(&text).expect("the scanner splits PostgreSQL's scripts");
        out.extend(statements.into_iter().map(|sql| (file.clone(), sql.to_owned())));
    }
    out
}
