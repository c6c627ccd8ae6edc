//! Agent tasks and the tokens that scope the agent's access: node tokens for a node's agent endpoints,
//! image tokens for one task's image. Tokens are stored as sha256 hashes only.

use super::db::{Db, Row, params};
use sha2::{Digest, Sha256};

use super::{Result, StoreError};
use crate::domain::{FailureKind, ImageId, NodeId, TaskId, TaskKind, TaskState, now_ms};

#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    pub node: NodeId,
    pub kind: TaskKind,
    pub state: TaskState,
    /// JSON of the work options the host decided (disk hint, clean method, what to do after).
    pub payload: String,
    pub image: Option<ImageId>,
    pub deadline: i64,
    pub last_heartbeat: Option<i64>,
    pub bytes_written: u64,
    pub total_bytes: Option<u64>,
    pub message: Option<String>,
    /// Why a failed task failed, as its agent said (migration 6); None when it did not say.
    pub failure_kind: Option<FailureKind>,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, node_id, kind, state, payload, image_id, deadline, last_heartbeat, bytes_written, total_bytes, message, created_at, failure_kind";

fn from_row(row: &Row<'_>) -> Result<Task> {
    Ok(Task {
        id: TaskId(row.get(0)?),
        node: NodeId(row.get(1)?),
        kind: row.parse(2)?,
        state: row.parse(3)?,
        payload: row.get(4)?,
        image: row.get::<Option<i64>>(5)?.map(ImageId),
        deadline: row.get(6)?,
        last_heartbeat: row.get(7)?,
        bytes_written: row.get(8)?,
        total_bytes: row.get(9)?,
        message: row.get(10)?,
        created_at: row.get(11)?,
        failure_kind: row.parse_opt(12)?,
    })
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub struct NewTask {
    pub node: NodeId,
    pub kind: TaskKind,
    pub payload: String,
    pub image: Option<ImageId>,
    pub deadline: i64,
}

/// Creates a pending task; any earlier unfinished task of the node is failed as superseded, so a
/// node never has two tasks in flight.
pub fn create(conn: &Db, new: NewTask) -> Result<Task> {
    let now = now_ms();
    conn.execute(
        "UPDATE tasks SET state = 'failed', message = 'superseded by a newer task', updated_at = ?2
         WHERE node_id = ?1 AND state IN ('pending', 'running')",
        params![new.node.0, now],
    )?;
    let id = conn.query_row(
        "INSERT INTO tasks (node_id, kind, state, payload, image_id, deadline, created_at, updated_at)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?6) RETURNING id",
        params![new.node.0, new.kind.as_str(), new.payload, new.image.map(|i| i.0), new.deadline, now],
        |r| r.get(0),
    )?;
    get(conn, TaskId(id))
}

pub fn get(conn: &Db, id: TaskId) -> Result<Task> {
    conn.query_opt(&format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"), params![id.0], from_row)?
        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))
}

/// The node's unfinished task, if any.
pub fn open_for_node(conn: &Db, node: NodeId) -> Result<Option<Task>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM tasks WHERE node_id = ?1 AND state IN ('pending', 'running') ORDER BY id DESC LIMIT 1"),
        params![node.0],
        from_row,
    )
}

/// The node's most recent task, finished or not.
pub fn latest_for_node(conn: &Db, node: NodeId) -> Result<Option<Task>> {
    conn.query_opt(&format!("SELECT {COLUMNS} FROM tasks WHERE node_id = ?1 ORDER BY id DESC LIMIT 1"), params![node.0], from_row)
}

/// Hands the task to the agent: running, heartbeat now, and a fresh image token (only its hash kept).
pub fn start(conn: &Db, id: TaskId, image_token: Option<&str>) -> Result<()> {
    let now = now_ms();
    conn.execute(
        "UPDATE tasks SET state = 'running', last_heartbeat = ?2, image_token_hash = ?3, updated_at = ?2
         WHERE id = ?1 AND state IN ('pending', 'running')",
        params![id.0, now, image_token.map(hash_token)],
    )?;
    Ok(())
}

fn require_open(conn: &Db, id: TaskId, node: NodeId) -> Result<Task> {
    let task = get(conn, id)?;
    if task.node != node {
        return Err(StoreError::NotFound(format!("task {id}")));
    }
    if !matches!(task.state, TaskState::Pending | TaskState::Running) {
        return Err(StoreError::Conflict(format!(
            "task {id} is already {}{}",
            task.state,
            task.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        )));
    }
    Ok(task)
}

pub fn progress(conn: &Db, id: TaskId, node: NodeId, bytes: u64, total: Option<u64>) -> Result<()> {
    require_open(conn, id, node)?;
    let now = now_ms();
    conn.execute(
        "UPDATE tasks SET bytes_written = ?2, total_bytes = COALESCE(?3, total_bytes), last_heartbeat = ?4, updated_at = ?4 WHERE id = ?1",
        params![id.0, bytes, total, now],
    )?;
    Ok(())
}

pub fn heartbeat(conn: &Db, node: NodeId) -> Result<()> {
    let now = now_ms();
    conn.execute("UPDATE tasks SET last_heartbeat = ?2, updated_at = ?2 WHERE node_id = ?1 AND state = 'running'", params![node.0, now])?;
    Ok(())
}

