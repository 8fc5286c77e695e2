//! The durable store: SQLite (WAL, `synchronous=FULL`) under the data directory.
//!
//! Spans are kept as they arrived — OTLP protobuf, zstd-compressed in *frames* of up to
//! [`crate::ingest::FRAME_SPANS`] spans — with small indexes beside them, all written in arrival order so
//! ingest does not slow down as the store grows: a Bloom filter of each frame's trace ids
//! (held in memory, see [`crate::trace_index`]), a per-trace summary for listing, each
//! frame's search terms and span columns (see [`crate::search`]), the links between traces, and per-minute duration histograms per
//! operation for rates and percentiles. One writer thread commits several requests per
//! transaction (group commit) and acknowledges each only after its commit, so an
//! acknowledged span survives `kill -9`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension};

use crate::trace_index::{RecentTraces, TraceIndex, RECENT_TRACES};
use tokio::sync::oneshot;

use crate::bloom::Bloom;
use crate::histogram::Histogram;
use crate::ingest::{minute_of, Prepared, TraceDelta};
use crate::model::{self, LinkedFromCount, LinkingSpan, LogView, SpanView, TraceSummary, TraceView};
use crate::search::{Candidate, FrameIndex, SearchIndex, TraceRows};
pub use crate::search::{SearchOrder, SearchQuery};

/// The size limit is checked after every this-many-th part of it written.
const CHECK_EVERY_PART: u64 = 32;

/// Frames (of up to 1024 spans) an attribute listing reads at most: the newest in its range.
pub const ATTRIBUTE_SAMPLE_FRAMES: usize = 200;

/// Log records an attribute listing reads at most: the newest in its range.
pub const ATTRIBUTE_SAMPLE_LOGS: usize = 5_000;

/// Requests committed together at most.
const GROUP_MAX_REQUESTS: usize = 64;

/// The underlying error of a [`StoreError`], shared (errors are cloned to every waiting
/// request).
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why the store could not do something. The underlying error (SQLite's, the file system's,
/// the decoder's) is kept as the `source()`.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The write queue is full: the client should retry later.
    #[error("the store is behind; retry later")]
    Busy,
    /// The store is shutting down.
    #[error("the store is shutting down")]
    Closed,
    /// Storage trouble that may pass (the database locked past the busy timeout, a full
    /// disk, an I/O error, no file descriptors left): the client should retry later.
    #[error("storage temporarily unavailable: {}", with_source(message, source))]
    Unavailable {
        /// What was being done, or why the store is read-only.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<ErrorSource>,
    },
    /// SQLite, the file system or stored data failed.
    #[error("storage error: {}", with_source(message, source))]
    Storage {
        /// What was being done.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The request cannot be stored as it is (it would make a frame larger than the store
    /// reads): refused, not to be retried.
    #[error("{0}")]
    Unstorable(String),
    /// The data directory cannot be used.
    #[error("unusable data directory {}: {}", path.display(), with_source(message, source))]
    DataDir {
        /// The directory or database file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<ErrorSource>,
    },
}

/// `message: source`, or the message alone.
fn with_source(message: &str, source: &Option<ErrorSource>) -> String {
    match source {
        Some(source) if message.is_empty() => source.to_string(),
        Some(source) => format!("{message}: {source}"),
        None => message.to_owned(),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        let transient = matches!(&e, rusqlite::Error::SqliteFailure(failure, _)
        if matches!(
            failure.code,
            DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen | OutOfMemory
        ));
        let source = Some(Arc::new(e) as ErrorSource);
        if transient {
            StoreError::Unavailable {
                message: String::new(),
                source,
            }
        } else {
            StoreError::Storage {
                message: String::new(),
                source,
            }
        }
    }
}

impl StoreError {
    /// True for what may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Busy | StoreError::Closed | StoreError::Unavailable { .. }
        )
    }

    /// A [`StoreError::Storage`] saying what failed, keeping why.
    pub(crate) fn storage(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Storage {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// A [`StoreError::DataDir`] for `path`, keeping why.
    pub(crate) fn data_dir(path: &Path, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::DataDir {
            path: path.to_owned(),
            message: String::new(),
            source: Some(Arc::new(source)),
        }
    }

    /// A [`StoreError::DataDir`] for `path` with no underlying error.
    pub(crate) fn unusable(path: &Path, message: impl Into<String>) -> Self {
        StoreError::DataDir {
            path: path.to_owned(),
            message: message.into(),
            source: None,
        }
    }

    /// The store is read-only: `why`.
    pub(crate) fn read_only(why: &str) -> Self {
        StoreError::Unavailable {
            message: why.to_owned(),
            source: None,
        }
    }
}

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Where `skein.db` lives.
    pub data_dir: PathBuf,
    /// Requests waiting for the writer at most; beyond, ingest answers "retry later".
    pub queue_requests: usize,
    /// Delete traces older than this.
    pub retention: Duration,
    /// Keep the database under this many bytes (oldest data goes first).
    pub max_disk_bytes: u64,
}

/// Counts visible in the API.
#[derive(Debug, Default)]
pub struct StoreCounters {
    pub spans_stored: AtomicU64,
    pub logs_stored: AtomicU64,
    pub frames_evicted: AtomicU64,
    pub spans_evicted: AtomicU64,
    pub traces_evicted: AtomicU64,
}

