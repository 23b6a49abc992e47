//! Deterministic formatting shared by the renderers: byte sizes, lists, Markdown
//! escaping. Pure functions; nothing here reads the clock or the environment.

/// Decimal units (1 GB = 10^9 bytes), as the thresholds in tenantgate.toml are.
pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1_000)];
    for (unit, size) in UNITS {
        if n >= size {
            let whole = n / size;
            let tenth = (n % size) * 10 / size;
            return if tenth == 0 { format!("{whole} {unit}") } else { format!("{whole}.{tenth} {unit}") };
        }
    }
    format!("{n} B")
}

/// `a, b and c`; `none` when empty.
pub fn list(items: &[String]) -> String {
    match items {
        [] => "none".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Escape a value for a Markdown table cell.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `n thing` / `n things`.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(8192), "8.1 kB");
        assert_eq!(bytes(100_000_000_000), "100 GB");
        assert_eq!(bytes(1_550_000_000), "1.5 GB");
    }

    #[test]
    fn lists() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(list(&v(&[])), "none");
        assert_eq!(list(&v(&["a"])), "a");
        assert_eq!(list(&v(&["a", "b", "c"])), "a, b and c");
    }
}
