//! Database activities for sqlx: [`TracedPool`] wraps a pool and makes every query a Client
//! activity under the activity that ran it, following OpenTelemetry's database conventions —
//! on the pool, on its connections ([`TracedPool::acquire`]) and in its transactions
//! ([`TracedPool::begin`]), whose `BEGIN`, `COMMIT` and `ROLLBACK` are activities too.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::future::BoxFuture;
use futures_core::stream::{BoxStream, Stream};
use skein::{Activity, ActivityKind, ActivitySource, ActivityStatusCode, CurrentGuard};
use sqlx::pool::PoolConnection;
use sqlx::{Acquire, Database, Either, Error, Execute, Executor, Pool, SqlStr, Transaction};

/// The source of database activities (listen to `"sqlx"`).
pub static SQLX: ActivitySource = ActivitySource::new("sqlx");

/// A sqlx pool whose queries are recorded as Client activities: named `SELECT orders`
/// (operation and table), with `db.system.name`, `db.query.text` (literals replaced by `?`
/// unless [`TracedPool::with_query_literals`]), `db.operation.name`, `db.collection.name` where
/// the statement names one table, `db.response.returned_rows`, and `error.type` plus Error
/// status when the query fails. Use it wherever sqlx takes an executor (`&traced_pool`); its
/// connections and transactions are used as sqlx's are (`&mut *conn`, `&mut *tx`) and record
/// the same activities:
///
/// ```
/// # async fn example() -> Result<(), sqlx::Error> {
/// let db = skein_tracing::TracedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// let mut tx = db.begin().await?; // a BEGIN activity
/// sqlx::query("CREATE TABLE t (v INTEGER)").execute(&mut *tx).await?; // CREATE
/// sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await?; // INSERT t
/// tx.commit().await?; // COMMIT
/// let mut conn = db.acquire().await?;
/// let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM t").fetch_one(&mut *conn).await?;
/// # assert_eq!(n, 1);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(example()).unwrap();
/// ```
///
/// ```
/// # async fn example() -> Result<(), sqlx::Error> {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let db = skein_tracing::TracedPool::new(pool);
/// let rows: Vec<(i64,)> = sqlx::query_as("SELECT 1 + ?").bind(1).fetch_all(&db).await?;
/// # assert_eq!(rows, vec![(2,)]);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(example()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct TracedPool<DB: Database> {
    pool: Pool<DB>,
    keep_literals: bool,
}

impl<DB: Database> TracedPool<DB> {
    /// Records the queries run through `pool`.
    pub fn new(pool: Pool<DB>) -> Self {
        TracedPool {
            pool,
            keep_literals: false,
        }
    }

    /// Records query texts as written, literals included (they may hold personal data).
    pub fn with_query_literals(mut self) -> Self {
        self.keep_literals = true;
        self
    }

    /// The wrapped pool (its queries are not recorded).
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    fn tracing(&self) -> Tracing {
        Tracing {
            system: system_name(DB::NAME),
            keep_literals: self.keep_literals,
        }
    }

    /// A connection from the pool, whose queries are recorded (`&mut *conn`).
    pub async fn acquire(&self) -> Result<TracedPoolConnection<DB>, Error> {
        Ok(TracedPoolConnection {
            executor: TracedExecutor {
                inner: self.pool.acquire().await?,
                tracing: self.tracing(),
            },
        })
    }

    /// Begins a transaction on a connection from the pool (a `BEGIN` activity); its queries
    /// are recorded (`&mut *tx`). Dropped without [`TracedTransaction::commit`], it rolls
    /// back, as sqlx's does.
    pub async fn begin(&self) -> Result<TracedTransaction<'static, DB>, Error> {
        let tracing = self.tracing();
        let tx = tracing.statement("BEGIN", self.pool.begin()).await?;
        Ok(TracedTransaction {
            executor: TracedExecutor { inner: tx, tracing },
        })
    }
}

/// What `fetch_many` yields.
type ResultStream<'e, DB> = BoxStream<'e, Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, Error>>;

/// What a traced executor needs to describe its queries.
#[derive(Clone, Copy, Debug)]
struct Tracing {
    system: &'static str,
    keep_literals: bool,
}

impl Tracing {
    /// Starts the activity of one query under the current activity, without making it current
    /// (the query runs on whatever sqlx chooses).
    fn start(&self) -> Option<Activity> {
        let _restore = CurrentGuard::new(Activity::current().as_ref());
        let activity = SQLX.start_activity(self.system, ActivityKind::Client)?;
        activity.set_tag("db.system.name", self.system);
        Some(activity)
    }

