//! Serial consoles (ARCHITECTURE.md, "plugin-host"): a 0.2.0 power plugin describes how to reach
//! a node's console (`describe-console`); the host runs that program itself, on a pty, only if the
//! operator granted it to the plugin for consoles, confined as exec'd programs are, with a cleared
//! environment plus the plugin's (where the BMC password goes, never argv).
//!
//! A [`ConsoleProcess`] is one running session; the daemon decides who watches it. Dropping it
//! kills the program's whole session; [`ConsoleProcess::close`] first writes the plugin's `quit`
//! bytes, so the BMC frees its console at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use crate::confine::{Confiner, GroupKill, Pty, async_master, open_pty, read_fd, write_fd};

const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a program may take to end after its `quit` bytes, before it is killed.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// What a plugin asked the host to run as a console (the contract's `console-command`).
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleCommand {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub quit: String,
}

/// Never prints the environment: it holds the BMC password.
impl std::fmt::Debug for ConsoleCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ConsoleCommand").field("program", &self.program).field("args", &self.args).field("env_keys", &keys).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The program is not in the plugin's console grant (or a key of its environment is one a
    /// plugin may not set).
    #[error("{0}")]
    NotPermitted(String),
    #[error("{0}")]
    SpawnFailed(String),
}

/// A running console program on a pty.
pub struct ConsoleProcess {
    master: AsyncFd<std::os::fd::OwnedFd>,
    child: tokio::process::Child,
    group: GroupKill,
    quit: Vec<u8>,
    /// The program's private working dir, removed when the session ends.
    _workdir: tempfile::TempDir,
    /// Its network scope: dropped last, after the session is killed.
    _scope: Option<crate::netscope::CallScope>,
}

/// Starts `command` on a new pty if the plugin was granted its program for consoles, able to
/// reach `reach` only (the call's BMC). `secrets` never reach the log.
pub fn spawn(
    plugin: &str,
    granted: &BTreeMap<String, PathBuf>,
    command: &ConsoleCommand,
    confiner: &Confiner,
    reach: &[SocketAddr],
    secrets: &[&str],
) -> Result<ConsoleProcess, ConsoleError> {
    let granted_path = if command.program.contains('/') { None } else { granted.get(&command.program) };
    let Some(path) = granted_path else {
        let allowed: Vec<&str> = granted.keys().map(String::as_str).collect();
        tracing::warn!(plugin, program = %command.program, "console refused: not granted");
        return Err(ConsoleError::NotPermitted(format!(
            "plugin {plugin:?} asked to run {:?} as a console, which is not in its console grant ({})",
            command.program,
            if allowed.is_empty() { "nothing: add console = [\"ipmitool\"] to its [[plugin]] entry".to_owned() } else { allowed.join(", ") }
        )));
    };
    if let Some((key, _)) = command.env.iter().find(|(k, _)| crate::exec::forbidden_env(k)) {
        return Err(ConsoleError::NotPermitted(format!("the environment variable {key:?} may not be set by a plugin")));
    }
    let spawn_failed = |what: &str, e: std::io::Error| ConsoleError::SpawnFailed(format!("console {what} for {}: {e}", path.display()));
    let workdir = tempfile::Builder::new().prefix("metalhost-console-").tempdir().map_err(|e| spawn_failed("working dir", e))?;
    let Pty { master, slave } = open_pty().map_err(|e| spawn_failed("pty", e))?;
    let stdio = |fd: &std::os::fd::OwnedFd| fd.try_clone().map(std::process::Stdio::from).map_err(|e| spawn_failed("pty", e));
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(&command.args)
        .env_clear()
        .env("PATH", CHILD_PATH)
        .env("HOME", workdir.path())
        .env("TMPDIR", workdir.path())
        .env("TERM", "vt100")
        .envs(command.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(workdir.path())
        .stdin(stdio(&slave)?)
        .stdout(stdio(&slave)?)
        .stderr(stdio(&slave)?)
        .kill_on_drop(true);
    let scope = confiner.scope(reach).map_err(|e| ConsoleError::SpawnFailed(format!("console network scope for {}: {e}", path.display())))?;
    confiner.apply_terminal(&mut cmd, workdir.path(), path, scope.as_ref()).map_err(|e| spawn_failed("confinement", e))?;
    let child = cmd.spawn().map_err(|e| spawn_failed("start", e))?;
    // The child holds its copies; ours would keep the master readable after the child exits.
    drop(slave);
    let group = GroupKill(child.id());
    let master = async_master(master).map_err(|e| spawn_failed("pty", e))?;
    let args = crate::console_args::redacted(&command.args, secrets);
    tracing::info!(plugin, program = %command.program, args = ?args, pid = child.id(), "console started");
    Ok(ConsoleProcess { master, child, group, quit: command.quit.clone().into_bytes(), _workdir: workdir, _scope: scope })
}

impl std::fmt::Debug for ConsoleProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleProcess").field("pid", &self.child.id()).finish_non_exhaustive()
    }
}

