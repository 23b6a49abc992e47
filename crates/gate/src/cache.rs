//! The bounded cache of [`Analysis`] results, keyed by the exact SQL text.
//!
//! Sharded and concurrent (quick_cache, S3-FIFO eviction: statements seen once, such as SQL with
//! inlined literals, do not push out the hot prepared statements). Capacity is counted in
//! entries, where each full KiB of SQL text counts as one more entry, so memory stays bounded
//! (about `capacity` KiB of text at most) however long the statements are. Concurrent misses on
//! the same text analyze it once.

use std::convert::Infallible;
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::analyze::Analysis;

#[derive(Debug, Clone, Copy)]
struct TextWeight;

impl Weighter<String, Arc<Analysis>> for TextWeight {
    fn weight(&self, sql: &String, _: &Arc<Analysis>) -> u64 {
        1 + sql.len() as u64 / 1024
    }
}

/// Analyses by SQL text; capacity 0 disables caching.
pub(crate) struct AnalysisCache {
    entries: Option<Cache<String, Arc<Analysis>, TextWeight>>,
}

impl AnalysisCache {
    pub(crate) fn new(capacity: usize) -> AnalysisCache {
        let entries =
            (capacity > 0).then(|| Cache::with_weighter(capacity, capacity as u64, TextWeight));
        AnalysisCache { entries }
    }

    /// The cached analysis of `sql`, or `analyze()`'s, which is then cached.
    pub(crate) fn get_or_analyze(
        &self,
        sql: &str,
        analyze: impl FnOnce() -> Analysis,
    ) -> Arc<Analysis> {
        let Some(entries) = &self.entries else {
            return Arc::new(analyze());
        };
        let Ok(analysis) =
            entries.get_or_insert_with::<str, Infallible>(sql, || Ok(Arc::new(analyze())));
        analysis
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
