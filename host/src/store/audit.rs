//! The audit trail: every change made through the API and every console attach, with who made
//! it, to what, its outcome (the HTTP status) and when. Append-only.

use super::Result;
use super::db::{Db, params};
use crate::domain::{UserId, now_ms};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    #[schema(value_type = Option<i64>)]
    pub user_id: Option<UserId>,
    /// The user's name, or `anonymous` for a request without a valid token.
    pub actor: String,
    /// The operation (its OpenAPI operation id).
    pub action: String,
    /// The request's method and path.
    pub object: String,
    /// The HTTP status it was answered with.
    pub outcome: u16,
    /// The client's address.
    pub address: Option<String>,
}

pub struct NewEntry {
    pub user_id: Option<UserId>,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: u16,
    pub address: Option<String>,
}

pub fn append(conn: &Db, entry: &NewEntry) -> Result<()> {
    conn.execute(
        "INSERT INTO audit (at, user_id, actor, action, object, outcome, address) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![now_ms(), entry.user_id, entry.actor, entry.action, entry.object, entry.outcome, entry.address],
    )?;
    Ok(())
}

/// What became of a request, as the audit filter groups statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeClass {
    /// Done: any status below 400.
    Ok,
    /// Refused by the access layer: 401 (no valid token), 403 (seen but not allowed) or 404 (the
    /// way an object outside the caller's projects is refused; a missing object reads the same).
    Denied,
    /// Any other status from 400 up: a bad request, a conflict, a failure.
    Failed,
}

impl OutcomeClass {
    pub const ALL: &[OutcomeClass] = &[OutcomeClass::Ok, OutcomeClass::Denied, OutcomeClass::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Ok => "ok",
            OutcomeClass::Denied => "denied",
            OutcomeClass::Failed => "failed",
        }
    }

    /// The SQL condition on `outcome`; constants only, nothing bound.
    fn condition(self) -> &'static str {
        match self {
            OutcomeClass::Ok => "outcome < 400",
            OutcomeClass::Denied => "outcome IN (401, 403, 404)",
            OutcomeClass::Failed => "outcome >= 400 AND outcome NOT IN (401, 403, 404)",
        }
    }
}

/// Whose entries: a user by id, or an actor by the name recorded (`anonymous` included).
#[derive(Debug, Clone)]
pub enum Actor {
    Id(UserId),
    Name(String),
}

/// Which entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries older than this id (the last of the previous page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: Option<i64>,
    pub actor: Option<Actor>,
    /// Operations whose id starts with this, case-insensitive (`delete` is every delete).
    pub action: Option<String>,
    pub outcome: Option<OutcomeClass>,
}

/// Entries as `query` asks, newest first: one statement, filters and the page bound in SQL.
pub fn query(conn: &Db, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
    use super::db::{ToValue, Value};
    let mut values: Vec<Value> = Vec::new();
    let mut clauses: Vec<String> = Vec::new();
    let mut bind = |clause: &str, value: Value| {
        values.push(value);
        clauses.push(clause.replace("{}", &format!("?{}", values.len())));
    };
    if let Some(before) = query.before {
        bind("id < {}", before.to_value());
    }
    match &query.actor {
        Some(Actor::Id(id)) => bind("user_id = {}", id.0.to_value()),
        Some(Actor::Name(name)) => bind("actor = {}", name.as_str().to_value()),
        None => {}
    }
    if let Some(prefix) = query.action.as_deref().filter(|p| !p.is_empty()) {
        // LIKE's own characters are taken literally; lowered on both sides, as engines differ on case.
        let escaped = prefix.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        bind("LOWER(action) LIKE {} ESCAPE '\\'", Value::Text(format!("{escaped}%")));
    }
    if let Some(outcome) = query.outcome {
        clauses.push(format!("({})", outcome.condition()));
    }
    let filter = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    let limit = match query.limit {
        Some(l) => {
            values.push(l.to_value());
            format!(" LIMIT ?{}", values.len())
        }
        None => String::new(),
    };
    let sql = format!("SELECT id, at, user_id, actor, action, object, outcome, address FROM audit{filter} ORDER BY id DESC{limit}");
    let params: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    conn.query_map(&sql, &params, |r| {
        Ok(AuditEntry {
            id: r.get(0)?,
            at: r.get(1)?,
            user_id: r.get(2)?,
            actor: r.get(3)?,
            action: r.get(4)?,
            object: r.get(5)?,
            outcome: r.get(6)?,
            address: r.get(7)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::seal::SealKey;

    #[test]
    fn filters_and_pages_run_in_one_statement() {
        let mut db = Db::sqlite(rusqlite::Connection::open_in_memory().expect("db"), SealKey::throwaway());
        crate::store::migrations::apply(&mut db).expect("migrations");
        for (user, actor, action, outcome) in [
            (Some(1), "admin", "create_node", 201),
            (None, "anonymous", "delete_node", 401),
            (Some(2), "ann", "delete_instance", 404),
            (Some(2), "ann", "delete_instance", 409),
            (Some(1), "admin", "delete_node", 204),
            (Some(2), "ann", "create_x%y", 201),
        ] {
            let entry =
                NewEntry { user_id: user.map(UserId), actor: actor.into(), action: action.into(), object: String::new(), outcome, address: None };
            append(&db, &entry).expect("append");
        }
        let ids = |q: AuditQuery| query(&db, &q).expect("query").iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(AuditQuery::default()), [6, 5, 4, 3, 2, 1]);
        assert_eq!(ids(AuditQuery { before: Some(5), limit: Some(2), ..Default::default() }), [4, 3]);
        assert_eq!(ids(AuditQuery { action: Some("DELETE".into()), ..Default::default() }), [5, 4, 3, 2]);
        assert_eq!(ids(AuditQuery { action: Some("create_x%".into()), ..Default::default() }), [6], "% is literal");
        assert_eq!(ids(AuditQuery { action: Some("create_%".into()), ..Default::default() }), Vec::<i64>::new());
        assert_eq!(ids(AuditQuery { actor: Some(Actor::Id(UserId(2))), ..Default::default() }), [6, 4, 3]);
        assert_eq!(ids(AuditQuery { actor: Some(Actor::Name("anonymous".into())), ..Default::default() }), [2]);
        assert_eq!(ids(AuditQuery { outcome: Some(OutcomeClass::Denied), ..Default::default() }), [3, 2]);
        assert_eq!(ids(AuditQuery { outcome: Some(OutcomeClass::Failed), ..Default::default() }), [4]);
        assert_eq!(ids(AuditQuery { outcome: Some(OutcomeClass::Ok), action: Some("delete".into()), ..Default::default() }), [5]);
    }
}