    /// The activity of a query and the query that will describe it to the activity.
    fn describe_query<E>(&self, query: E) -> (Option<Activity>, Described<E>) {
        let activity = self.start();
        let described = Described {
            inner: query,
            activity: activity.clone(),
            keep_literals: self.keep_literals,
        };
        (activity, described)
    }

    /// Runs a transaction statement (`BEGIN`, `COMMIT`, `ROLLBACK`) as an activity.
    async fn statement<T>(
        &self,
        operation: &'static str,
        run: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let activity = self.start();
        if let Some(activity) = &activity {
            activity.set_display_name(operation);
            activity.set_tag("db.operation.name", operation);
        }
        let result = run.await;
        if let Some(activity) = activity {
            finish(activity, None, result.as_ref().err());
        }
        result
    }

    fn fetch_many<'e, 'q: 'e, DB, X, E>(self, executor: X, query: E) -> ResultStream<'e, DB>
    where
        DB: Database,
        X: Executor<'e, Database = DB>,
        E: 'q + Execute<'q, DB>,
    {
        let (activity, query) = self.describe_query(query);
        Box::pin(TracedStream {
            inner: executor.fetch_many(query),
            activity,
            rows: 0,
            is_row: |item| matches!(item, Either::Right(_)),
        })
    }

    fn fetch_optional<'e, 'q: 'e, DB, X, E>(
        self,
        executor: X,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        DB: Database,
        X: Executor<'e, Database = DB> + 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (activity, query) = self.describe_query(query);
        Box::pin(async move {
            // Ends the activity even if the caller drops the future half-way.
            let mut stream = TracedStream {
                inner: Box::pin(futures_util::stream::once(executor.fetch_optional(query))),
                activity,
                rows: 0,
                is_row: |row: &Option<DB::Row>| row.is_some(),
            };
            let result = futures_util::StreamExt::next(&mut stream).await;
            result.unwrap_or(Ok(None))
        })
    }
}

/// A connection or transaction whose queries are recorded: what `&mut *conn` and `&mut *tx`
/// give for a [`TracedPoolConnection`] and a [`TracedTransaction`].
#[derive(Debug)]
pub struct TracedExecutor<C> {
    inner: C,
    tracing: Tracing,
}

/// A pooled connection whose queries are recorded; `&mut *conn` is its executor, as with
/// sqlx's `PoolConnection`. Returned to the pool when dropped.
#[derive(Debug)]
pub struct TracedPoolConnection<DB: Database> {
    executor: TracedExecutor<PoolConnection<DB>>,
}

impl<DB: Database> TracedPoolConnection<DB> {
    /// Begins a transaction on this connection (a `BEGIN` activity).
    pub async fn begin(&mut self) -> Result<TracedTransaction<'_, DB>, Error> {
        let tracing = self.executor.tracing;
        let tx = tracing.statement("BEGIN", (&mut self.executor.inner).begin()).await?;
        Ok(TracedTransaction {
            executor: TracedExecutor { inner: tx, tracing },
        })
    }

    /// The connection itself (its queries are not recorded).
    pub fn untraced(&mut self) -> &mut PoolConnection<DB> {
        &mut self.executor.inner
    }
}

impl<DB: Database> Deref for TracedPoolConnection<DB> {
    type Target = TracedExecutor<PoolConnection<DB>>;
    fn deref(&self) -> &Self::Target {
        &self.executor
    }
}

impl<DB: Database> DerefMut for TracedPoolConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.executor
    }
}

/// A transaction whose queries are recorded; `&mut *tx` is its executor, as with sqlx's
/// `Transaction`. Dropped without [`commit`](Self::commit), it rolls back.
#[derive(Debug)]
pub struct TracedTransaction<'c, DB: Database> {
    executor: TracedExecutor<Transaction<'c, DB>>,
}

impl<'c, DB: Database> TracedTransaction<'c, DB> {
    /// Commits (a `COMMIT` activity).
    pub async fn commit(self) -> Result<(), Error> {
        let TracedExecutor { inner, tracing } = self.executor;
        tracing.statement("COMMIT", inner.commit()).await
    }

    /// Rolls back (a `ROLLBACK` activity).
    pub async fn rollback(self) -> Result<(), Error> {
        let TracedExecutor { inner, tracing } = self.executor;
        tracing.statement("ROLLBACK", inner.rollback()).await
    }

    /// The transaction itself (its queries are not recorded).
    pub fn untraced(&mut self) -> &mut Transaction<'c, DB> {
        &mut self.executor.inner
    }
}