/// A write for the writer thread.
pub enum Write {
    /// Spans, prepared by [`crate::ingest::prepare`].
    Traces(Prepared),
    Logs(ExportLogsServiceRequest),
    /// Nothing new: the trace summaries, call counts and per-minute figures of everything
    /// already acknowledged are written (they otherwise follow within half a second).
    Summaries,
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The store: a writer thread and a pool of read connections.
pub struct Store {
    jobs: Mutex<Option<SyncSender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    pub counters: Arc<StoreCounters>,
    config: StoreConfig,
    index: Arc<RwLock<TraceIndex>>,
    search: Arc<RwLock<SearchIndex>>,
    recent: Arc<Mutex<RecentTraces>>,
    /// Sends each newly seen trace summary to live subscribers.
    pub live: tokio::sync::broadcast::Sender<TraceSummary>,
    /// Bytes stored since the size limit was last checked.
    written_since_check: AtomicU64,
    /// Woken when that many bytes came in that the size limit should be checked now rather
    /// than at the next retention interval.
    pub retention_due: tokio::sync::Notify,
    /// Why the store opened read-only, if it did.
    read_only: Option<String>,
}

/// A time bound for SQL: stored times are signed (the receiver refuses times past
/// `i64::MAX`), so a bound beyond them is `i64::MAX`, not a negative number.
pub(crate) fn sql_time(nanos: u64) -> i64 {
    nanos.min(i64::MAX as u64) as i64
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS frames(
    id INTEGER PRIMARY KEY,
    min_start INTEGER NOT NULL,
    max_start INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    filter BLOB NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_by_start ON frames(max_start);
CREATE TABLE IF NOT EXISTS frame_search(
    frame_id INTEGER PRIMARY KEY,
    terms BLOB NOT NULL,
    spans BLOB NOT NULL,
    trace_rows BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS frame_traces(
    frame_id INTEGER PRIMARY KEY,
    filter BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS traces(
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    root_service TEXT,
    root_name TEXT,
    services TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces(start);
CREATE INDEX IF NOT EXISTS traces_with_errors ON traces(start) WHERE error_count > 0;
CREATE TABLE IF NOT EXISTS links(
    target BLOB NOT NULL,
    source BLOB NOT NULL,
    frame_id INTEGER NOT NULL,
    PRIMARY KEY(target, source)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_by_frame ON links(frame_id);
CREATE TABLE IF NOT EXISTS span_links(
    target BLOB NOT NULL,
    target_span BLOB NOT NULL,
    start INTEGER NOT NULL,
    source BLOB NOT NULL,
    source_span BLOB NOT NULL,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    frame_id INTEGER NOT NULL,
    PRIMARY KEY(target, target_span, start, source, source_span)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS span_links_by_frame ON span_links(frame_id);
CREATE TABLE IF NOT EXISTS operations(
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    PRIMARY KEY(service, name, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS op_minutes(
    minute INTEGER NOT NULL,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    histogram BLOB NOT NULL,
    PRIMARY KEY(minute, service, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edges(
    minute INTEGER NOT NULL,
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    PRIMARY KEY(minute, parent, child)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs(
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    trace_id BLOB,
    span_id BLOB,
    service TEXT NOT NULL,
    severity INTEGER NOT NULL,
    body TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_trace ON logs(trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS logs_by_time ON logs(time);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
";

/// What a search with exclusions has read of each frame: its index, and for frames whose index
/// cannot say (an excluded value not listed there), the traces found carrying one.
#[derive(Default)]
struct ExclusionFrames {
    indexes: HashMap<i64, Option<FrameIndex>>,
    carriers: HashMap<i64, HashSet<[u8; 16]>>,
}

/// A trace with a matching span, and its summary row if the frame says.
type FoundTrace = ([u8; 16], Option<i64>);

/// Every frame's search terms. Frames stored before search indexes existed (ids below
/// `search_indexed_from`) are read in full by the searches their time matches.
fn load_search_index(conn: &Connection, writable: bool) -> Result<SearchIndex, StoreError> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE name = 'frame_search')",
        [],
        |r| r.get(0),
    )?;
    let stored: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'search_indexed_from'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let indexed_from = match stored {
        Some(from) if has_table => from,
        _ => {
            let next: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM frames", [], |r| r.get(0))?;
            if writable && has_table {
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('search_indexed_from', ?1)",
                    [next],
                )?;
            }
            next
        }
    };
    let mut search = SearchIndex::default();
    let mut old = conn.prepare("SELECT id, min_start, max_start, span_count FROM frames WHERE id < ?1 ORDER BY id")?;
    let mut rows = old.query([indexed_from])?;
    while let Some(row) = rows.next()? {
        let (min, max, count): (i64, i64, i64) = (row.get(1)?, row.get(2)?, row.get(3)?);
        search.add(row.get(0)?, None, (min as u64, max as u64, count as u32));
    }
    if has_table {
        let mut statement = conn.prepare("SELECT frame_id, terms FROM frame_search ORDER BY frame_id")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            // Terms that do not decode leave the frame to be read whatever its time.
            search.add(row.get(0)?, row.get_ref(1)?.as_blob().ok(), (0, u64::MAX >> 1, 0));
        }
    }
    Ok(search)
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::data_dir(path, e))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Space freed by retention goes back to the file system a little at a time (a full
    // VACUUM would stop ingest while it rewrites the whole file). Takes effect only on a new
    // database, so it comes before anything is written.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before the request is acknowledged.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    Ok(conn)
}

/// A read-only connection that needs no disk space. With the write-ahead log still there (a
/// full disk could not checkpoint it into the database), a plain read-only connection reads
/// through it; without it (and so without its shared-memory file, which could not be created
/// now), `immutable` reads the database file alone, which then holds everything. Nothing
/// writes the database while the store is read-only, which is what makes that safe.
fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let readable = |conn: Connection| {
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
            .map(|_| conn)
    };
    let plain = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).and_then(readable);
    plain
        .or_else(|_| {
            let uri = format!("file:{}?immutable=1", path.display());
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
            Connection::open_with_flags(uri, flags).and_then(readable)
        })
        .map_err(|e| StoreError::data_dir(path, e))
}

/// Space the store must be able to write at start (a few frames), or it opens read-only.
const ROOM_AT_START: i64 = 1 << 20;

/// Writes (and deletes) [`ROOM_AT_START`] bytes: fails with `Unavailable` on a full disk.
/// The space goes back to the file system at once, so the check leaves the file as it was
/// (retention's sizes included).
fn room_to_write(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS room_check(data BLOB NOT NULL)")?;
    conn.execute("INSERT INTO room_check(data) VALUES (zeroblob(?1))", [ROOM_AT_START])?;
    conn.execute("DELETE FROM room_check", [])?;
    reclaim_free_pages(conn)
}

/// A connection for queries: read-only when the store is.
fn open_reader(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    if read_only {
        open_read_only(path)
    } else {
        open_connection(path)
    }
}

impl Store {
    /// Opens (or creates) the store under `config.data_dir` and starts its writer thread.
    /// `progress` hears what is happening while a large store opens.
    pub fn open(config: StoreConfig, progress: &dyn Fn(&str)) -> Result<Arc<Store>, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StoreError::data_dir(&config.data_dir, e))?;
        let path = config.data_dir.join("skein.db");
        progress(&format!("opening {}", path.display()));
        // A full disk (or other storage trouble that may pass) can refuse even opening for
        // writing (the write-ahead files cannot be created): then the store opens read-only.
        let (mut conn, mut read_only) = match open_connection(&path) {
            Ok(conn) => (conn, None),
            Err(reason @ StoreError::Unavailable { .. }) if path.exists() => {
                (open_read_only(&path)?, Some(reason.to_string()))
            }
            Err(e) => return Err(e),
        };
        let old_format: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE name = 'trace_frames')",
            [],
            |r| r.get(0),
        )?;
        if old_format {
            return Err(StoreError::unusable(
                &path,
                "written by an earlier Skein in a format this one does not read; move it away or choose another data directory",
            ));
        }
        if read_only.is_none() {
            conn.execute_batch(SCHEMA).map_err(|e| StoreError::data_dir(&path, e))?;
            // Opening may need no new space even when the disk is full: a real write says.
            if let Err(reason @ StoreError::Unavailable { .. }) = room_to_write(&conn) {
                drop(conn);
                conn = open_read_only(&path)?;
                read_only = Some(reason.to_string());
            }
        }
        // Nothing here reads the whole file (a large store starts in seconds): the trace-id
        // filters and search terms are small, and damage shows as errors where it is read.
        let mut index = TraceIndex::default();
        {
            let mut rows = conn.prepare("SELECT frame_id, filter FROM frame_traces ORDER BY frame_id")?;
            let mut rows = rows.query([])?;
            while let Some(row) = rows.next()? {
                index.add(row.get(0)?, row.get_ref(1)?.as_blob().unwrap_or_default());
            }
        }
        let search = load_search_index(&conn, read_only.is_none())?;
        progress(&format!("{} spans stored", search.span_count()));
        let mut recent = RecentTraces::default();
        {
            let mut rows = conn.prepare("SELECT id, trace_id FROM traces ORDER BY id DESC LIMIT ?1")?;
            let rows: Vec<(i64, Vec<u8>)> = rows
                .query_map([RECENT_TRACES as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            if let Some((newest, _)) = rows.first() {
                recent.taken_through(*newest);
            }
            for (row, trace_id) in rows.into_iter().rev() {
                if let Ok(trace_id) = <[u8; 16]>::try_from(trace_id) {
                    recent.insert(&trace_id, row);
                }
            }
        }
        let index = Arc::new(RwLock::new(index));
        let search = Arc::new(RwLock::new(search));
        let recent = Arc::new(Mutex::new(recent));
        let counters = Arc::new(StoreCounters::default());
        let mut readers = Vec::new();
        for _ in 0..4 {
            readers.push(match open_reader(&path, read_only.is_some()) {
                Ok(reader) => reader,
                // Readers open for writing need the write-ahead files: read-only ones do not.
                Err(StoreError::Unavailable { .. }) if read_only.is_none() => open_read_only(&path)?,
                Err(e) => return Err(e),
            });
        }
        let (jobs, rx) = mpsc::sync_channel::<Job>(config.queue_requests.max(1));
        let (live, _) = tokio::sync::broadcast::channel(1024);
        if read_only.is_none() {
            // The write-ahead log counts against the size limit: it is checkpointed (and cut
            // back) every 1/64 of the limit, or 1000 pages (SQLite's default) if that is less.
            let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let wal_bytes = (config.max_disk_bytes / 64).clamp(64 << 10, 1000 * page_size as u64);
            conn.pragma_update(None, "wal_autocheckpoint", (wal_bytes / page_size as u64) as i64)?;
            conn.pragma_update(None, "journal_size_limit", wal_bytes as i64)?;
        }
        let mut writer = Writer::new(
            conn,
            counters.clone(),
            live.clone(),
            index.clone(),
            search.clone(),
            recent.clone(),
        )?;
        // On a full disk (or another storage failure that may pass) the store opens read-only:
        // queries are answered, new data is refused with "retry later", and the figures are
        // brought up to date at the next start.
        if read_only.is_none() {
            match writer.replay(progress) {
                Ok(()) => {}
                Err(reason @ StoreError::Unavailable { .. }) => read_only = Some(reason.to_string()),
                Err(other) => return Err(other),
            }
        }
        let read_only = read_only.map(|reason| {
            let why = format!(
                "{} cannot be written ({reason}): serving queries only, new data is refused until space is freed and skein restarts",
                path.display()
            );
            progress(&why);
            why
        });
        let (jobs, handle) = match read_only {
            None => {
                let handle = std::thread::Builder::new()
                    .name("skein-store".into())
                    .spawn(move || writer.run(rx))
                    .map_err(|e| StoreError::storage("cannot start the writer thread", e))?;
                (Some(jobs), Some(handle))
            }
            Some(_) => (None, None),
        };
        Ok(Arc::new(Store {
            jobs: Mutex::new(jobs),
            writer: Mutex::new(handle),
            read_only,
            readers: Mutex::new(readers),
            path,
            counters,
            config,
            live,
            index,
            search,
            recent,
            written_since_check: AtomicU64::new(0),
            retention_due: tokio::sync::Notify::new(),
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Queues a write and waits until it is committed. `Busy` at once when the queue is full.
    pub async fn write(&self, write: Write) -> Result<(), StoreError> {
        let bytes = match &write {
            Write::Traces(prepared) => prepared
                .frames
                .iter()
                .map(|f| (f.data.len() + f.filter.len()) as u64)
                .sum(),
            Write::Logs(request) => request.encoded_len() as u64,
            Write::Summaries => 0,
        };
        self.commit_write(write).await?;
        // A stream must not overshoot the size limit before the next retention pass: every
        // 1/32 of the limit written calls for a check (the file grows about 1.6 times what
        // the frames hold, indexes and summaries included).
        let written = self.written_since_check.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if written >= self.config.max_disk_bytes / CHECK_EVERY_PART {
            self.written_since_check.store(0, Ordering::Relaxed);
            self.retention_due.notify_one();
        }
        Ok(())
    }

    async fn commit_write(&self, write: Write) -> Result<(), StoreError> {
        if let Some(why) = &self.read_only {
            return Err(StoreError::read_only(why));
        }
        let (done, wait) = oneshot::channel();
        {
            let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            let Some(jobs) = jobs.as_ref() else {
                return Err(StoreError::Closed);
            };
            match jobs.try_send(Job { write, done }) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return Err(StoreError::Busy),
                Err(TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
            }
        }
        wait.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Waits until the summaries of everything acknowledged so far are written (searches
    /// order and filter traces by them; they otherwise follow within half a second).
    pub async fn write_summaries(&self) -> Result<(), StoreError> {
        self.commit_write(Write::Summaries).await
    }

    /// Finishes queued writes and stops the writer.
    pub fn close(&self) {
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }

    /// Runs `f` with a read connection (blocking; call from `spawn_blocking`).
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_reader(&self.path, self.read_only.is_some())?,
        };
        let result = f(&conn);
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        result
    }

    /// Why the store is read-only (it opened on a full disk), if it is.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// Deletes what retention says must go: traces older than the retention period, then the
    /// oldest frames while the live data is over the size limit (only as many as bring it
    /// under), and gives the freed space back to the file system.
    pub fn enforce_retention(&self) -> Result<(), StoreError> {
        if self.read_only.is_some() {
            return Ok(()); // nothing can be deleted from a database opened read-only
        }
        let cutoff = now_nanos().saturating_sub(self.config.retention.as_nanos() as u64);
        let mut conn = open_connection(&self.path)?;
        evict_before(&mut conn, cutoff, &self.counters, (&self.index, &self.search))?;
        // The file (database and write-ahead log) must stay under the limit between checks,
        // which come every 1/32 of the limit written (see `write`): once it passes 7/8 of
        // the limit, the oldest data goes until the live data is at 3/4 of it. Each round
        // evicts at least one frame; a few correct the estimate.
        let limit = self.config.max_disk_bytes;
        let target = limit / 4 * 3;
        let over = database_bytes(&conn)? > limit / 8 * 7;
        for _ in 0..16 {
            let live = live_bytes(&conn)?;
            if !over || live <= target {
                break;
            }
            let frames: i64 = conn.query_row("SELECT COUNT(*) FROM frames", [], |r| r.get(0))?;
            if frames == 0 {
                break;
            }
            // Every frame's share of the file: its spans, and the summaries, histograms,
            // links and logs of its time. Evicting `excess / share` of the oldest frames
            // brings the live data under the limit.
            let share = (live / frames as u64).max(1);
            let excess = live - target;
            let evict = excess.div_ceil(share).clamp(1, frames as u64);
            let cut: Option<i64> = conn
                .query_row(
                    "SELECT max_start FROM frames ORDER BY max_start LIMIT 1 OFFSET ?1",
                    [evict as i64 - 1],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(cut) = cut else { break };
            evict_before(&mut conn, cut as u64 + 1, &self.counters, (&self.index, &self.search))?;
        }
        reclaim_free_pages(&conn)
    }

    /// The oldest start time still stored (unix nanoseconds).
    pub fn oldest_kept(&self) -> Result<Option<u64>, StoreError> {
        self.read(|c| {
            let v: Option<i64> = c.query_row("SELECT MIN(min_start) FROM frames", [], |r| r.get(0))?;
            Ok(v.map(|v| v as u64))
        })
    }

    /// Moves the write-ahead log into the database file (so sizes are comparable).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
            Ok(())
        })
    }

    /// Memory held by the trace-id filters of all stored frames.
    pub fn trace_index_memory_bytes(&self) -> usize {
        self.index.read().unwrap_or_else(|e| e.into_inner()).memory_bytes()
    }

    /// Memory held by the search terms of all stored frames.
    pub fn search_index_memory_bytes(&self) -> usize {
        self.search.read().unwrap_or_else(|e| e.into_inner()).memory_bytes()
    }

    /// Database size on disk, including the write-ahead log.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        self.read(database_bytes)
    }

    /// One trace with its spans, the traces linking to it and its logs.
    pub fn trace(&self, trace_id: &[u8; 16]) -> Result<Option<TraceView>, StoreError> {
        self.read(|c| {
            let frames = self.frames_of_trace(c, trace_id)?;
            let mut spans = Vec::new();
            for frame in &frames {
                for_each_span(frame, |span, resource, scope| {
                    if span.trace_id == trace_id {
                        spans.push(SpanView::new(span, resource, scope));
                    }
                });
            }
            if spans.is_empty() {
                return Ok(None);
            }
            spans.sort_by_key(|s| (s.start_unix_nano, s.span_id.clone()));
            let linked_from = c
                .prepare_cached("SELECT target_span, COUNT(*) FROM span_links WHERE target = ?1 GROUP BY target_span")?
                .query_map([&trace_id[..]], |r| {
                    Ok(LinkedFromCount {
                        span_id: model::hex(&r.get::<_, Vec<u8>>(0)?),
                        count: r.get::<_, i64>(1)? as u64,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let logs = query_logs(
                c,
                &LogQuery {
                    trace_id: Some((*trace_id, *trace_id)),
                    limit: 1000,
                    ..Default::default()
                },
            )?
            .records;
            Ok(Some(TraceView {
                trace_id: model::hex(trace_id),
                spans,
                linked_from,
                logs,
            }))
        })
    }

    /// One trace as OTLP data (resource and scope kept), for the Jaeger v3 API.
    pub fn trace_otlp(&self, trace_id: &[u8; 16]) -> Result<Option<TracesData>, StoreError> {
        Ok(self.traces_otlp(&[*trace_id])?.pop().map(|(_, data)| data))
    }

    /// Several traces as OTLP data, in the given order (those no longer stored left out).
    /// Each frame is read once however many of the traces it holds (a search's newest traces
    /// mostly share frames).
    pub fn traces_otlp(&self, trace_ids: &[[u8; 16]]) -> Result<Vec<([u8; 16], TracesData)>, StoreError> {
        let mut frames: std::collections::BTreeMap<i64, Vec<usize>> = std::collections::BTreeMap::new();
        {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            for (i, id) in trace_ids.iter().enumerate() {
                for frame in index.frames_of(id) {
                    frames.entry(frame).or_default().push(i);
                }
            }
        }
        self.read(|c| {
            let mut out: Vec<TracesData> = vec![TracesData::default(); trace_ids.len()];
            for (frame_id, wanted) in frames {
                let Some(frame) = stored_frame(c, frame_id)? else {
                    continue;
                };
                for rs in frame.resource_spans {
                    for ss in rs.scope_spans {
                        let mut by_trace: HashMap<usize, Vec<Span>> = HashMap::new();
                        for span in ss.spans {
                            if let Some(&i) = wanted.iter().find(|&&i| span.trace_id == trace_ids[i]) {
                                by_trace.entry(i).or_default().push(span);
                            }
                        }
                        for (i, spans) in by_trace {
                            out[i].resource_spans.push(ResourceSpans {
                                resource: rs.resource.clone(),
                                scope_spans: vec![ScopeSpans {
                                    scope: ss.scope.clone(),
                                    spans,
                                    schema_url: ss.schema_url.clone(),
                                }],
                                schema_url: rs.schema_url.clone(),
                            });
                        }
                    }
                }
            }
            Ok(trace_ids
                .iter()
                .zip(out)
                .filter(|(_, data)| !data.resource_spans.is_empty())
                .map(|(id, data)| (*id, data))
                .collect())
        })
    }

    /// The decoded frames that may hold spans of a trace (a frame may turn out not to).
    fn frames_of_trace(&self, c: &Connection, trace_id: &[u8; 16]) -> Result<Vec<TracesData>, StoreError> {
        let ids = self.index.read().unwrap_or_else(|e| e.into_inner()).frames_of(trace_id);
        let mut frames = Vec::with_capacity(ids.len());
        for id in ids {
            frames.extend(stored_frame(c, id)?);
        }
        Ok(frames)
    }

    /// Summaries of the given traces, in the given order: the stored row of a recent trace,
    /// otherwise one computed from its spans.
    fn summaries(&self, c: &Connection, ids: &[[u8; 16]]) -> Result<Vec<TraceSummary>, StoreError> {
        let rows: Vec<Option<i64>> = {
            let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            ids.iter().map(|id| recent.get(id)).collect()
        };
        let mut out = Vec::new();
        for (id, row) in ids.iter().zip(rows) {
            let stored = match row {
                Some(row) => summary_by_row(c, row, id)?,
                None => None,
            };
            let summary = match stored {
                Some(summary) => Some(summary),
                None => self.summary_from_spans(c, id)?,
            };
            out.extend(summary);
        }
        Ok(out)
    }

    /// A trace's summary: in the row its frame names, else as [`Store::summaries`] finds it.
    fn summary_of(
        &self,
        c: &Connection,
        trace_id: &[u8; 16],
        row: Option<i64>,
    ) -> Result<Option<TraceSummary>, StoreError> {
        if let Some(summary) = row.map(|row| summary_by_row(c, row, trace_id)).transpose()?.flatten() {
            return Ok(Some(summary));
        }
        Ok(self.summaries(c, &[*trace_id])?.pop())
    }

    /// A trace's summary worked out from its stored spans.
    fn summary_from_spans(&self, c: &Connection, trace_id: &[u8; 16]) -> Result<Option<TraceSummary>, StoreError> {
        let mut prepared = Prepared::default();
        for frame in self.frames_of_trace(c, trace_id)? {
            for mut rs in frame.resource_spans {
                for ss in &mut rs.scope_spans {
                    ss.spans.retain(|s| s.trace_id == trace_id);
                }
                crate::ingest::summarize_resource(&rs, &mut prepared);
            }
        }
        Ok(prepared
            .traces
            .get(trace_id)
            .map(|delta| delta.add_to(empty_summary(trace_id, delta))))
    }

    /// Traces matching `query`, newest first (ties by trace id): exactly the newest `limit`
    /// (see [`crate::search`] for how frames are chosen and when the search stops).
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<TraceSummary>, StoreError> {
        self.read(|c| {
            // Frames read for exclusions, kept for the next trace.
            let mut frames = ExclusionFrames::default();
            let mut rejected: HashSet<[u8; 16]> = HashSet::new();
            if query.is_trace_level() {
                let mut reject = |s: &TraceSummary| -> Result<bool, StoreError> {
                    match model::parse_hex::<16>(&s.trace_id) {
                        Some(id) => self.carries_any(c, &id, &query.excluded, &mut frames),
                        None => Ok(false),
                    }
                };
                return search_summaries(c, query, &mut reject);
            }
            let candidates = self.search.read().unwrap_or_else(|e| e.into_inner()).candidates(query);
            let limit = query.limit.max(1);
            let mut found: HashMap<[u8; 16], TraceSummary> = HashMap::new();
            // The starts of the newest `limit` traces found, oldest on top.
            let mut newest: BinaryHeap<Reverse<u64>> = BinaryHeap::new();
            let mut read_search = c.prepare_cached("SELECT spans, trace_rows FROM frame_search WHERE frame_id = ?1")?;
            // In another order than newest first, every match counts: no frame is skipped.
            let newest_first = query.order == SearchOrder::Newest;
            let mut pending: Vec<FoundTrace> = Vec::new();
            for (latest_start, candidate) in candidates {
                // Every trace still unseen starts at or before this frame's latest span.
                if newest_first && newest.len() >= limit && newest.peek().is_some_and(|Reverse(s)| latest_start < *s) {
                    break;
                }
                let frame_id = match candidate {
                    Candidate::Indexed(id) | Candidate::Overflowing(id) | Candidate::Unindexed(id) => id,
                };
                let mut traces: Vec<FoundTrace> = Vec::new();
                let stored: Option<(Vec<u8>, Vec<u8>)> = match candidate {
                    Candidate::Unindexed(_) => None,
                    _ => read_search
                        .query_row([frame_id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?,
                };
                let index = stored.as_ref().and_then(|(spans, _)| FrameIndex::decode(spans));
                match index.as_ref().map(|i| (i, i.matching_traces(query))) {
                    Some((index, Some(matched))) => {
                        let rows = stored
                            .as_ref()
                            .map(|(_, rows)| TraceRows::decode(rows))
                            .unwrap_or_default();
                        for (_, position) in matched {
                            if let Some(id) = index.trace_id(position) {
                                traces.push((id, rows.get(position as usize).copied()));
                            }
                        }
                    }
                    Some((index, None)) if !self.overflow_may_match(c, frame_id, index, query)? => {}
                    // A wanted value that overflowed, or a frame without (readable) indexes.
                    _ => traces = self.scan_frame(c, frame_id, query)?,
                }
                if !query.excluded.is_empty() {
                    let mut kept = Vec::with_capacity(traces.len());
                    for (trace_id, row) in traces {
                        // A trace found before was checked then.
                        let excluded = rejected.contains(&trace_id)
                            || (!found.contains_key(&trace_id)
                                && self.carries_any(c, &trace_id, &query.excluded, &mut frames)?);
                        if excluded {
                            rejected.insert(trace_id);
                        } else {
                            kept.push((trace_id, row));
                        }
                    }
                    traces = kept;
                }
                if !newest_first {
                    pending.extend(traces);
                    continue;
                }
                for (trace_id, row) in traces {
                    if found.contains_key(&trace_id) {
                        continue;
                    }
                    if let Some(summary) = self.summary_of(c, &trace_id, row)? {
                        newest.push(Reverse(summary.start_unix_nano));
                        if newest.len() > limit {
                            newest.pop();
                        }
                        found.insert(trace_id, summary);
                    }
                }
            }
            if !newest_first {
                return self.top_summaries(c, pending, query.order, limit);
            }
            let mut out: Vec<TraceSummary> = found.into_values().collect();
            query.order.sort(&mut out);
            out.truncate(limit);
            Ok(out)
        })
    }

    /// The first `limit` of the traces' summaries in `order`: summaries are read in row order
    /// (the order they were written, so neighbouring rows share pages).
    fn top_summaries(
        &self,
        c: &Connection,
        mut traces: Vec<FoundTrace>,
        order: SearchOrder,
        limit: usize,
    ) -> Result<Vec<TraceSummary>, StoreError> {
        traces.sort_by_key(|(id, row)| (row.unwrap_or(i64::MAX), *id));
        traces.dedup_by_key(|(id, _)| *id);
        // Smallest kept on top: (the order's key, then the trace id reversed so ties keep the
        // smaller id).
        type Ranked = Reverse<((u64, u64), Reverse<String>)>;
        let mut top: BinaryHeap<Ranked> = BinaryHeap::new();
        let mut kept: HashMap<String, TraceSummary> = HashMap::new();
        let mut seen = HashSet::new();
        for (trace_id, row) in traces {
            if !seen.insert(trace_id) {
                continue;
            }
            let Some(summary) = self.summary_of(c, &trace_id, row)? else {
                continue;
            };
            let key = (order.key(&summary), Reverse(summary.trace_id.clone()));
            if top.len() < limit || top.peek().is_some_and(|Reverse(least)| key > *least) {
                top.push(Reverse(key));
                kept.insert(summary.trace_id.clone(), summary);
                if top.len() > limit {
                    if let Some(Reverse((_, Reverse(dropped)))) = top.pop() {
                        kept.remove(&dropped);
                    }
                }
            }
        }
        let mut out: Vec<TraceSummary> = kept.into_values().collect();
        order.sort(&mut out);
        Ok(out)
    }

    /// True if some span of the trace carries one of `pairs` (on the span, its resource, events
    /// or links): what an exclusion leaves out. Frames read are kept in `frames` for the
    /// next trace of the same search.
    fn carries_any(
        &self,
        c: &Connection,
        trace_id: &[u8; 16],
        pairs: &[(String, String)],
        frames: &mut ExclusionFrames,
    ) -> Result<bool, StoreError> {
        if pairs.is_empty() {
            return Ok(false);
        }
        let ExclusionFrames { indexes, carriers } = frames;
        let frames = indexes;
        let ids = self.index.read().unwrap_or_else(|e| e.into_inner()).frames_of(trace_id);
        for frame_id in ids {
            if let std::collections::hash_map::Entry::Vacant(slot) = frames.entry(frame_id) {
                let spans: Option<Vec<u8>> = c
                    .prepare_cached("SELECT spans FROM frame_search WHERE frame_id = ?1")?
                    .query_row([frame_id], |r| r.get(0))
                    .optional()?;
                slot.insert(spans.and_then(|s| FrameIndex::decode(&s)));
            }
            let answer = match frames.get(&frame_id).and_then(Option::as_ref) {
                Some(index) => match index.position_of(trace_id) {
                    None => Some(false),
                    Some(position) => pairs.iter().try_fold(false, |found, (k, v)| {
                        index.trace_carries(position, k, v).map(|carries| found || carries)
                    }),
                },
                None => None,
            };
            let carries = match answer {
                Some(carries) => carries,
                // Not listed (or no index): the frame's spans say, for all its traces at once.
                None => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = carriers.entry(frame_id) {
                        slot.insert(self.frame_carriers(c, frame_id, pairs)?);
                    }
                    carriers.get(&frame_id).is_some_and(|set| set.contains(trace_id))
                }
            };
            if carries {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The traces with a span carrying one of `pairs` in one frame, read span by span.
    fn frame_carriers(
        &self,
        c: &Connection,
        frame_id: i64,
        pairs: &[(String, String)],
    ) -> Result<HashSet<[u8; 16]>, StoreError> {
        let mut carriers = HashSet::new();
        let Some(frame) = stored_frame(c, frame_id)? else {
            return Ok(carriers);
        };
        for_each_span(&frame, |span, resource, _| {
            let carries = pairs.iter().any(|(k, v)| {
                crate::search::carries_attribute(span, resource, &|kv| {
                    &kv.key == k && crate::search::with_text(kv.value.as_ref(), |t| t == v)
                })
            });
            if carries {
                if let Ok(id) = <[u8; 16]>::try_from(&span.trace_id[..]) {
                    carriers.insert(id);
                }
            }
        });
        Ok(carriers)
    }

    /// False if the frame's Bloom filter of overflowing values rules out a wanted one.
    fn overflow_may_match(
        &self,
        c: &Connection,
        frame_id: i64,
        index: &FrameIndex,
        query: &SearchQuery,
    ) -> Result<bool, StoreError> {
        let filter: Option<Vec<u8>> = c
            .prepare_cached("SELECT filter FROM frames WHERE id = ?1")?
            .query_row([frame_id], |r| r.get(0))
            .optional()?;
        let Some(filter) = filter else {
            return Ok(false); // deleted by retention since
        };
        let bloom = Bloom::from_bytes(filter);
        Ok(query
            .attributes
            .iter()
            .filter(|(k, _)| index.overflow_keys.contains(k))
            .all(|(k, v)| bloom.may_contain(crate::search::term_attribute(k, v))))
    }

    /// The traces with a span matching `query` in one frame, read span by span.
    fn scan_frame(&self, c: &Connection, frame_id: i64, query: &SearchQuery) -> Result<Vec<FoundTrace>, StoreError> {
        let mut out = Vec::new();
        if let Some(frame) = stored_frame(c, frame_id)? {
            for_each_span(&frame, |span, resource, scope| {
                if query.matches_span(span, resource, scope) {
                    if let Ok(id) = <[u8; 16]>::try_from(&span.trace_id[..]) {
                        out.push((id, None));
                    }
                }
            });
        }
        Ok(out)
    }

    /// Every service, sorted.
    pub fn services(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let v = c
                .prepare_cached("SELECT DISTINCT service FROM operations ORDER BY service")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(v)
        })
    }

    /// Operations (name and kind) of one service, or of all.
    pub fn operations(&self, service: Option<&str>) -> Result<Vec<(String, String, i32)>, StoreError> {
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT service, name, kind FROM operations WHERE ?1 IS NULL OR service = ?1 ORDER BY service, name",
            )?;
            let v = statement
                .query_map([service], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            Ok(v)
        })
    }

    /// Per service and operation over `[from, to)`: calls, errors and latency percentiles.
    pub fn operation_stats(
        &self,
        from: u64,
        to: u64,
        service: Option<&str>,
    ) -> Result<Vec<OperationStats>, StoreError> {
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT service, name, minute, count, errors, histogram FROM op_minutes
                 WHERE minute >= ?1 AND minute < ?2 AND (?3 IS NULL OR service = ?3)",
            )?;
            let mut by_op: HashMap<(String, String), OperationStats> = HashMap::new();
            let rows = statement.query_map(params![minute_of(from), minute_of(to) + 1, service], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })?;
            let mut histograms: HashMap<(String, String), Histogram> = HashMap::new();
            for row in rows {
                let (service, name, minute, count, errors, histogram) = row?;
                let key = (service.clone(), name.clone());
                let stats = by_op.entry(key.clone()).or_insert_with(|| OperationStats {
                    service,
                    name,
                    calls: 0,
                    errors: 0,
                    p50_nano: 0,
                    p95_nano: 0,
                    p99_nano: 0,
                    per_minute: Vec::new(),
                });
                stats.calls += count as u64;
                stats.errors += errors as u64;
                let histogram = Histogram::from_bytes(&histogram);
                stats.per_minute.push(MinutePoint {
                    minute: minute as u64,
                    calls: count as u64,
                    errors: errors as u64,
                    p95_nano: histogram.quantile(0.95),
                });
                histograms.entry(key).or_default().merge(&histogram);
            }
            let mut out: Vec<OperationStats> = by_op
                .into_iter()
                .map(|(key, mut stats)| {
                    if let Some(h) = histograms.get(&key) {
                        stats.p50_nano = h.quantile(0.50);
                        stats.p95_nano = h.quantile(0.95);
                        stats.p99_nano = h.quantile(0.99);
                    }
                    stats.per_minute.sort_by_key(|p| p.minute);
                    stats
                })
                .collect();
            out.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
            Ok(out)
        })
    }

    /// Calls between services over `[from, to)`.
    pub fn dependencies(&self, from: u64, to: u64) -> Result<Vec<Dependency>, StoreError> {
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT parent, child, SUM(calls), SUM(errors) FROM edges
                 WHERE minute >= ?1 AND minute < ?2 GROUP BY parent, child ORDER BY parent, child",
            )?;
            let v = statement
                .query_map(params![minute_of(from), minute_of(to) + 1], |r| {
                    Ok(Dependency {
                        parent: r.get(0)?,
                        child: r.get(1)?,
                        calls: r.get::<_, i64>(2)? as u64,
                        errors: r.get::<_, i64>(3)? as u64,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(v)
        })
    }

    /// The spans linking to a span of a trace, newest first, `limit` at a time: the page
    /// after `before` (the `next` of the previous page).
    pub fn linked_from(
        &self,
        trace_id: &[u8; 16],
        span_id: &[u8; 8],
        limit: usize,
        before: Option<&LinkCursor>,
    ) -> Result<LinkedFromPage, StoreError> {
        self.read(|c| {
            let (start, source, source_span) = match before {
                Some(b) => (sql_time(b.start), b.source.to_vec(), b.source_span.to_vec()),
                None => (i64::MAX, vec![0xff; 16], vec![0xff; 8]),
            };
            let mut statement = c.prepare_cached(
                "SELECT start, source, source_span, service, name FROM span_links
                 WHERE target = ?1 AND target_span = ?2 AND (start, source, source_span) < (?3, ?4, ?5)
                 ORDER BY start DESC, source DESC, source_span DESC LIMIT ?6",
            )?;
            let rows = statement.query_map(
                params![
                    &trace_id[..],
                    &span_id[..],
                    start,
                    source,
                    source_span,
                    limit as i64 + 1
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )?;
            let mut links = Vec::new();
            let mut cursors = Vec::new();
            for row in rows {
                let (start, source, source_span, service, name) = row?;
                cursors.push(LinkCursor {
                    start,
                    source: source.as_slice().try_into().unwrap_or_default(),
                    source_span: source_span.as_slice().try_into().unwrap_or_default(),
                });
                links.push(LinkingSpan {
                    trace_id: model::hex(&source),
                    span_id: model::hex(&source_span),
                    service,
                    name,
                    start_unix_nano: start,
                });
            }
            // One more than asked says whether there is a next page.
            let next = (links.len() > limit).then(|| {
                links.truncate(limit);
                cursors[limit - 1].to_string()
            });
            Ok(LinkedFromPage { links, next })
        })
    }

    /// The attributes of the spans in `[from, to]` (of `service`, if given), counted over the
    /// newest [`ATTRIBUTE_SAMPLE_FRAMES`] frames there; `complete` when that was all of them.
    pub fn attribute_counts(
        &self,
        from: u64,
        to: u64,
        service: Option<&str>,
    ) -> Result<(crate::search::AttributeCounts, bool), StoreError> {
        let frames = self
            .search
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .frames_between(from, to);
        let complete = frames.len() <= ATTRIBUTE_SAMPLE_FRAMES;
        self.read(|c| {
            let mut seen = crate::search::AttributeCounts::default();
            let mut statement = c.prepare_cached("SELECT spans FROM frame_search WHERE frame_id = ?1")?;
            for frame in frames.into_iter().take(ATTRIBUTE_SAMPLE_FRAMES) {
                let Some(spans) = statement.query_row([frame], |r| r.get::<_, Vec<u8>>(0)).optional()? else {
                    continue; // deleted by retention since
                };
                if let Some(index) = FrameIndex::decode(&spans) {
                    index.count_attributes(from, to, service, &mut seen);
                }
            }
            Ok((seen, complete))
        })
    }

    /// The attributes of the log records in `[from, to]` (of `service`, if given), theirs and
    /// their resources', counted over the newest [`ATTRIBUTE_SAMPLE_LOGS`] records there;
    /// `complete` when that was all of them.
    pub fn log_attribute_counts(
        &self,
        from: u64,
        to: u64,
        service: Option<&str>,
    ) -> Result<(crate::search::AttributeCounts, bool), StoreError> {
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT record FROM logs WHERE time >= ?1 AND time <= ?2 AND (?3 IS NULL OR service = ?3)
                 ORDER BY time DESC LIMIT ?4",
            )?;
            let mut rows = statement.query(params![
                sql_time(from),
                sql_time(to),
                service,
                ATTRIBUTE_SAMPLE_LOGS as i64 + 1
            ])?;
            let mut seen = crate::search::AttributeCounts::default();
            let mut read = 0;
            while let Some(row) = rows.next()? {
                if read == ATTRIBUTE_SAMPLE_LOGS {
                    return Ok((seen, false));
                }
                read += 1;
                let record: Vec<u8> = row.get(0)?;
                let Ok(data) = opentelemetry_proto::tonic::logs::v1::LogsData::decode(&record[..]) else {
                    continue; // a damaged record is left out of the counts
                };
                for rl in &data.resource_logs {
                    let resource = rl.resource.iter().flat_map(|r| &r.attributes);
                    for sl in &rl.scope_logs {
                        for log in &sl.log_records {
                            seen.spans += 1;
                            for kv in log.attributes.iter().chain(resource.clone()) {
                                *seen.keys.entry(kv.key.clone()).or_default() += 1;
                                let value = crate::search::with_text(kv.value.as_ref(), str::to_owned);
                                let listed = seen.values.len() < 100_000;
                                let slot = (kv.key.clone(), listed.then_some(value));
                                *seen.values.entry(slot).or_default() += 1;
                            }
                        }
                    }
                }
            }
            Ok((seen, true))
        })
    }

    /// A page of log records, newest first.
    pub fn logs(&self, query: &LogQuery) -> Result<LogPage, StoreError> {
        self.read(|c| query_logs(c, query))
    }
}

/// The bytes the data itself takes: the database's pages less its free ones. The
/// write-ahead log is left out: evicting writes to it, so counting it would evict more
/// the more is evicted (it is emptied after each retention pass).
fn live_bytes(c: &Connection) -> Result<u64, StoreError> {
    let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = c.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok((pages.saturating_sub(free) * size) as u64)
}

/// Gives the database's free pages back to the file system and empties the write-ahead log.
/// `incremental_vacuum` frees one page per step of its statement, so it is stepped to the end.
fn reclaim_free_pages(c: &Connection) -> Result<(), StoreError> {
    let mut vacuum = c.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = vacuum.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(())
}

fn database_bytes(c: &Connection) -> Result<u64, StoreError> {
    let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let path: String = c.query_row("PRAGMA database_list", [], |r| r.get(2))?;
    let wal = std::fs::metadata(format!("{path}-wal")).map_or(0, |m| m.len());
    Ok((pages * size) as u64 + wal)
}

/// Deletes frames whose newest span started before `cutoff`, and what only they referenced.
/// Trace summaries go with the traces that started before `cutoff`.
fn evict_before(
    conn: &mut Connection,
    cutoff: u64,
    counters: &StoreCounters,
    (index, search): (&RwLock<TraceIndex>, &RwLock<SearchIndex>),
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (frames, spans): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(span_count), 0) FROM frames WHERE max_start < ?1",
        [cutoff as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if frames == 0 {
        return Ok(());
    }
    let deleted: HashSet<i64> = tx
        .prepare("SELECT id FROM frames WHERE max_start < ?1")?
        .query_map([cutoff as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for table in ["frame_traces", "frame_search", "links", "span_links"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE frame_id IN (SELECT id FROM frames WHERE max_start < ?1)"),
            [cutoff as i64],
        )?;
    }
    tx.execute("DELETE FROM frames WHERE max_start < ?1", [cutoff as i64])?;
    let traces = tx.execute("DELETE FROM traces WHERE start < ?1", [cutoff as i64])?;
    let minute = minute_of(cutoff);
    tx.execute("DELETE FROM op_minutes WHERE minute < ?1", [minute])?;
    tx.execute("DELETE FROM edges WHERE minute < ?1", [minute])?;
    tx.execute("DELETE FROM logs WHERE time < ?1", [cutoff as i64])?;
    tx.commit()?;
    index.write().unwrap_or_else(|e| e.into_inner()).remove(&deleted);
    search.write().unwrap_or_else(|e| e.into_inner()).remove(&deleted);
    counters.frames_evicted.fetch_add(frames as u64, Ordering::Relaxed);
    counters.spans_evicted.fetch_add(spans as u64, Ordering::Relaxed);
    counters.traces_evicted.fetch_add(traces as u64, Ordering::Relaxed);
    Ok(())
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TraceSummary> {
    let id: Vec<u8> = r.get(0)?;
    let start = r.get::<_, i64>(1)? as u64;
    let end = r.get::<_, i64>(2)? as u64;
    let services: String = r.get(7)?;
    Ok(TraceSummary {
        trace_id: model::hex(&id),
        start_unix_nano: start,
        end_unix_nano: end,
        duration_nano: end.saturating_sub(start),
        span_count: r.get::<_, i64>(3)? as u64,
        error_count: r.get::<_, i64>(4)? as u64,
        root_service: r.get(5)?,
        root_name: r.get(6)?,
        services: services
            .split('\n')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Searches by trace-level properties only (time, duration, errors), straight from the summaries.
/// `reject` leaves out traces (an exclusion's).
fn search_summaries(
    c: &Connection,
    query: &SearchQuery,
    reject: &mut dyn FnMut(&TraceSummary) -> Result<bool, StoreError>,
) -> Result<Vec<TraceSummary>, StoreError> {
    if query.order != SearchOrder::Newest {
        return sorted_summaries(c, query, reject);
    }
    // Traces with errors have an index of their own, so "errors only" never reads the others.
    let errors = if query.errors_only { "AND error_count > 0" } else { "" };
    let mut statement = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM traces WHERE start >= ?1 AND start <= ?2 {errors} ORDER BY start DESC"
    ))?;
    let mut out: Vec<TraceSummary> = Vec::new();
    let mut positions = HashMap::new();
    let rows = statement.query_map(
        params![sql_time(query.start_min), sql_time(query.start_max)],
        summary_row,
    )?;
    for row in rows {
        let summary = row?;
        // A trace whose spans kept arriving long after it started can have a second row.
        if let Some(&i) = positions.get(&summary.trace_id) {
            merge_summaries(&mut out[i], summary);
            continue;
        }
        if query.matches_trace(&summary) && !reject(&summary)? {
            positions.insert(summary.trace_id.clone(), out.len());
            out.push(summary);
            if out.len() >= query.limit {
                break;
            }
        }
    }
    Ok(out)
}

/// [`search_summaries`] in another order than newest first: SQLite keeps the top `limit`
/// while it reads the time range (every summary in it, once).
fn sorted_summaries(
    c: &Connection,
    query: &SearchQuery,
    reject: &mut dyn FnMut(&TraceSummary) -> Result<bool, StoreError>,
) -> Result<Vec<TraceSummary>, StoreError> {
    let errors = if query.errors_only { "AND error_count > 0" } else { "" };
    let by = match query.order {
        SearchOrder::MostSpans => "span_count",
        _ => "end - start",
    };
    let mut statement = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM traces WHERE start >= ?1 AND start <= ?2 {errors}
         AND end - start >= ?3 AND end - start <= ?4 ORDER BY {by} DESC, start DESC, trace_id LIMIT ?5"
    ))?;
    let rows = statement.query_map(
        params![
            sql_time(query.start_min),
            sql_time(query.start_max),
            query.min_duration_nano.unwrap_or(0).min(i64::MAX as u64) as i64,
            query.max_duration_nano.unwrap_or(i64::MAX as u64).min(i64::MAX as u64) as i64,
            // With exclusions, rows are left out after SQLite's sort: it gives them all.
            if query.excluded.is_empty() {
                query.limit as i64
            } else {
                -1
            }
        ],
        summary_row,
    )?;
    let mut out: Vec<TraceSummary> = Vec::new();
    for row in rows {
        let summary = row?;
        if !reject(&summary)? {
            out.push(summary);
            if out.len() >= query.limit {
                break;
            }
        }
    }
    query.order.sort(&mut out);
    Ok(out)
}

fn merge_summaries(into: &mut TraceSummary, other: TraceSummary) {
    if into.root_name.is_none() {
        into.root_service = other.root_service;
        into.root_name = other.root_name;
    }
    add_spans(
        into,
        (other.start_unix_nano, other.end_unix_nano),
        (other.span_count, other.error_count),
        &other.services,
    );
}

/// Widens a summary by more spans of its trace: their time span, counts and services.
fn add_spans(summary: &mut TraceSummary, (start, end): (u64, u64), (spans, errors): (u64, u64), services: &[String]) {
    summary.start_unix_nano = summary.start_unix_nano.min(start);
    summary.end_unix_nano = summary.end_unix_nano.max(end);
    summary.duration_nano = summary.end_unix_nano.saturating_sub(summary.start_unix_nano);
    summary.span_count += spans;
    summary.error_count += errors;
    for s in services {
        if !summary.services.contains(s) {
            summary.services.push(s.clone());
        }
    }
    summary.services.sort();
}

const SUMMARY_COLUMNS: &str = "trace_id, start, end, span_count, error_count, root_service, root_name, services";

/// The summary in row `row` if it is the given trace's.
fn summary_by_row(c: &Connection, row: i64, trace_id: &[u8; 16]) -> Result<Option<TraceSummary>, StoreError> {
    let found = c
        .prepare_cached(&format!("SELECT {SUMMARY_COLUMNS} FROM traces WHERE id = ?1"))?
        .query_row([row], summary_row)
        .optional()?;
    Ok(found.filter(|s| s.trace_id == model::hex(trace_id)))
}

fn empty_summary(trace_id: &[u8; 16], delta: &TraceDelta) -> TraceSummary {
    TraceSummary {
        trace_id: model::hex(trace_id),
        start_unix_nano: delta.start,
        end_unix_nano: delta.end,
        duration_nano: 0,
        root_service: None,
        root_name: None,
        span_count: 0,
        error_count: 0,
        services: Vec::new(),
    }
}

/// Where a page of [`Store::linked_from`] ends: the last linking span's start and ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkCursor {
    pub start: u64,
    pub source: [u8; 16],
    pub source_span: [u8; 8],
}

impl std::fmt::Display for LinkCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.start,
            model::hex(&self.source),
            model::hex(&self.source_span)
        )
    }
}

impl std::str::FromStr for LinkCursor {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let mut parts = text.split('-');
        let (Some(start), Some(source), Some(span), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(());
        };
        Ok(LinkCursor {
            start: start.parse().map_err(|_| ())?,
            source: model::parse_hex(source).ok_or(())?,
            source_span: model::parse_hex(span).ok_or(())?,
        })
    }
}

/// A page of the spans linking to one span.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LinkedFromPage {
    pub links: Vec<LinkingSpan>,
    /// The `before` of the next page, if there is one.
    pub next: Option<String>,
}

/// Per-operation figures over a time range.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OperationStats {
    pub service: String,
    pub name: String,
    pub calls: u64,
    pub errors: u64,
    pub p50_nano: u64,
    pub p95_nano: u64,
    pub p99_nano: u64,
    pub per_minute: Vec<MinutePoint>,
}

