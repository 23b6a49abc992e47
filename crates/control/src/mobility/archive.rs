//! The tenant archive: one portable file, a tar stream compressed with zstd
//! (`tar --zstd -tf FILE` lists it), holding a tenant's rows from one consistent snapshot.
//!
//! Entries, in this order (docs/data-rights.md describes each field):
//! - `manifest.json`: tenant, schema version and migration checksums, source placement,
//!   server and region, and per table its columns, row count and order-independent checksum;
//! - `data/<table>/<NNNNNN>.copy`: the table's rows in PostgreSQL's COPY text format, cut
//!   at row boundaries into chunks of at most [`CHUNK_BYTES`], tables parents first;
//! - `END.json`: the number of chunks and bytes and a SHA-256 over all data bytes. An
//!   archive without it was cut short and is refused.
//!
//! Owns the file format and nothing else: it never touches a database or the catalog.
//! Between the producer (export) and consumer (import) travels a stream of [`Item`]s over a
//! bounded channel, so a file, or no file at all (`tenant clone`), sits in between, and
//! memory stays flat whatever the tenant's size. The reader trusts nothing: entry names,
//! order, sizes and the trailer are checked, and every error says the archive is damaged.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::model::Placement;

/// The format's name and version, in every manifest.
pub const FORMAT: &str = "tenantgate-archive";
pub const FORMAT_VERSION: u32 = 1;
/// A data chunk's size bound (rows are never split; a single larger row makes a larger chunk).
pub const CHUNK_BYTES: usize = 4 << 20;
/// The largest entry a reader accepts: a damaged header cannot make it allocate more.
const MAX_ENTRY_BYTES: u64 = 256 << 20;
/// Items in flight between producer and consumer.
pub const CHANNEL_DEPTH: usize = 4;