/// Records the agent's result, a failure with its kind (kept only for a failure). Returns the
/// finished task.
pub fn finish(conn: &Db, id: TaskId, node: NodeId, success: bool, kind: Option<FailureKind>, message: &str) -> Result<Task> {
    require_open(conn, id, node)?;
    close(conn, id, success, kind, message)
}

/// Ends an open task for the host's own reasons (the watchdog, a failed workflow): no kind.
pub fn fail_or_succeed(conn: &Db, id: TaskId, success: bool, message: &str) -> Result<Task> {
    close(conn, id, success, None, message)
}

fn close(conn: &Db, id: TaskId, success: bool, kind: Option<FailureKind>, message: &str) -> Result<Task> {
    let state = if success { TaskState::Succeeded } else { TaskState::Failed };
    let kind = kind.filter(|_| !success).map(FailureKind::as_str);
    conn.execute(
        "UPDATE tasks SET state = ?2, message = ?3, failure_kind = ?4, image_token_hash = NULL, updated_at = ?5
         WHERE id = ?1 AND state IN ('pending', 'running')",
        params![id.0, state.as_str(), message, kind, now_ms()],
    )?;
    get(conn, id)
}

/// Open tasks whose agent went quiet or whose deadline passed, with the reason each failed.
pub fn overdue(conn: &Db, now: i64, heartbeat_timeout_ms: i64) -> Result<Vec<(Task, String)>> {
    let open: Vec<Task> = conn.query_map(&format!("SELECT {COLUMNS} FROM tasks WHERE state IN ('pending', 'running')"), params![], from_row)?;
    Ok(open
        .into_iter()
        .filter_map(|task| {
            let reason = if now > task.deadline {
                Some(match task.state {
                    TaskState::Pending => {
                        format!("the agent never fetched the {} task before its deadline ({} s)", task.kind, (task.deadline - task.created_at) / 1000)
                    }
                    _ => format!("the {} task passed its deadline ({} s)", task.kind, (task.deadline - task.created_at) / 1000),
                })
            } else if task.state == TaskState::Running && task.last_heartbeat.is_some_and(|beat| now - beat > heartbeat_timeout_ms) {
                Some(format!("the agent stopped heartbeating: last heard from {} s ago", (now - task.last_heartbeat.unwrap_or(now)) / 1000))
            } else {
                None
            };
            reason.map(|r| (task, r))
        })
        .collect())
}

/// The open task an image token was issued for.
pub fn by_image_token(conn: &Db, token: &str) -> Result<Option<Task>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM tasks WHERE image_token_hash = ?1 AND state IN ('pending', 'running')"),
        params![hash_token(token)],
        from_row,
    )
}

/// Stores a node token (hashed) valid until `expires_at`.
pub fn issue_node_token(conn: &Db, node: NodeId, token: &str, expires_at: i64) -> Result<()> {
    let now = now_ms();
    conn.execute("DELETE FROM node_tokens WHERE expires_at < ?1", params![now])?;
    conn.execute("INSERT INTO node_tokens (token_hash, node_id, expires_at) VALUES (?1, ?2, ?3)", params![hash_token(token), node.0, expires_at])?;
    Ok(())
}

/// The node a token belongs to, if the token exists and has not expired.
pub fn node_for_token(conn: &Db, token: &str) -> Result<Option<NodeId>> {
    Ok(conn
        .query_opt("SELECT node_id FROM node_tokens WHERE token_hash = ?1 AND expires_at >= ?2", params![hash_token(token), now_ms()], |r| {
            r.get::<i64>(0)
        })?
        .map(NodeId))
}

/// Ends every agent token of a node (when its agent work is over).
pub fn revoke_node_tokens(conn: &Db, node: NodeId) -> Result<()> {
    conn.execute("DELETE FROM node_tokens WHERE node_id = ?1", params![node.0])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations;
    use crate::store::seal::SealKey;

    fn task_for(node: i64) -> NewTask {
        NewTask { node: NodeId(node), kind: TaskKind::Deploy, payload: "{}".into(), image: None, deadline: now_ms() + 60_000 }
    }

    #[test]
    fn only_an_agents_failed_result_keeps_a_kind() {
        let mut db = Db::sqlite(rusqlite::Connection::open_in_memory().expect("db"), SealKey::throwaway());
        migrations::apply(&mut db).expect("schema");
        // Tasks alone are under test: no node rows behind them.
        db.batch("PRAGMA foreign_keys = OFF").expect("pragma");
        let failed = create(&db, task_for(1)).expect("task");
        let failed = finish(&db, failed.id, NodeId(1), false, Some(FailureKind::Transport), "downloading the image: HTTP 503").expect("finish");
        assert_eq!((failed.state, failed.failure_kind), (TaskState::Failed, Some(FailureKind::Transport)));
        assert_eq!(latest_for_node(&db, NodeId(1)).expect("read").and_then(|t| t.failure_kind), Some(FailureKind::Transport));
        let done = create(&db, task_for(2)).expect("task");
        let done = finish(&db, done.id, NodeId(2), true, Some(FailureKind::Transport), "done").expect("finish");
        assert_eq!((done.state, done.failure_kind), (TaskState::Succeeded, None));
        let silent = create(&db, task_for(3)).expect("task");
        let silent = fail_or_succeed(&db, silent.id, false, "the agent stopped heartbeating").expect("fail");
        assert_eq!((silent.state, silent.failure_kind), (TaskState::Failed, None));
    }
}