/// Calls and errors in one minute.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MinutePoint {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub calls: u64,
    pub errors: u64,
    /// The 95th percentile latency of that minute's calls.
    pub p95_nano: u64,
}

/// Calls from one service to another.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub calls: u64,
    pub errors: u64,
}

/// A log search.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    /// Trace ids from the first to the second (both included): one trace, or every id with
    /// a prefix the dashboard shows.
    pub trace_id: Option<([u8; 16], [u8; 16])>,
    pub service: Option<String>,
    pub min_severity: Option<i32>,
    /// Words in the body or in an attribute's value (case-insensitive).
    pub text: Option<String>,
    /// `key=value` pairs and bare keys, all required, on the record's attributes.
    pub attributes: Vec<(String, String)>,
    pub attribute_keys: Vec<String>,
    pub comparisons: Vec<crate::search::Comparison>,
    pub start_min: Option<u64>,
    pub start_max: Option<u64>,
    pub limit: usize,
    /// Only records older than this one (a page's `next`).
    pub before: Option<LogCursor>,
}

/// Where a page of log records ended: the time and row of its last record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogCursor {
    pub time: i64,
    pub row: i64,
}

impl std::fmt::Display for LogCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.time, self.row)
    }
}

impl std::str::FromStr for LogCursor {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        let (time, row) = text.split_once('-').ok_or(())?;
        Ok(LogCursor {
            time: time.parse().map_err(|_| ())?,
            row: row.parse().map_err(|_| ())?,
        })
    }
}

