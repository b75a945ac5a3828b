//! [`Session`]: a connection to PostgreSQL that prepares each statement once.
//!
//! The client prepares a statement given as text at every call: one round trip to parse and
//! describe it, another to run it, and the server parses and plans it each time. The
//! journal runs the same few dozen statements for every alert and every run, so a session
//! keeps each one prepared, by its text, for as long as its connection lives: one round trip
//! per statement, and no parsing. On any error the prepared statements are dropped (and
//! closed on the server), so that a schema changed by another node's migration, which may
//! invalidate a prepared statement's result type, costs one failed statement, never a stuck
//! one.

use postgres::types::ToSql;
use postgres::{Client, Notifications, Row, Statement};
use std::collections::HashMap;

/// How many statements a session keeps prepared before it starts again (the history page's
/// filters build their queries; their combinations are few, but not bounded by the code).
const PREPARED_LIMIT: usize = 512;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub(super) struct Session {
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl Session {
    pub(super) fn new(client: Client) -> Session {
        Session {
            client,
            prepared: HashMap::new(),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The statement for `sql`, prepared on this connection once.
    pub(super) fn prepare(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).inspect_err(|_| self.forget())?;
        if self.prepared.len() >= PREPARED_LIMIT {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Drops every prepared statement (the server closes them).
    fn forget(&mut self) {
        self.prepared.clear();
    }

    /// Runs `call` with `sql`'s prepared statement; any error forgets the prepared set.
    fn run<T>(
        &mut self,
        sql: &str,
        call: impl FnOnce(&mut Client, &Statement) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let statement = self.prepare(sql)?;
        call(&mut self.client, &statement).inspect_err(|_| self.forget())
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, postgres::Error> {
        self.run(sql, |client, statement| client.execute(statement, params))
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        self.run(sql, |client, statement| client.query(statement, params))
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        self.run(sql, |client, statement| client.query_opt(statement, params))
    }

    pub(super) fn query_one(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Row, postgres::Error> {
        self.run(sql, |client, statement| client.query_one(statement, params))
    }

    /// Runs statements without parameters, as one simple query (never prepared).
    pub(super) fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.client.batch_execute(sql)
    }

    pub(super) fn notifications(&mut self) -> Notifications<'_> {
        self.client.notifications()
    }
}
