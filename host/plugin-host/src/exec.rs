//! The `exec` capability: run a granted program, never through a shell, with a cleared environment,
//! stdin closed, a private working dir, capped output and a timeout within the call's budget.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

/// Each of stdout and stderr is cut at this size.
pub const OUTPUT_CAP: u64 = 1 << 20;
const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves a granted program to the name the plugin uses and an absolute path, at load time.
/// An absolute path in the config is granted under its file name.
pub fn resolve(program: &str) -> Result<(String, PathBuf), String> {
    let candidate = Path::new(program);
    if candidate.is_absolute() {
        let name = candidate.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("granted program {program:?} has no file name"))?;
        return if candidate.is_file() { Ok((name.to_owned(), candidate.to_owned())) } else { Err(format!("granted program {program} does not exist")) };
    }
    if program.contains('/') {
        return Err(format!("granted program {program:?} must be a name or an absolute path"));
    }
    std::env::var("PATH")
        .unwrap_or_else(|_| CHILD_PATH.to_owned())
        .split(':')
        .chain(CHILD_PATH.split(':'))
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
        .map(|p| (program.to_owned(), p))
        .ok_or_else(|| format!("granted program {program:?} was not found on PATH"))
}

#[derive(Debug)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug)]
pub enum ExecError {
    NotPermitted(String),
    TimedOut(String),
    SpawnFailed(String),
}

/// Environment keys a plugin may not set: they would change what the granted program really runs.
fn forbidden_env(key: &str) -> bool {
    key.starts_with("LD_") || key == "PATH" || key.is_empty() || key.contains('=')
}

pub struct Request<'a> {
    pub plugin: &'a str,
    pub granted: &'a BTreeMap<String, PathBuf>,
    pub program: &'a str,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub files: &'a [(String, String)],
    pub timeout: Duration,
    pub deadline: Instant,
}