/// One page of log records, newest first, and where the next one starts (if there is more).
#[derive(Debug, Default)]
pub struct LogPage {
    pub records: Vec<LogView>,
    pub next: Option<LogCursor>,
}

/// The stored bytes one page of log records may hold at most, whatever its `limit`: the API
/// answer (and the memory it takes) stays bounded even for records near the size limits.
const LOG_PAGE_BYTES: usize = 8 << 20;

/// Records a log search reads at most when it filters by attributes or by text in them (which
/// only the decoded records can say): past that, the page ends with a `next` to go on from.
const LOG_SCAN_ROWS: usize = 50_000;

fn query_logs(c: &Connection, q: &LogQuery) -> Result<LogPage, StoreError> {
    // Filters SQL can apply; the others are checked on each decoded record.
    let checks_records =
        !q.attributes.is_empty() || !q.attribute_keys.is_empty() || !q.comparisons.is_empty() || q.text.is_some();
    let mut statement = c.prepare_cached(
        "SELECT record, body, time, id FROM logs
         WHERE (?1 IS NULL OR (trace_id >= ?1 AND trace_id <= ?10)) AND (?2 IS NULL OR service = ?2)
           AND (?3 IS NULL OR severity >= ?3)
           AND (?4 IS NULL OR instr(lower(body), lower(?4)) > 0) AND (?5 IS NULL OR time >= ?5)
           AND (?6 IS NULL OR time <= ?6)
           AND (?8 IS NULL OR time < ?8 OR (time = ?8 AND id < ?9))
         ORDER BY time DESC, id DESC LIMIT ?7",
    )?;
    let limit = q.limit.max(1);
    let (lowest, highest) = match &q.trace_id {
        Some((lo, hi)) => (Some(lo.to_vec()), Some(hi.to_vec())),
        None => (None, None),
    };
    let mut rows = statement.query(params![
        lowest,
        q.service,
        q.min_severity,
        // Text in attributes too: then the body is not filtered by SQL.
        if checks_records { None } else { q.text.clone() },
        q.start_min.map(sql_time),
        q.start_max.map(sql_time),
        // One more than asked: whether there is a next page (all rows when records decide).
        if checks_records {
            (LOG_SCAN_ROWS + 1) as i64
        } else {
            limit as i64 + 1
        },
        q.before.map(|b| b.time),
        q.before.map(|b| b.row),
        highest,
    ])?;
    let mut page = LogPage::default();
    let mut bytes_taken = 0usize;
    let mut last = None;
    let mut scanned = 0usize;
    let text = q.text.as_ref().map(|t| t.to_lowercase());
    while let Some(row) = rows.next()? {
        let record: Vec<u8> = row.get(0)?;
        let body: String = row.get(1)?;
        let (record, body) = (&record[..], &body[..]);
        if page.records.len() == limit
            || scanned == LOG_SCAN_ROWS
            || (bytes_taken > 0 && bytes_taken + record.len() + body.len() > LOG_PAGE_BYTES)
        {
            page.next = last;
            break;
        }
        scanned += 1;
        let mut data = opentelemetry_proto::tonic::logs::v1::LogsData::decode(record)
            .map_err(|e| StoreError::storage("a stored log record does not decode", e))?;
        let mut taken = false;
        for rl in &mut data.resource_logs {
            for sl in &mut rl.scope_logs {
                for record in &mut sl.log_records {
                    crate::logs::restore_body(record, body);
                    if checks_records && !log_matches(q, text.as_deref(), record) {
                        continue;
                    }
                    taken = true;
                    page.records
                        .push(crate::logs::log_view(record, rl.resource.as_ref(), sl.scope.as_ref()));
                }
            }
        }
        if taken {
            bytes_taken += record.len() + body.len();
        }
        last = Some(LogCursor {
            time: row.get(2)?,
            row: row.get(3)?,
        });
    }
    Ok(page)
}