impl<'c, DB: Database> Deref for TracedTransaction<'c, DB> {
    type Target = TracedExecutor<Transaction<'c, DB>>;
    fn deref(&self) -> &Self::Target {
        &self.executor
    }
}

impl<DB: Database> DerefMut for TracedTransaction<'_, DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.executor
    }
}

/// OpenTelemetry's `db.system.name` for a sqlx database.
fn system_name(sqlx_name: &str) -> &'static str {
    match sqlx_name {
        "SQLite" => "sqlite",
        "PostgreSQL" => "postgresql",
        "MySQL" => "mysql",
        "MSSQL" => "microsoft.sql_server",
        _ => "other_sql",
    }
}

/// Describes the query on its activity once sqlx asks for the text.
fn describe(activity: &Activity, sql: &str, keep_literals: bool) {
    let operation = operation_name(sql);
    let collection = operation.as_deref().and_then(|op| collection_name(sql, op));
    match (&operation, &collection) {
        (Some(op), Some(table)) => activity.set_display_name(format!("{op} {table}")),
        (Some(op), None) => activity.set_display_name(op.clone()),
        _ => activity,
    };
    let text = if keep_literals {
        sql.to_owned()
    } else {
        redact_literals(sql)
    };
    activity.set_tag("db.query.text", text);
    if let Some(op) = operation {
        activity.set_tag("db.operation.name", op);
    }
    if let Some(table) = collection {
        activity.set_tag("db.collection.name", table);
    }
}

fn finish(activity: Activity, rows: Option<u64>, error: Option<&Error>) {
    if let Some(rows) = rows {
        activity.set_tag("db.response.returned_rows", rows as i64);
    }
    if let Some(error) = error {
        let kind = match error {
            Error::Database(e) => e.code().map_or_else(|| "database".to_owned(), |c| c.into_owned()),
            Error::RowNotFound => "row_not_found".to_owned(),
            Error::PoolTimedOut => "pool_timed_out".to_owned(),
            Error::PoolClosed => "pool_closed".to_owned(),
            Error::Io(_) => "io".to_owned(),
            Error::Tls(_) => "tls".to_owned(),
            Error::Protocol(_) => "protocol".to_owned(),
            Error::ColumnDecode { .. } | Error::Decode(_) => "decode".to_owned(),
            _ => "other".to_owned(),
        };
        activity.set_tag("error.type", kind);
        activity.set_status(ActivityStatusCode::Error, Some(error.to_string()));
    }
    let _restore = CurrentGuard::new(Activity::current().as_ref());
    activity.stop();
}

/// The query as sqlx sees it, telling the activity its text when sqlx reads it.
struct Described<E> {
    inner: E,
    activity: Option<Activity>,
    keep_literals: bool,
}

impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Described<E> {
    fn sql(self) -> SqlStr {
        let sql = self.inner.sql();
        if let Some(activity) = &self.activity {
            describe(activity, sql.as_str(), self.keep_literals);
        }
        sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.inner.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, sqlx::error::BoxDynError> {
        self.inner.take_arguments()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }
}

/// A result stream that ends the activity when it ends, fails or is dropped.
struct TracedStream<'e, T> {
    inner: BoxStream<'e, Result<T, Error>>,
    activity: Option<Activity>,
    rows: u64,
    is_row: fn(&T) -> bool,
}

impl<T> Stream for TracedStream<'_, T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(item))) => {
                if (self.is_row)(item) {
                    self.rows += 1;
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(activity) = self.activity.take() {
                    finish(activity, Some(self.rows), Some(e));
                }
            }
            Poll::Ready(None) => {
                if let Some(activity) = self.activity.take() {
                    finish(activity, Some(self.rows), None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl<T> Drop for TracedStream<'_, T> {
    fn drop(&mut self) {
        if let Some(activity) = self.activity.take() {
            finish(activity, Some(self.rows), None);
        }
    }
}

impl<'p, DB> Executor<'p> for &'p TracedPool<DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        self.tracing().fetch_many(&self.pool, query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        self.tracing().fetch_optional(&self.pool, query)
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'p: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<DB>, Error>>
    where
        'p: 'e,
    {
        self.pool.describe(sql)
    }
}

/// The executor of a traced connection or transaction: queries go to the connection inside.
macro_rules! traced_executor {
    ($($inner:ty),*) => {$(
        impl<'c, 't, DB> Executor<'c> for &'c mut TracedExecutor<$inner>
        where
            DB: Database,
            for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
        {
            type Database = DB;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let tracing = self.tracing;
                tracing.fetch_many(&mut *self.inner, query)
            }

            fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let tracing = self.tracing;
                tracing.fetch_optional(&mut *self.inner, query)
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [DB::TypeInfo],
            ) -> BoxFuture<'e, Result<DB::Statement, Error>>
            where
                'c: 'e,
            {
                (&mut *self.inner).prepare_with(sql, parameters)
            }

            fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<DB>, Error>>
            where
                'c: 'e,
            {
                (&mut *self.inner).describe(sql)
            }
        }
    )*};
}

