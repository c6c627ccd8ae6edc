//! Each node's console log: the last lines the node printed while deploying, cleaning or
//! inspecting, kept as a bounded ring (migration 3) so a failed deploy can still be read after
//! the node moved on or the daemon restarted.
//!
//! Lines are cleaned on the way in: control characters (a console's escape sequences) become
//! U+FFFD, so reading the log can never drive the reader's terminal, and each line is cut at
//! [`MAX_LINE_BYTES`].

use super::db::{Db, params};

use super::Result;
use crate::domain::{NodeId, now_ms};

/// Lines kept per node; older ones are dropped as new ones arrive.
pub const MAX_LINES: i64 = 2000;
pub const MAX_LINE_BYTES: usize = 1024;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The metalhost agent on the node: its own lines, which it also prints to the console.
    Agent,
    /// The node's serial console, recorded by the daemon (`console/recorder.rs`).
    Serial,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Agent => "agent",
            Source::Serial => "serial",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ConsoleLine {
    /// When the host received it: stored as Unix milliseconds, RFC 3339 UTC on the wire.
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    pub source: String,
    pub text: String,
}

/// One line as stored: no control characters but tab, at most [`MAX_LINE_BYTES`].
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len().min(MAX_LINE_BYTES));
    for c in line.trim_end_matches(['\r', '\n']).chars() {
        let c = if c.is_control() && c != '\t' { '\u{fffd}' } else { c };
        if out.len() + c.len_utf8() > MAX_LINE_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// Appends lines in order, then drops what the ring no longer holds; one transaction.
pub fn append(conn: &mut Db, node: NodeId, source: Source, lines: &[String]) -> Result<()> {
    let tx = conn.transaction()?;
    let at = now_ms();
    for line in lines {
        tx.execute(
            // Stamped with the node's tenancy of the moment: its tenant reads its own lines only.
            "INSERT INTO console_lines (node_id, at, source, text, tenancy)
             VALUES (?1, ?2, ?3, ?4, (SELECT tenancy FROM nodes WHERE id = ?1))",
            params![node.0, at, source.as_str(), clean(line)],
        )?;
    }
    tx.execute(
        "DELETE FROM console_lines WHERE node_id = ?1 AND id <=
           (SELECT id FROM console_lines WHERE node_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![node.0, MAX_LINES],
    )?;
    tx.commit()?;
    Ok(())
}

/// The newest `limit` lines, oldest first.
/// The newest `limit` lines, oldest first; with `tenancy`, only those printed in that tenancy of
/// the node.
pub fn tail_of(conn: &Db, node: NodeId, limit: i64, tenancy: Option<i64>) -> Result<Vec<ConsoleLine>> {
    // Two statements rather than `?3 IS NULL OR ...`: PostgreSQL must know each parameter's type.
    let (filter, tenancy) = match tenancy {
        Some(t) => ("AND tenancy = ?3", t),
        None => ("AND ?3 = ?3", 0),
    };
    conn.query_map(
        &format!(
            "SELECT at, source, text FROM (SELECT id, at, source, text FROM console_lines
               WHERE node_id = ?1 {filter} ORDER BY id DESC LIMIT ?2) AS newest
             ORDER BY id"
        ),
        params![node.0, limit, tenancy],
        |row| Ok(ConsoleLine { at: row.get(0)?, source: row.get(1)?, text: row.get(2)? }),
    )
}

pub fn has_lines(conn: &Db, node: NodeId) -> Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM console_lines WHERE node_id = ?1)", params![node.0], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cleaned_and_cut() {
        assert_eq!(clean("ok\tthere\r\n"), "ok\tthere");
        assert_eq!(clean("\x1b[2Jboom"), "\u{fffd}[2Jboom");
        let long = "é".repeat(MAX_LINE_BYTES);
        let cut = clean(&long);
        assert!(cut.len() <= MAX_LINE_BYTES && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_ring_keeps_the_newest_lines() {
        let mut conn = Db::sqlite(rusqlite::Connection::open_in_memory().expect("db"), super::super::seal::SealKey::throwaway());
        conn.batch("CREATE TABLE nodes (id INTEGER PRIMARY KEY, tenancy INTEGER NOT NULL DEFAULT 0); INSERT INTO nodes (id) VALUES (1);")
            .expect("nodes");
        conn.batch(super::super::migrations::CONSOLE_LINES).expect("table");
        conn.batch("ALTER TABLE console_lines ADD COLUMN tenancy INTEGER").expect("migration 9");
        let lines: Vec<String> = (0..MAX_LINES + 5).map(|i| format!("line {i}")).collect();
        append(&mut conn, NodeId(1), Source::Agent, &lines).expect("append");
        let kept = tail_of(&conn, NodeId(1), MAX_LINES + 100, None).expect("tail");
        assert_eq!(kept.len() as i64, MAX_LINES);
        assert_eq!(kept.first().map(|l| l.text.as_str()), Some("line 5"));
        assert_eq!(kept.last().map(|l| l.text.clone()), Some(format!("line {}", MAX_LINES + 4)));
        assert_eq!(tail_of(&conn, NodeId(1), 2, None).expect("tail").iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["line 2003", "line 2004"]);
        assert!(has_lines(&conn, NodeId(1)).expect("exists"));
    }
}