/// The record-level conditions of a log search: attributes, and text in the body or in an
/// attribute's value.
fn log_matches(q: &LogQuery, text: Option<&str>, record: &opentelemetry_proto::tonic::logs::v1::LogRecord) -> bool {
    use crate::search::with_text;
    let attributes = &record.attributes;
    let value_is = |k: &str, f: &dyn Fn(&str) -> bool| {
        attributes
            .iter()
            .any(|kv| kv.key == k && with_text(kv.value.as_ref(), |t| f(t)))
    };
    let found_text = text.is_none_or(|t| {
        with_text(record.body.as_ref(), |b| b.to_lowercase().contains(t))
            || attributes
                .iter()
                .any(|kv| with_text(kv.value.as_ref(), |v| v.to_lowercase().contains(t)))
    });
    found_text
        && q.attributes.iter().all(|(k, v)| value_is(k, &|t| t == v))
        && q.attribute_keys
            .iter()
            .all(|k| attributes.iter().any(|kv| &kv.key == k))
        && q.comparisons.iter().all(|c| value_is(&c.key, &|t| c.holds(t)))
}

/// A stored frame, decoded; `None` if retention deleted it since.
fn stored_frame(c: &Connection, frame_id: i64) -> Result<Option<TracesData>, StoreError> {
    let data: Option<Vec<u8>> = c
        .prepare_cached("SELECT data FROM frames WHERE id = ?1")?
        .query_row([frame_id], |r| r.get(0))
        .optional()?;
    data.map(|d| decode_frame(&d)).transpose()
}