/// The archive's manifest (`manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub tool: String,
    pub tool_version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub tenant: ArchivedTenant,
    pub source: Source,
    /// The app-schema version (highest applied migration) of the exported tables.
    pub schema_version: i32,
    /// The migrations applied to the source, `(version, checksum)`, up to `schema_version`.
    pub migrations: Vec<ArchivedMigration>,
    /// The snapshot the rows were read in (`pg_current_snapshot()`), for the record.
    pub snapshot: String,
    /// `text`: PostgreSQL's COPY text format, under [`SESSION_SETTINGS`].
    pub copy_format: String,
    /// How [`Table::checksum`] is computed.
    pub checksum_method: String,
    /// Tables in load order (parents before children).
    pub tables: Vec<Table>,
    /// The source's sequences and their last values (schema and database placements).
    #[serde(default)]
    pub sequences: Vec<Sequence>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchivedTenant {
    pub slug: String,
    /// The tenant key the rows carry in `tenant_id`.
    pub key: String,
    /// Regions the tenant's data may live in; an import honours them (DESIGN I8).
    pub residency: Vec<String>,
    #[serde(default)]
    pub requires: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Source {
    pub placement: Placement,
    pub server: String,
    pub region: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchivedMigration {
    pub version: i32,
    pub checksum: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Table {
    pub name: String,
    /// Every column, in the order of the COPY data; `tenant_id` among them.
    pub columns: Vec<String>,
    pub rows: i64,
    /// Sum of a 64-bit hash of each row's columns other than `tenant_id` (so a clone, whose
    /// `tenant_id` is rewritten, checks against the same figure).
    pub checksum: String,
    /// `record` or `text` (see `replication::RowHash`).
    pub row_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sequence {
    pub name: String,
    pub last_value: Option<i64>,
}

/// The trailer (`END.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trailer {
    pub chunks: u64,
    pub data_bytes: u64,
    /// SHA-256 over every data chunk's bytes, in order.
    pub data_sha256: String,
}

/// What travels from a producer to a consumer.
#[derive(Debug)]
pub enum Item {
    Manifest(Box<Manifest>),
    /// Rows of `manifest.tables[table]`, whole lines of COPY text.
    Chunk { table: usize, data: bytes::Bytes },
    End(Trailer),
}

pub type Sender = mpsc::Sender<Result<Item>>;
pub type Receiver = mpsc::Receiver<Result<Item>>;

pub fn channel() -> (Sender, Receiver) {
    mpsc::channel(CHANNEL_DEPTH)
}

/// The session settings under which rows are written and read as COPY text (and their
/// checksums computed), on both sides, so equal values give equal text.
pub const SESSION_SETTINGS: &str = super::replication::CHECKSUM_SETTINGS;

/// A running digest of the data, for the trailer.
#[derive(Default)]
pub struct DataDigest {
    sha: Sha256,
    chunks: u64,
    bytes: u64,
}

impl DataDigest {
    pub fn add(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.chunks += 1;
        self.bytes += data.len() as u64;
    }
    pub fn trailer(self) -> Trailer {
        Trailer { chunks: self.chunks, data_bytes: self.bytes, data_sha256: hex::encode(self.sha.finalize()) }
    }
}

fn damaged(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Archive(format!(
        "{} is not a readable tenantgate archive: {what}. It may be corrupt or truncated; use another copy. Nothing was imported",
        path.display()
    ))
}

/// A table's directory name in the archive: its index and name, so order is visible.
fn chunk_name(table: &Table, seq: u64) -> String {
    format!("data/{}/{seq:06}.copy", table.name)
}

/// Write the items of `rx` to `path` as an archive: into `path.partial`, renamed to `path`
/// only once the trailer is written, so a failed export leaves no file that looks whole.
/// Blocking: run it on a blocking thread. Returns the file's size.
pub fn write_file(path: &Path, mut rx: Receiver) -> Result<u64> {
    let partial = partial_path(path);
    let result = (|| -> Result<()> {
        let io = |e: std::io::Error| Error::Io { path: partial.display().to_string(), source: e };
        let file = std::fs::File::create(&partial).map_err(io)?;
        let mut enc = zstd::Encoder::new(std::io::BufWriter::new(file), 3).map_err(io)?;
        enc.include_checksum(true).map_err(io)?;
        let mut tar = tar::Builder::new(enc);
        let mut manifest: Option<Manifest> = None;
        let mut seq = 0u64;
        let mut last_table = usize::MAX;
        loop {
            let item = match rx.blocking_recv() {
                Some(Ok(item)) => item,
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Archive("the export stopped before it finished; no archive was written".into())),
            };
            match item {
                Item::Manifest(m) => {
                    let json = serde_json::to_vec_pretty(&m).map_err(|e| Error::Archive(e.to_string()))?;
                    append(&mut tar, "manifest.json", &json).map_err(io)?;
                    manifest = Some(*m);
                }
                Item::Chunk { table, data } => {
                    let t = manifest
                        .as_ref()
                        .and_then(|m| m.tables.get(table))
                        .ok_or_else(|| Error::Archive(format!("data for unknown table #{table}")))?;
                    if table != last_table {
                        seq = 0;
                        last_table = table;
                    }
                    seq += 1;
                    append(&mut tar, &chunk_name(t, seq), &data).map_err(io)?;
                }
                Item::End(trailer) => {
                    let json = serde_json::to_vec_pretty(&trailer).map_err(|e| Error::Archive(e.to_string()))?;
                    append(&mut tar, "END.json", &json).map_err(io)?;
                    break;
                }
            }
        }
        let enc = tar.into_inner().map_err(io)?;
        let mut out = enc.finish().map_err(io)?;
        out.flush().map_err(io)?;
        out.get_ref().sync_all().map_err(io)?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            std::fs::rename(&partial, path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
            std::fs::metadata(path).map(|m| m.len()).map_err(|e| Error::Io { path: path.display().to_string(), source: e })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Where [`write_file`] writes before the rename.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
}

/// Read the archive at `path` and send its items to `tx`, checking names, order, sizes and
/// the trailer on the way; the first problem is sent as an error and reading stops.
/// Blocking: run it on a blocking thread. Stops quietly when the receiver goes away.
pub fn read_file(path: &Path, tx: Sender) {
    if let Err(e) = read_items(path, &tx) {
        let _ = tx.blocking_send(Err(e));
    }
}

fn read_items(path: &Path, tx: &Sender) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
    let dec = zstd::Decoder::new(file).map_err(|e| damaged(path, e))?;
    let mut tar = tar::Archive::new(dec);
    let mut entries = tar.entries().map_err(|e| damaged(path, e))?;
    let mut manifest: Option<Manifest> = None;
    let mut digest = DataDigest::default();
    // (table index, next sequence number) of the data read so far.
    let mut at: (usize, u64) = (0, 1);
    loop {
        let entry = match entries.next() {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(damaged(path, e)),
            None => return Err(damaged(path, "it ends before its END.json trailer (truncated?)")),
        };
        let mut entry = entry;
        let name = entry.path().map_err(|e| damaged(path, e))?.to_string_lossy().into_owned();
        let size = entry.header().size().map_err(|e| damaged(path, e))?;
        if size > MAX_ENTRY_BYTES || entry.header().entry_type() != tar::EntryType::Regular {
            return Err(damaged(path, format!("entry {name:?} is not a data file of a plausible size")));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut data).map_err(|e| damaged(path, e))?;
        let item = match (&manifest, name.as_str()) {
            (None, "manifest.json") => {
                let m: Manifest = serde_json::from_slice(&data).map_err(|e| damaged(path, format!("its manifest is unreadable ({e})")))?;
                check_manifest(&m).map_err(|e| damaged(path, e))?;
                manifest = Some(m.clone());
                Item::Manifest(Box::new(m))
            }
            (None, other) => return Err(damaged(path, format!("its first entry is {other:?}, not manifest.json"))),
            (Some(_), "END.json") => {
                let t: Trailer = serde_json::from_slice(&data).map_err(|e| damaged(path, format!("its trailer is unreadable ({e})")))?;
                let ours = std::mem::take(&mut digest).trailer();
                if t != ours {
                    return Err(damaged(
                        path,
                        format!("its data ({} chunks, {} bytes) does not match its trailer ({} chunks, {} bytes, or another SHA-256)", ours.chunks, ours.data_bytes, t.chunks, t.data_bytes),
                    ));
                }
                if tx.blocking_send(Ok(Item::End(t))).is_err() {
                    return Ok(());
                }
                // Anything after the trailer is ignored, but a damaged tail still shows.
                return Ok(());
            }
            (Some(m), name) => {
                let (table, seq) = parse_chunk_name(m, name).ok_or_else(|| damaged(path, format!("unexpected entry {name:?}")))?;
                let expected = if table == at.0 { seq == at.1 } else { table > at.0 && seq == 1 };
                if !expected {
                    return Err(damaged(path, format!("entry {name:?} is out of order (a chunk is missing)")));
                }
                at = (table, seq + 1);
                digest.add(&data);
                Item::Chunk { table, data: bytes::Bytes::from(data) }
            }
        };
        if tx.blocking_send(Ok(item)).is_err() {
            return Ok(());
        }
    }
}

fn parse_chunk_name(m: &Manifest, name: &str) -> Option<(usize, u64)> {
    let rest = name.strip_prefix("data/")?;
    let (table, file) = rest.split_once('/')?;
    let seq: u64 = file.strip_suffix(".copy")?.parse().ok()?;
    let idx = m.tables.iter().position(|t| t.name == table)?;
    (seq >= 1).then_some((idx, seq))
}

/// The manifest's own consistency: format, version, tables with a `tenant_id` column.
pub fn check_manifest(m: &Manifest) -> std::result::Result<(), String> {
    if m.format != FORMAT {
        return Err(format!("its format is {:?}, not {FORMAT:?}", m.format));
    }
    if m.format_version != FORMAT_VERSION {
        return Err(format!(
            "it is archive format version {}; this tenantgate reads version {FORMAT_VERSION}. Use a tenantgate of the version that wrote it ({})",
            m.format_version, m.tool_version
        ));
    }
    if m.copy_format != "text" {
        return Err(format!("its data is in COPY format {:?}; only text is supported", m.copy_format));
    }
    crate::model::TenantKey::parse(&m.tenant.key).map_err(|e| format!("its tenant key is invalid ({e})"))?;
    let mut seen = std::collections::HashSet::new();
    for t in &m.tables {
        if !seen.insert(t.name.as_str()) || t.name.contains('/') || t.name.is_empty() {
            return Err(format!("its table list is invalid at {:?}", t.name));
        }
        if !t.columns.iter().any(|c| c == "tenant_id") {
            return Err(format!("table {} has no tenant_id column", t.name));
        }
        if t.rows < 0 || !["record", "text"].contains(&t.row_hash.as_str()) {
            return Err(format!("table {} has an invalid row count or hash kind", t.name));
        }
    }
    Ok(())
}

/// Rewrites the `tenant_id` field of COPY text rows from one key to another, checking that
/// every row carries exactly the archived key: rows of any other tenant are refused, so an
/// archive cannot write into another tenant's rows however it was made.
///
/// COPY text escapes tabs and newlines inside values, so a row is one line and its fields
/// are separated by tabs. Chunks hold whole rows; a partial last line is carried over.
pub struct KeyRewriter {
    column: usize,
    from: Vec<u8>,
    to: Vec<u8>,
    carry: Vec<u8>,
    pub rows: u64,
}

impl KeyRewriter {
    pub fn new(column: usize, from: &str, to: &str) -> KeyRewriter {
        KeyRewriter { column, from: from.as_bytes().to_vec(), to: to.as_bytes().to_vec(), carry: Vec::new(), rows: 0 }
    }

    /// The rewritten complete rows of `data` (plus any carried-over start).
    pub fn push(&mut self, data: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let mut input = std::mem::take(&mut self.carry);
        input.extend_from_slice(data);
        let complete = match input.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => {
                self.carry = input;
                return Ok(Vec::new());
            }
        };
        let mut out = Vec::with_capacity(complete + 16);
        for line in input[..complete].split_inclusive(|b| *b == b'\n') {
            let mut field = 0;
            let mut start = 0;
            let mut done = false;
            for (i, b) in line.iter().enumerate() {
                if *b == b'\t' || *b == b'\n' {
                    if field == self.column {
                        if &line[start..i] != self.from.as_slice() {
                            return Err(format!("row {} carries another tenant_id than the archive's tenant", self.rows + 1));
                        }
                        out.extend_from_slice(&line[..start]);
                        out.extend_from_slice(&self.to);
                        out.extend_from_slice(&line[i..]);
                        done = true;
                        break;
                    }
                    field += 1;
                    start = i + 1;
                }
            }
            if !done {
                return Err(format!("row {} has fewer columns than the manifest lists", self.rows + 1));
            }
            self.rows += 1;
        }
        self.carry = input[complete..].to_vec();
        Ok(out)
    }

    /// Whether a partial row is left over (the data ended mid-row).
    pub fn has_partial(&self) -> bool {
        !self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_key_column_and_refuses_other_tenants() {
        let mut r = KeyRewriter::new(1, "t000000000001", "t0000000000ff");
        let out = r.push(b"a\tt000000000001\tx\\ty\nb\tt0000000").unwrap();
        assert_eq!(out, b"a\tt0000000000ff\tx\\ty\n");
        assert!(r.has_partial());
        let out = r.push(b"00001\n").unwrap();
        assert_eq!(out, b"b\tt0000000000ff\n");
        assert_eq!(r.rows, 2);
        assert!(!r.has_partial());
        assert!(r.push(b"c\tt000000000002\n").is_err());
        let mut last = KeyRewriter::new(0, "t000000000001", "t000000000001");
        assert!(last.push(b"only\n").is_err());
        assert_eq!(last.rows, 0);
    }
}
