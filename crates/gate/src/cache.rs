//! The bounded cache of [`Analysis`] results, keyed by the exact SQL text.
//!
//! Sharded and concurrent (quick_cache, S3-FIFO eviction: statements seen once, such as SQL with
//! inlined literals, do not push out the hot prepared statements). Capacity is counted in
//! entries, where each full KiB of SQL text counts as one more entry, so memory stays bounded
//! (about `capacity` KiB of text at most) however long the statements are. Concurrent misses on
//! the same text analyze it once.
//!
//! A second map is keyed by tenant and statement *shape* (see `shape`): literals replaced by
//! placeholders. Only analyses that cannot depend on a literal's value are stored there:
//! allowed, a single statement, setting no capped parameter, no rule that read a literal.
//! So a statement that inlines its values costs one parse for its first value and a lexer
//! pass for every other.
//!
//! Why the two maps are scoped differently: an analysis stored by exact text is a pure
//! function of that text and the gate's config, so sharing it across tenants is the same as
//! computing it again. A shape entry stands for *other* texts, on the strength of the shape
//! lexer agreeing with PostgreSQL's scanner; that is proven by test, and keying shapes by
//! tenant is the defence in depth for the day a disagreement slips through: one tenant could
//! then only fool the gate about its own statements, never seed a verdict for another's.

use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::analyze::Analysis;

thread_local! {
    /// Where this thread builds shape keys, so a lookup does not allocate.
    static SHAPE_BUF: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A shape buffer grown past this by a long statement is given back after use.
const SHAPE_BUF_KEEP: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
struct TextWeight;

impl Weighter<String, Arc<Analysis>> for TextWeight {
    fn weight(&self, sql: &String, _: &Arc<Analysis>) -> u64 {
        1 + sql.len() as u64 / 1024
    }
}

/// Analyses by SQL text (and by shape); capacity 0 disables caching.
pub(crate) struct AnalysisCache {
    entries: Option<Cache<String, Arc<Analysis>, TextWeight>>,
    shapes: Option<Cache<String, Arc<Analysis>, TextWeight>>,
}

impl AnalysisCache {
    pub(crate) fn new(capacity: usize) -> AnalysisCache {
        let make = || (capacity > 0).then(|| Cache::with_weighter(capacity, capacity as u64, TextWeight));
        AnalysisCache { entries: make(), shapes: make() }
    }

    /// The cached analysis of `sql` for `tenant`, or `analyze()`'s, which is then cached.
    pub(crate) fn get_or_analyze(
        &self,
        tenant: &str,
        sql: &str,
        analyze: impl FnOnce() -> Analysis,
    ) -> Arc<Analysis> {
        let (Some(entries), Some(shapes)) = (&self.entries, &self.shapes) else {
            return Arc::new(analyze());
        };
        if let Some(hit) = entries.get(sql) {
            return hit;
        }
        // The shape key is built in a buffer this thread reuses, and owned only to be stored.
        let mut shape = None;
        let shape_hit = SHAPE_BUF.with_borrow_mut(|buf| {
            buf.clear();
            buf.push_str(tenant);
            buf.push('\0'); // slugs hold no NUL, so no tenant's prefix is another's
            let hit = if crate::shape::append_key(sql, buf) {
                let hit = shapes.get(buf.as_str());
                if hit.is_none() {
                    shape = Some(buf.clone());
                }
                hit
            } else {
                None
            };
            if buf.capacity() > SHAPE_BUF_KEEP {
                *buf = String::new();
            }
            hit
        });
        if let Some(hit) = shape_hit {
            return hit;
        }
        let Ok(analysis) =
            entries.get_or_insert_with::<str, Infallible>(sql, || Ok(Arc::new(analyze())));
        if let Some(k) = shape {
            if shareable(&analysis) {
                shapes.insert(k, analysis.clone());
            }
        }
        analysis
    }

    /// Whether an analysis with this shape is cached for `tenant`.
    #[cfg(test)]
    pub(crate) fn has_shape_of(&self, tenant: &str, sql: &str) -> bool {
        match (crate::shape::key(sql), &self.shapes) {
            (Some(k), Some(shapes)) => shapes.contains_key(&format!("{tenant}\0{k}")),
            _ => false,
        }
    }

    /// Whether `sql` is cached.
    #[cfg(test)]
    pub(crate) fn contains(&self, sql: &str) -> bool {
        self.entries
            .as_ref()
            .is_some_and(|entries| entries.contains_key(sql))
    }

    /// Number of cached statements.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |entries| entries.len())
    }
}

/// May this analysis stand for every statement of its shape? Only if nothing in it can
/// depend on a literal's value: it was allowed, it is one statement, it sets no capped
/// parameter (whose value the tenant's limits are checked against), and no rule looked at a
/// literal's value (such as a `'…'::regclass` cast, refused for a numeric OID).
fn shareable(a: &Analysis) -> bool {
    a.denial.is_none()
        && !a.reads_literals
        && a.rewritten.is_none()
        && a.statements.len() == 1
        && a.statements.iter().all(|s| s.timeout.is_none())
}