/// Decompresses and decodes a frame.
fn decode_frame(data: &[u8]) -> Result<TracesData, StoreError> {
    let raw = crate::compress::decompress(data, crate::ingest::MAX_FRAME_BYTES)
        .map_err(|e| StoreError::storage("a stored frame does not decompress", e))?;
    TracesData::decode(&raw[..]).map_err(|e| StoreError::storage("a stored frame does not decode", e))
}

/// Calls `f` with each span of a frame and its resource and scope.
pub(crate) fn for_each_span(
    data: &TracesData,
    mut f: impl FnMut(
        &Span,
        Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
        Option<&opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
    ),
) {
    for rs in &data.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                f(span, rs.resource.as_ref(), ss.scope.as_ref());
            }
        }
    }
}

/// What the writer remembers between commits.
struct Writer {
    conn: Connection,
    counters: Arc<StoreCounters>,
    live: tokio::sync::broadcast::Sender<TraceSummary>,
    memory: WriterMemory,
    derived: Derived,
    /// Shared with the readers.
    index: Arc<RwLock<TraceIndex>>,
    search: Arc<RwLock<SearchIndex>>,
    recent: Arc<Mutex<RecentTraces>>,
}

/// Figures derived from stored frames (trace summaries, per-minute operation figures, calls
/// between services) that are not yet written. They are written together with the frame id
/// they cover, right away when the writer is idle and at least every [`DERIVED_EVERY`] under
/// load; after a crash, the frames past that id are read again to rebuild them.
#[derive(Default)]
struct Derived {
    traces: HashMap<[u8; 16], TraceDelta>,
    minutes: HashMap<(i64, String, String), crate::ingest::MinuteDelta>,
    edges: HashMap<(i64, u32, u32), (u64, u64)>,
    through_frame: i64,
}