pub async fn run(req: Request<'_>) -> Result<Output, ExecError> {
    // Plugins name programs; a path would sidestep the grant table.
    let granted = if req.program.contains('/') { None } else { req.granted.get(req.program) };
    let Some(path) = granted else {
        let allowed: Vec<&str> = req.granted.keys().map(String::as_str).collect();
        tracing::warn!(plugin = req.plugin, program = req.program, "exec refused: not granted");
        return Err(ExecError::NotPermitted(format!(
            "exec of {:?} is not permitted for plugin {:?} (granted: {})",
            req.program,
            req.plugin,
            if allowed.is_empty() { "nothing".to_owned() } else { allowed.join(", ") }
        )));
    };
    if let Some((key, _)) = req.env.iter().find(|(k, _)| forbidden_env(k)) {
        return Err(ExecError::NotPermitted(format!("the environment variable {key:?} may not be set by a plugin")));
    }
    let workdir = tempfile::Builder::new()
        .prefix("metalhost-exec-")
        .tempdir()
        .map_err(|e| ExecError::SpawnFailed(format!("private working dir: {e}")))?;
    for (name, contents) in req.files {
        let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
        if !plain {
            return Err(ExecError::NotPermitted(format!("file name {name:?} must be a plain relative name")));
        }
        write_private(&workdir.path().join(name), contents).map_err(|e| ExecError::SpawnFailed(format!("write {name}: {e}")))?;
    }
    let remaining = req.deadline.saturating_duration_since(Instant::now());
    let timeout = req.timeout.min(remaining);
    let mut command = tokio::process::Command::new(path);
    command
        .args(req.args)
        .env_clear()
        .env("PATH", CHILD_PATH)
        .envs(req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(workdir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| ExecError::SpawnFailed(format!("cannot start {}: {e}", path.display())))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let collect = async {
        let (out, err) = tokio::join!(read_capped(stdout), read_capped(stderr));
        let status = child.wait().await;
        (out, err, status)
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok((stdout, stderr, status)) => {
            let status = status.map_err(|e| ExecError::SpawnFailed(format!("waiting for {}: {e}", path.display())))?;
            Ok(Output { status: status.code().unwrap_or(-1), stdout, stderr })
        }
        Err(_) => Err(ExecError::TimedOut(format!("{} did not finish within {} ms and was killed", req.program, timeout.as_millis()))),
    }
}

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let Some(pipe) = pipe else { return String::new() };
    let mut buf = Vec::new();
    let mut limited = pipe.take(OUTPUT_CAP);
    let _ = limited.read_to_end(&mut buf).await;
    // Drain the rest so the child does not block on a full pipe.
    let mut rest = limited.into_inner();
    let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
    String::from_utf8_lossy(&buf).into_owned()
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants() -> BTreeMap<String, PathBuf> {
        let (name, path) = resolve("sh").expect("sh on PATH");
        [(name, path)].into()
    }

    async fn sh(script: &str, env: &[(String, String)], files: &[(String, String)], budget: Duration) -> Result<Output, ExecError> {
        let granted = grants();
        let args = ["-c".to_owned(), script.to_owned()];
        run(Request { plugin: "t", granted: &granted, program: "sh", args: &args, env, files, timeout: Duration::from_secs(30), deadline: Instant::now() + budget })
            .await
    }

    #[tokio::test]
    async fn the_child_sees_only_a_fixed_path_and_the_plugins_env() {
        // The test process has HOME, RUST_BACKTRACE and more: none may reach the child.
        let out = sh("env | sort", &[("IPMI_PASSWORD".into(), "pw".into())], &[], Duration::from_secs(10)).await.expect("run");
        let mut vars: Vec<&str> = out.stdout.lines().filter_map(|l| l.split('=').next()).collect();
        vars.retain(|v| !matches!(*v, "PWD" | "SHLVL" | "_" | "OLDPWD"));
        assert_eq!(vars, ["IPMI_PASSWORD", "PATH"], "{}", out.stdout);
        assert!(out.stdout.contains(&format!("PATH={CHILD_PATH}")));
    }

    #[tokio::test]
    async fn the_working_dir_is_private_holds_the_files_and_is_deleted() {
        let files = [("secret.conf".to_owned(), "password x\n".to_owned())];
        let out = sh("pwd; stat -c %a secret.conf; cat secret.conf; cat /dev/stdin", &[], &files, Duration::from_secs(10)).await.expect("run");
        let mut lines = out.stdout.lines();
        let dir = PathBuf::from(lines.next().expect("pwd"));
        assert!(dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("metalhost-exec-")), "{}", dir.display());
        assert_eq!(lines.next(), Some("600"));
        assert_eq!(lines.next(), Some("password x"));
        assert_eq!(lines.next(), None, "stdin must be empty");
        assert!(!dir.exists(), "the private dir must be removed afterwards");
    }

    #[tokio::test]
    async fn output_is_capped() {
        let out = sh("head -c 3000000 /dev/zero | tr '\\0' a", &[], &[], Duration::from_secs(10)).await.expect("run");
        assert_eq!(out.stdout.len() as u64, OUTPUT_CAP);
        assert_eq!(out.status, 0);
    }

    #[tokio::test]
    async fn the_timeout_is_clamped_to_the_call_budget() {
        let started = Instant::now();
        let err = sh("sleep 20", &[], &[], Duration::from_millis(300)).await.expect_err("must time out");
        assert!(matches!(err, ExecError::TimedOut(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn ungranted_programs_paths_and_loader_variables_are_refused() {
        let granted = grants();
        let deadline = Instant::now() + Duration::from_secs(5);
        for program in ["bash", "/bin/sh", "./sh", "../bin/sh"] {
            let req = Request { plugin: "t", granted: &granted, program, args: &[], env: &[], files: &[], timeout: Duration::from_secs(1), deadline };
            assert!(matches!(run(req).await, Err(ExecError::NotPermitted(_))), "{program}");
        }
        let err = sh("true", &[("LD_PRELOAD".into(), "/tmp/x.so".into())], &[], Duration::from_secs(5)).await.expect_err("refused");
        assert!(matches!(err, ExecError::NotPermitted(_)));
        let err = sh("true", &[], &[("../escape".into(), "x".into())], Duration::from_secs(5)).await.expect_err("refused");
        assert!(matches!(err, ExecError::NotPermitted(_)));
    }

    #[test]
    fn absolute_grants_are_named_by_their_file_name() {
        let (name, path) = resolve("sh").expect("sh");
        let (again, same) = resolve(path.to_str().expect("utf-8")).expect("absolute");
        assert_eq!((name.as_str(), &path), (again.as_str(), &same));
        assert!(resolve("no-such-program-xyz").is_err());
        assert!(resolve("bin/sh").is_err());
    }
}