traced_executor!(PoolConnection<DB>, Transaction<'t, DB>);

/// The statement's first keyword, upper-cased (`SELECT`, `INSERT`, …).
pub(crate) fn operation_name(sql: &str) -> Option<String> {
    let word: String = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    (!word.is_empty()).then(|| word.to_ascii_uppercase())
}

/// The table a simple statement works on: after `FROM` (SELECT, DELETE), `INTO` (INSERT,
/// REPLACE) or `UPDATE`; none for joins, sub-queries or anything unusual.
pub(crate) fn collection_name(sql: &str, operation: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let after = match operation {
        "SELECT" | "DELETE" => "FROM",
        "INSERT" | "REPLACE" => "INTO",
        "UPDATE" => "UPDATE",
        _ => return None,
    };
    let position = words.iter().position(|w| w.eq_ignore_ascii_case(after))?;
    let upper = sql.to_ascii_uppercase();
    if operation == "SELECT" && (upper.contains(" JOIN ") || upper.matches("SELECT").count() > 1) {
        return None;
    }
    let name = words.get(position + 1)?;
    let name = name.split(['(', ',', ';']).next()?;
    let name = name.trim_matches(|c| matches!(c, '"' | '`' | '[' | ']'));
    let simple = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.');
    simple.then(|| name.to_owned())
}

/// The query with string and number literals replaced by `?` (identifiers, quoted with `"`,
/// `` ` `` or `[]`, are kept).
pub(crate) fn redact_literals(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // A string literal; '' inside it is an escaped quote.
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                        }
                        Some('\'') | None => break,
                        Some(_) => {}
                    }
                }
                // A blob literal X'…' loses its prefix too.
                if matches!(previous, Some('x' | 'X')) && out.ends_with(['x', 'X']) {
                    out.pop();
                }
                out.push('?');
            }
            '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == close {
                        break;
                    }
                }
            }
            c if c.is_ascii_digit()
                && !previous.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '?' || p == '$') =>
            {
                while chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '.' || *n == '_')
                {
                    chars.next();
                }
                out.push('?');
            }
            c => out.push(c),
        }
        previous = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn literals_are_redacted_and_identifiers_kept() {
        assert_eq!(
            redact_literals("SELECT * FROM \"t1\" WHERE name = 'O''Brien' AND age > 42 AND col2 = ?1 AND b = x'00ff'"),
            "SELECT * FROM \"t1\" WHERE name = ? AND age > ? AND col2 = ?1 AND b = ?"
        );
        assert_eq!(
            redact_literals("UPDATE t SET v = 3.5e2 WHERE id = $1"),
            "UPDATE t SET v = ? WHERE id = $1"
        );
    }

    #[test]
    fn operation_and_collection() {
        let cases = [
            ("select id from orders where id = ?", Some("SELECT"), Some("orders")),
            (
                "INSERT INTO orders(id, total) VALUES (?, ?)",
                Some("INSERT"),
                Some("orders"),
            ),
            ("update `main`.items set n = 1", Some("UPDATE"), Some("main`.items")),
            ("DELETE FROM sessions", Some("DELETE"), Some("sessions")),
            ("SELECT * FROM a JOIN b ON a.id = b.id", Some("SELECT"), None),
            ("CREATE TABLE x (id INTEGER)", Some("CREATE"), None),
            ("  ", None, None),
        ];
        for (sql, op, table) in cases {
            let found = operation_name(sql);
            assert_eq!(found.as_deref(), op, "{sql}");
            let collection = found.as_deref().and_then(|o| collection_name(sql, o));
            if table != Some("main`.items") {
                assert_eq!(collection.as_deref(), table, "{sql}");
            } else {
                assert_eq!(collection, None, "{sql}: quoted parts inside a name are not simple");
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_is_handled(sql in "\\PC{0,80}") {
            let redacted = redact_literals(&sql);
            if let Some(op) = operation_name(&sql) {
                let _ = collection_name(&sql, &op);
            }
            prop_assert!(!redacted.contains('\'') || sql.contains('"') || sql.contains('`') || sql.contains('['));
        }
    }
}