/// The longest derived figures wait while the writer is busy.
const DERIVED_EVERY: Duration = Duration::from_millis(500);
/// A pause in writes this long counts as idle.
const QUIET: Duration = Duration::from_millis(5);

impl Derived {
    fn clear(&mut self) {
        self.traces.clear();
        self.minutes.clear();
        self.edges.clear();
    }

    fn is_empty(&self) -> bool {
        self.traces.is_empty() && self.minutes.is_empty() && self.edges.is_empty()
    }
}

/// The writer's in-memory view of recent data.
struct WriterMemory {
    operations: HashSet<(String, String, i32)>,
    /// Service names by number, so the maps below hold small numbers, not strings.
    services: Vec<String>,
    /// Recent spans' services, to find the caller of a span whose parent came earlier.
    recent_services: HashMap<[u8; 8], u32>,
    recent_order: VecDeque<[u8; 8]>,
    /// Children waiting for a parent that has not arrived yet: parent span id → (child
    /// service, start, error).
    orphans: HashMap<[u8; 8], Vec<(u32, u64, bool)>>,
    orphan_order: VecDeque<[u8; 8]>,
}

const RECENT_SPANS: usize = 200_000;

impl Writer {
    fn new(
        conn: Connection,
        counters: Arc<StoreCounters>,
        live: tokio::sync::broadcast::Sender<TraceSummary>,
        index: Arc<RwLock<TraceIndex>>,
        search: Arc<RwLock<SearchIndex>>,
        recent: Arc<Mutex<RecentTraces>>,
    ) -> Result<Self, StoreError> {
        let operations = conn
            .prepare("SELECT service, name, kind FROM operations")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(Writer {
            conn,
            counters,
            live,
            memory: WriterMemory {
                operations,
                services: Vec::new(),
                recent_services: HashMap::new(),
                recent_order: VecDeque::new(),
                orphans: HashMap::new(),
                orphan_order: VecDeque::new(),
            },
            derived: Derived::default(),
            index,
            search,
            recent,
        })
    }

    /// Rebuilds the derived figures of frames stored after the last derived write (a crash
    /// between the two loses nothing).
    fn replay(&mut self, progress: &dyn Fn(&str)) -> Result<(), StoreError> {
        let through: i64 = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'derived_through_frame'", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        type Stored = (i64, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);
        let frames: Vec<Stored> = self
            .conn
            .prepare(
                "SELECT id, data, spans, trace_rows FROM frames LEFT JOIN frame_search ON frame_id = id
                 WHERE id > ?1 ORDER BY id",
            )?
            .query_map([through], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        if frames.is_empty() {
            return Ok(());
        }
        progress(&format!(
            "indexing {} frames written just before the last stop",
            frames.len()
        ));
        for (id, data, spans, rows) in frames {
            // The summary rows the frame's traces were given when it was stored.
            if let (Some(spans), Some(rows)) = (spans, rows) {
                if let Some(index) = FrameIndex::decode(&spans) {
                    let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
                    for (position, row) in TraceRows::decode(&rows).into_iter().enumerate() {
                        if let Some(trace_id) = index.trace_id(position as u32) {
                            recent.insert(&trace_id, row);
                        }
                    }
                }
            }
            let mut prepared = Prepared::default();
            for rs in &decode_frame(&data)?.resource_spans {
                crate::ingest::summarize_resource(rs, &mut prepared);
            }
            self.derived.add(&prepared, &mut self.memory);
            self.derived.through_frame = id;
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        write_derived(&tx, &self.derived, &self.memory, &self.recent)?;
        tx.commit()?;
        self.derived.clear();
        Ok(())
    }
}

impl Derived {
    /// Adds a request's figures to the pending ones.
    fn add(&mut self, prepared: &Prepared, memory: &mut WriterMemory) {
        for (id, delta) in &prepared.traces {
            self.traces.entry(*id).or_default().merge(delta);
        }
        for (key, delta) in &prepared.minutes {
            let into = self.minutes.entry(key.clone()).or_default();
            into.count += delta.count;
            into.errors += delta.errors;
            into.histogram.merge(&delta.histogram);
        }
        let services: Vec<u32> = prepared.services.iter().map(|s| memory.service_number(s)).collect();
        for span in &prepared.edge_spans {
            memory.track_edge(span, services[span.service], &mut self.edges);
        }
    }
}

impl Writer {
    fn run(mut self, jobs: Receiver<Job>) {
        let mut last_derived = std::time::Instant::now();
        loop {
            // With figures pending, a short quiet moment is enough to write them.
            let wait = if self.derived.is_empty() { DERIVED_EVERY } else { QUIET };
            let first = match jobs.recv_timeout(wait) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.write_derived_now();
                    last_derived = std::time::Instant::now();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut group = vec![first];
            while group.len() < GROUP_MAX_REQUESTS {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            // Under steady load the figures go along with a commit every DERIVED_EVERY (or
            // when asked for).
            let with_derived =
                last_derived.elapsed() >= DERIVED_EVERY || group.iter().any(|j| matches!(j.write, Write::Summaries));
            let writes: Vec<&Write> = group.iter().map(|j| &j.write).collect();
            let result = self.commit(&writes, with_derived);
            if with_derived && result.is_ok() {
                last_derived = std::time::Instant::now();
            }
            for job in group {
                let _ = job.done.send(match &result {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.clone()),
                });
            }
            if let Ok(changed) = result {
                self.publish(changed);
            }
        }
        self.write_derived_now();
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    }

    fn publish(&self, changed: Vec<TraceSummary>) {
        if self.live.receiver_count() > 0 {
            for summary in changed {
                let _ = self.live.send(summary);
            }
        }
    }

    fn write_derived_now(&mut self) {
        if self.derived.is_empty() {
            return;
        }
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = write_derived(&tx, &self.derived, &self.memory, &self.recent)?;
            tx.commit()?;
            Ok::<_, StoreError>(changed)
        })();
        match result {
            Ok(changed) => {
                self.derived.clear();
                self.publish(changed);
            }
            // Kept, and tried again at the next quiet moment.
            Err(e) => {
                crate::incident::warn_now_and_then(
                    "summaries",
                    &format!("writing trace summaries failed, will retry: {e}"),
                );
            }
        }
    }