impl ConsoleProcess {
    /// What the program printed; 0 once it has exited (the pty reports EIO then).
    pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| read_fd(fd.get_ref(), buf)) {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Types `bytes` at the console.
    pub async fn write_all(&self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| write_fd(fd.get_ref(), bytes)) {
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Ends the session: the plugin's `quit` bytes, a short wait, then the whole session is
    /// killed (whatever the program started too).
    pub async fn close(mut self) {
        if !self.quit.is_empty() {
            let quit = std::mem::take(&mut self.quit);
            let _ = tokio::time::timeout(QUIT_GRACE, self.write_all(&quit)).await;
            let _ = tokio::time::timeout(QUIT_GRACE, self.child.wait()).await;
        }
        drop(self);
    }
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        drop(GroupKill(self.group.0.take()));
        // Reaped here when it is already gone; kill_on_drop and tokio's orphan reaper do the rest.
        let _ = self.child.try_wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confiner() -> Confiner {
        Confiner::new(&crate::confine::ExecPolicy { allow_unconfined: true, ..Default::default() }).expect("confiner")
    }

    fn granted(name: &str) -> BTreeMap<String, PathBuf> {
        let (name, path) = crate::exec::resolve(name).expect("on PATH");
        [(name, path)].into()
    }

    async fn read_until(console: &ConsoleProcess, needle: &str) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        let reading = async {
            loop {
                let n = console.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), reading).await;
        String::from_utf8_lossy(&seen).into_owned()
    }

    fn sh(script: &str, env: &[(&str, &str)]) -> ConsoleCommand {
        ConsoleCommand {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            quit: String::new(),
        }
    }

    #[tokio::test]
    async fn a_console_runs_on_a_terminal_it_controls_and_echoes_what_is_typed() {
        let script = "if [ -t 0 ] && [ -t 1 ]; then echo on-a-tty; fi; echo \"pw=$IPMI_PASSWORD\"; read line; echo \"got:$line\"";
        let console = spawn("t", &granted("sh"), &sh(script, &[("IPMI_PASSWORD", "pw-in-env")]), &confiner(), &[], &[]).expect("spawn");
        let out = read_until(&console, "pw=").await;
        assert!(out.contains("on-a-tty"), "{out}");
        console.write_all(b"hello\r").await.expect("type");
        let out = read_until(&console, "got:hello").await;
        assert!(out.contains("got:hello"), "{out}");
        // At end of output, a read says so instead of blocking or failing.
        let rest = read_until(&console, "\u{0}never").await;
        assert!(!rest.contains("got:"), "{rest}");
    }

    #[tokio::test]
    async fn a_program_outside_the_console_grant_is_refused() {
        let err = spawn("t", &granted("sh"), &ConsoleCommand { program: "cat".into(), ..sh("", &[]) }, &confiner(), &[], &[]).expect_err("refused");
        assert!(err.to_string().contains("\"cat\"") && err.to_string().contains("console grant (sh)"), "{err}");
        let err =
            spawn("t", &granted("sh"), &ConsoleCommand { program: "/bin/sh".into(), ..sh("", &[]) }, &confiner(), &[], &[]).expect_err("refused");
        assert!(matches!(err, ConsoleError::NotPermitted(_)), "{err}");
        let err = spawn("t", &granted("sh"), &sh("true", &[("LD_PRELOAD", "/tmp/x.so")]), &confiner(), &[], &[]).expect_err("refused");
        assert!(err.to_string().contains("LD_PRELOAD"), "{err}");
    }

    #[tokio::test]
    async fn closing_sends_quit_and_kills_what_the_program_started() {
        let script = "sleep 600 & echo \"child=$!\"; read q; echo \"quit:$q\"; sleep 600";
        let mut command = sh(script, &[]);
        command.quit = "bye\r".into();
        let console = spawn("t", &granted("sh"), &command, &confiner(), &[], &[]).expect("spawn");
        let out = read_until(&console, "\n").await;
        let child: String = out.split("child=").nth(1).expect("child pid").chars().take_while(char::is_ascii_digit).collect();
        let pid = console.pid().expect("pid");
        console.close().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for p in [pid.to_string(), child] {
            let alive =
                std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'));
            assert!(!alive, "process {p} outlived the console");
        }
    }

    #[tokio::test]
    async fn a_console_program_reaches_its_bmc_only() {
        let udp = || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
            s
        };
        let (bmc, other) = (udp(), udp());
        let port = |s: &std::net::UdpSocket| s.local_addr().expect("addr").port();
        let script = format!("echo leak > /dev/udp/127.0.0.1/{}; echo hello > /dev/udp/127.0.0.1/{}; echo done", port(&other), port(&bmc));
        let command = ConsoleCommand { program: "bash".into(), ..sh(&script, &[]) };
        let reach = [bmc.local_addr().expect("addr")];
        let confiner = Confiner::new(&crate::confine::ExecPolicy::default()).expect("confiner");
        let console = spawn("t", &granted("bash"), &command, &confiner, &reach, &[]).expect("spawn");
        let out = read_until(&console, "done").await;
        let mut buf = [0u8; 64];
        assert!(other.recv(&mut buf).is_err(), "another port was reached: {out}");
        assert_eq!(bmc.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()), Some("hello\n".into()), "{out}");
    }

    #[test]
    fn debug_never_shows_the_environment() {
        let text = format!("{:?}", sh("x", &[("IPMI_PASSWORD", "pw-in-env")]));
        assert!(!text.contains("pw-in-env") && text.contains("IPMI_PASSWORD"), "{text}");
    }
}