    /// Writes a group in one transaction, with the pending derived figures if asked; returns
    /// the summaries of traces that changed.
    fn commit(&mut self, writes: &[&Write], with_derived: bool) -> Result<Vec<TraceSummary>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut spans_total = 0u64;
        let mut logs_total = 0u64;
        let mut new_frames = Vec::new();
        for write in writes {
            match write {
                Write::Traces(prepared) => {
                    spans_total += prepared.spans;
                    if let Some(last) = insert_prepared(&tx, prepared, &mut self.memory, &self.recent, &mut new_frames)?
                    {
                        self.derived.through_frame = last;
                    }
                }
                Write::Logs(request) => {
                    logs_total += crate::logs::insert(&tx, request)?;
                }
                Write::Summaries => {}
            }
        }
        // The group's figures join the pending ones only once its frames are committed.
        let mut with_group = std::mem::take(&mut self.derived);
        for write in writes {
            if let Write::Traces(prepared) = write {
                with_group.add(prepared, &mut self.memory);
            }
        }
        let result = (|| {
            let changed = if with_derived {
                write_derived(&tx, &with_group, &self.memory, &self.recent)?
            } else {
                Vec::new()
            };
            tx.commit()?;
            // Findable by id once committed.
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            for (frame_id, frame) in &new_frames {
                index.add(*frame_id, &frame.trace_filter);
            }
            drop(index);
            let mut search = self.search.write().unwrap_or_else(|e| e.into_inner());
            for (frame_id, frame) in &new_frames {
                search.add(
                    *frame_id,
                    Some(&frame.search_terms),
                    (frame.min_start, frame.max_start, frame.span_count as u32),
                );
            }
            Ok::<_, StoreError>(changed)
        })();
        let changed = match result {
            Ok(changed) => {
                self.derived = if with_derived {
                    Derived {
                        through_frame: with_group.through_frame,
                        ..Default::default()
                    }
                } else {
                    with_group
                };
                changed
            }
            Err(e) => {
                crate::incident::warn_now_and_then("write", &format!("storing data failed, refused for a retry: {e}"));
                // Nothing of the group was stored: count again from what is on disk.
                self.derived = Derived::default();
                if let Err(again) = self.replay(&|_| {}) {
                    crate::incident::warn_now_and_then(
                        "replay",
                        &format!("trace summaries will be rebuilt at the next start: {again}"),
                    );
                }
                return Err(e);
            }
        };
        self.counters.spans_stored.fetch_add(spans_total, Ordering::Relaxed);
        self.counters.logs_stored.fetch_add(logs_total, Ordering::Relaxed);
        Ok(changed)
    }
}

/// Writes the pending derived figures and the frame id they cover (the caller clears them
/// once the transaction is committed).
fn write_derived(
    tx: &rusqlite::Transaction<'_>,
    derived: &Derived,
    memory: &WriterMemory,
    recent: &Mutex<RecentTraces>,
) -> Result<Vec<TraceSummary>, StoreError> {
    for ((minute, service, name), delta) in &derived.minutes {
        let existing: Option<(i64, i64, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT count, errors, histogram FROM op_minutes WHERE minute = ?1 AND service = ?2 AND name = ?3",
            )?
            .query_row(params![minute, service, name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let mut histogram = delta.histogram.clone();
        let (mut count, mut errors) = (delta.count, delta.errors);
        if let Some((c, e, h)) = existing {
            histogram.merge(&Histogram::from_bytes(&h));
            count += c as u64;
            errors += e as u64;
        }
        tx.prepare_cached(
            "INSERT OR REPLACE INTO op_minutes(minute, service, name, count, errors, histogram) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![minute, service, name, count as i64, errors as i64, histogram.to_bytes()])?;
    }
    for (&(minute, parent, child), &(calls, errors)) in &derived.edges {
        tx.prepare_cached(
            "INSERT INTO edges(minute, parent, child, calls, errors) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(minute, parent, child) DO UPDATE SET calls = calls + excluded.calls, errors = errors + excluded.errors",
        )?
        .execute(params![
            minute,
            memory.services[parent as usize],
            memory.services[child as usize],
            calls as i64,
            errors as i64
        ])?;
    }
    let mut changed = Vec::with_capacity(derived.traces.len());
    let mut recent = recent.lock().unwrap_or_else(|e| e.into_inner());
    for (trace_id, delta) in &derived.traces {
        changed.push(apply_trace_delta(tx, &mut recent, trace_id, delta)?);
    }
    tx.prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES ('derived_through_frame', ?1)")?
        .execute([derived.through_frame])?;
    Ok(changed)
}

/// Inserts a prepared request's frames with their trace-id filters, search indexes, link rows
/// and new operations; returns the last frame id and adds the new frames to `new_frames`.
/// Each trace is given its summary row here, so a search finds it from the frame.
fn insert_prepared<'a>(
    tx: &rusqlite::Transaction<'_>,
    prepared: &'a Prepared,
    memory: &mut WriterMemory,
    recent: &Mutex<RecentTraces>,
    new_frames: &mut Vec<(i64, &'a crate::ingest::PreparedFrame)>,
) -> Result<Option<i64>, StoreError> {
    let mut insert_frame = tx.prepare_cached(
        "INSERT INTO frames(min_start, max_start, span_count, filter, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut insert_trace_filter = tx.prepare_cached("INSERT INTO frame_traces(frame_id, filter) VALUES (?1, ?2)")?;
    let mut insert_search =
        tx.prepare_cached("INSERT INTO frame_search(frame_id, terms, spans, trace_rows) VALUES (?1, ?2, ?3, ?4)")?;
    // Goes with the linking span's frame.
    let mut insert_link = tx.prepare_cached(
        "INSERT OR REPLACE INTO span_links(target, target_span, start, source, source_span, service, name, frame_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut last = None;
    for frame in &prepared.frames {
        insert_frame.execute(params![
            frame.min_start as i64,
            frame.max_start as i64,
            frame.span_count as i64,
            frame.filter,
            frame.data
        ])?;
        let frame_id = tx.last_insert_rowid();
        last = Some(frame_id);
        insert_trace_filter.execute(params![frame_id, frame.trace_filter])?;
        let rows: Vec<i64> = {
            let mut recent = recent.lock().unwrap_or_else(|e| e.into_inner());
            frame.trace_ids.iter().map(|id| recent.row_for(id)).collect()
        };
        insert_search.execute(params![
            frame_id,
            frame.search_terms,
            frame.search_spans,
            TraceRows::encode(&rows)
        ])?;
        new_frames.push((frame_id, frame));
        for link in &frame.links {
            insert_link.execute(params![
                &link.target[..],
                &link.target_span[..],
                link.start as i64,
                &link.source[..],
                &link.source_span[..],
                link.service,
                link.name,
                frame_id
            ])?;
        }
    }
    for op in &prepared.operations {
        if !memory.operations.contains(op) {
            tx.prepare_cached("INSERT OR IGNORE INTO operations(service, name, kind) VALUES (?1, ?2, ?3)")?
                .execute(params![op.0, op.1, op.2])?;
            memory.operations.insert(op.clone());
        }
    }
    Ok(last)
}

impl WriterMemory {
    fn service_number(&mut self, service: &str) -> u32 {
        crate::ingest::number_of(&mut self.services, service) as u32
    }

    /// Counts a call between services when a span's parent is in another service, whichever
    /// of the two arrives first.
    fn track_edge(
        &mut self,
        span: &crate::ingest::EdgeSpan,
        service: u32,
        edges: &mut HashMap<(i64, u32, u32), (u64, u64)>,
    ) {
        let mut count = |parent: u32, child: u32, start: u64, error: bool| {
            if parent != child {
                let e = edges.entry((minute_of(start), parent, child)).or_insert((0, 0));
                e.0 += 1;
                e.1 += u64::from(error);
            }
        };
        // Children that arrived before this span.
        if let Some(children) = self.orphans.remove(&span.span_id) {
            for (child, start, error) in children {
                count(service, child, start, error);
            }
        }
        if let Some(parent_id) = span.parent {
            match self.recent_services.get(&parent_id) {
                Some(parent) => count(*parent, service, span.start, span.error),
                None => {
                    self.orphans
                        .entry(parent_id)
                        .or_default()
                        .push((service, span.start, span.error));
                    self.orphan_order.push_back(parent_id);
                    if self.orphan_order.len() > RECENT_SPANS {
                        if let Some(old) = self.orphan_order.pop_front() {
                            self.orphans.remove(&old);
                        }
                    }
                }
            }
        }
        self.recent_services.insert(span.span_id, service);
        self.recent_order.push_back(span.span_id);
        if self.recent_order.len() > RECENT_SPANS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent_services.remove(&old);
            }
        }
    }
}

impl TraceDelta {
    fn merge(&mut self, other: &TraceDelta) {
        if self.spans == 0 || other.start < self.start {
            self.start = other.start;
        }
        self.end = self.end.max(other.end);
        self.spans += other.spans;
        self.errors += other.errors;
        if other.root.is_some() {
            self.root.clone_from(&other.root);
        }
        for s in &other.services {
            if !self.services.contains(s) {
                self.services.push(s.clone());
            }
        }
    }
}

/// Adds a commit's delta to a trace's stored summary (a new row for a trace not seen
/// recently).
fn apply_trace_delta(
    tx: &rusqlite::Transaction<'_>,
    recent: &mut RecentTraces,
    trace_id: &[u8; 16],
    delta: &TraceDelta,
) -> Result<TraceSummary, StoreError> {
    let existing = match recent.get(trace_id) {
        Some(row) => summary_by_row(tx, row, trace_id)?.map(|s| (row, s)),
        None => None,
    };
    let values = |summary: &TraceSummary| {
        (
            summary.start_unix_nano as i64,
            summary.end_unix_nano as i64,
            summary.span_count as i64,
            summary.error_count as i64,
            summary.root_service.clone(),
            summary.root_name.clone(),
            summary.services.join("\n"),
        )
    };
    match existing {
        Some((row, summary)) => {
            let summary = delta.add_to(summary);
            let v = values(&summary);
            tx.prepare_cached(
                "UPDATE traces SET start = ?2, end = ?3, span_count = ?4, error_count = ?5, root_service = ?6,
                 root_name = ?7, services = ?8 WHERE id = ?1",
            )?
            .execute(params![row, v.0, v.1, v.2, v.3, v.4, v.5, v.6])?;
            Ok(summary)
        }
        None => {
            let summary = delta.add_to(empty_summary(trace_id, delta));
            let v = values(&summary);
            // The row given out when the trace's frame was stored, unless another trace has
            // it (a trace-key collision): then a new one.
            let mut row = recent.row_for(trace_id);
            loop {
                let inserted = tx
                    .prepare_cached(&format!(
                        "INSERT OR IGNORE INTO traces(id, {SUMMARY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    ))?
                    .execute(params![row, &trace_id[..], v.0, v.1, v.2, v.3, v.4, v.5, v.6])?;
                if inserted == 1 {
                    break;
                }
                row = recent.new_row();
                recent.insert(trace_id, row);
            }
            Ok(summary)
        }
    }
}

impl TraceDelta {
    /// The summary with this delta's spans added.
    fn add_to(&self, mut summary: TraceSummary) -> TraceSummary {
        if let Some((service, name)) = &self.root {
            summary.root_service = Some(service.clone());
            summary.root_name = Some(name.clone());
        }
        add_spans(
            &mut summary,
            (self.start, self.end),
            (self.spans, self.errors),
            &self.services,
        );
        summary
    }
}
