//! The `exec` capability: run a granted program, never through a shell, with a cleared environment,
//! stdin closed, a private working dir, capped output and a timeout within the call's budget, confined
//! by [`crate::confine`] (its own user, process group, limits, Landlock and seccomp).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::confine::{Confiner, GroupKill};

/// Each of stdout and stderr is cut at this size.
pub const OUTPUT_CAP: u64 = 1 << 20;
const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves a granted program to the name the plugin uses and an absolute path, at load time.
/// An absolute path in the config is granted under its file name.
pub fn resolve(program: &str) -> Result<(String, PathBuf), String> {
    let candidate = Path::new(program);
    if candidate.is_absolute() {
        let name = candidate.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("granted program {program:?} has no file name"))?;
        return if candidate.is_file() {
            Ok((name.to_owned(), candidate.to_owned()))
        } else {
            Err(format!("granted program {program} does not exist"))
        };
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
pub(crate) fn forbidden_env(key: &str) -> bool {
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
    pub confiner: &'a Confiner,
    /// The only addresses the program may reach (the call's BMC; none for a call without one).
    pub reach: &'a [SocketAddr],
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
    let workdir =
        tempfile::Builder::new().prefix("metalhost-exec-").tempdir().map_err(|e| ExecError::SpawnFailed(format!("private working dir: {e}")))?;
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
        // Tools that look for a home or a temp dir find the private working dir.
        .env("HOME", workdir.path())
        .env("TMPDIR", workdir.path())
        .envs(req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(workdir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Lives until the program and whatever it started are gone; dropping it empties the cgroup.
    let scope = req.confiner.scope(req.reach).map_err(|e| ExecError::SpawnFailed(format!("cannot scope {}'s network: {e}", path.display())))?;
    req.confiner
        .apply(&mut command, workdir.path(), path, scope.as_ref())
        .map_err(|e| ExecError::SpawnFailed(format!("cannot confine {}: {e}", path.display())))?;
    let mut child = command.spawn().map_err(|e| ExecError::SpawnFailed(format!("cannot start {}: {e}", path.display())))?;
    // Whatever the program started dies with it: when it exits, times out, or the call is dropped.
    let group = GroupKill(child.id());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let collect = async {
        let waited = async {
            let status = child.wait().await;
            // Pipes held open by leftover descendants close when the group dies.
            drop(GroupKill(group.0));
            status
        };
        let (out, err, status) = tokio::join!(read_capped(stdout), read_capped(stderr), waited);
        (out, err, status)
    };
    let outcome = tokio::time::timeout(timeout, collect).await;
    drop(group);
    drop(scope);
    match outcome {
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

    fn confiner() -> Confiner {
        Confiner::new(&crate::confine::ExecPolicy::default()).expect("confiner")
    }

    async fn sh(script: &str, env: &[(String, String)], files: &[(String, String)], budget: Duration) -> Result<Output, ExecError> {
        let granted = grants();
        let args = ["-c".to_owned(), script.to_owned()];
        let confiner = confiner();
        let deadline = Instant::now() + budget;
        run(Request {
            plugin: "t",
            granted: &granted,
            program: "sh",
            args: &args,
            env,
            files,
            timeout: Duration::from_secs(30),
            deadline,
            confiner: &confiner,
            reach: &[],
        })
        .await
    }

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
    }

    /// Alive means running or sleeping; a killed process not yet reaped is a zombie.
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
    }

    /// `program` (from PATH) with `args`, able to reach `reach` only.
    async fn scoped(program: &str, args: &[String], reach: &[SocketAddr]) -> Output {
        let (name, path) = resolve(program).expect("on PATH");
        let granted: BTreeMap<String, PathBuf> = [(name.clone(), path)].into();
        let confiner = confiner();
        let req = Request {
            plugin: "t",
            granted: &granted,
            program: &name,
            args,
            env: &[],
            files: &[],
            timeout: Duration::from_secs(20),
            deadline: Instant::now() + Duration::from_secs(20),
            confiner: &confiner,
            reach,
        };
        run(req).await.expect("run")
    }

    fn received(socket: &std::net::UdpSocket) -> Vec<String> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).trim().to_owned());
        }
        seen
    }

    #[tokio::test]
    async fn programs_reach_the_calls_bmc_and_nothing_else_however_it_is_spelled() {
        let udp = |addr: &str| {
            let s = std::net::UdpSocket::bind(addr).expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
            s
        };
        let (bmc, other, other6) = (udp("127.0.0.1:0"), udp("127.0.0.1:0"), udp("[::1]:0"));
        let tcp_other = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
        tcp_other.set_nonblocking(true).expect("nonblocking");
        let port = |s: &std::net::UdpSocket| s.local_addr().expect("addr").port();
        let (bmc_port, other_port, other6_port) = (port(&bmc), port(&other), port(&other6));
        let tcp_port = tcp_other.local_addr().expect("addr").port();
        let script = format!(
            "for a in 127.0.0.1 127.1 2130706433 0x7f.0.0.1 ::ffff:127.0.0.1 ::ffff:7f00:1 localhost; do \
               echo $a > /dev/udp/$a/{other_port} && echo sent-$a; echo $a > /dev/tcp/$a/{tcp_port} && echo connected-$a; done; \
             echo v6 > /dev/udp/::1/{other6_port} && echo sent-v6; \
             echo to-bmc > /dev/udp/127.0.0.1/{bmc_port} && echo sent-bmc; \
             echo mapped-bmc > /dev/udp/::ffff:127.0.0.1/{bmc_port} && echo sent-mapped-bmc"
        );
        let reach = [bmc.local_addr().expect("addr")];
        let out = scoped("bash", &["-c".into(), script], &reach).await;
        assert!(received(&other).is_empty() && received(&other6).is_empty(), "another port was reached: {out:?}");
        assert!(tcp_other.accept().is_err(), "a TCP connection to another port got through: {out:?}");
        assert_eq!(received(&bmc), ["to-bmc", "mapped-bmc"], "{out:?}");
        assert_eq!(out.stdout.trim(), "sent-bmc\nsent-mapped-bmc", "{out:?}");
        assert!(out.stderr.contains("Operation not permitted"), "{out:?}");

        // No server: neither a fixed port nor listening on an ephemeral one, nor a raw or ICMP
        // socket; a call without a BMC reaches nothing at all.
        let python = [
            "import socket",
            "def t(what, make):",
            "    try:",
            "        make(); print(what, 'allowed')",
            "    except OSError as e:",
            "        print(what, 'refused', e.errno)",
            "t('bind', lambda: socket.socket().bind(('127.0.0.1', 40123)))",
            "t('listen', lambda: socket.socket().listen())",
            "t('icmp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))",
            "t('sctp', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132))",
            "t('vsock', lambda: socket.socket(40, socket.SOCK_STREAM))",
            "t('unix', lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'x', '/dev/log'))",
            "t('abstract', lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(b'\\0metalhost-test'))",
            "t('pair', lambda: (lambda pair: pair[0].send(b'x'))(socket.socketpair()))",
        ]
        .join("\n");
        let out = scoped("/usr/bin/python3", &["-c".into(), python], &reach).await;
        let refused: Vec<&str> = out.stdout.lines().filter(|l| l.contains("refused")).filter_map(|l| l.split(' ').next()).collect();
        assert_eq!(refused, ["bind", "listen", "icmp", "sctp", "vsock", "unix", "abstract"], "{out:?}");
        let out = scoped("bash", &["-c".into(), format!("echo x > /dev/udp/127.0.0.1/{bmc_port} && echo sent")], &[]).await;
        assert!(received(&bmc).is_empty() && !out.stdout.contains("sent"), "{out:?}");
    }

    #[tokio::test]
    async fn the_child_sees_only_a_fixed_path_and_the_plugins_env() {
        // The test process has HOME, RUST_BACKTRACE and more: none may reach the child.
        let out = sh("env | sort", &[("IPMI_PASSWORD".into(), "pw".into())], &[], Duration::from_secs(10)).await.expect("run");
        let mut vars: Vec<&str> = out.stdout.lines().filter_map(|l| l.split('=').next()).collect();
        vars.retain(|v| !matches!(*v, "PWD" | "SHLVL" | "_" | "OLDPWD"));
        assert_eq!(vars, ["HOME", "IPMI_PASSWORD", "PATH", "TMPDIR"], "{}", out.stdout);
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
            let confiner = confiner();
            let req = Request {
                plugin: "t",
                granted: &granted,
                program,
                args: &[],
                env: &[],
                files: &[],
                timeout: Duration::from_secs(1),
                deadline,
                confiner: &confiner,
                reach: &[],
            };
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

    #[tokio::test]
    async fn files_outside_the_system_dirs_cannot_be_read_even_when_world_readable() {
        // Made by the test (root in CI): one file only its owner reads, one anybody reads.
        let outside = tempfile::tempdir().expect("tmp");
        std::fs::set_permissions(outside.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let private = outside.path().join("root-only");
        let public = outside.path().join("world-readable");
        std::fs::write(&private, "first line of a secret\n").expect("write");
        std::fs::write(&public, "visible to all users\n").expect("write");
        std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        std::fs::set_permissions(&public, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
        let script = format!("cat {} ; cat {} ; cat /etc/shadow; echo done", private.display(), public.display());
        let out = sh(&script, &[], &[], Duration::from_secs(10)).await.expect("run");
        assert!(!out.stdout.contains("secret") && !out.stdout.contains("visible"), "read through: {}", out.stdout);
        assert_eq!(out.stderr.matches("Permission denied").count(), 3, "{}", out.stderr);
        assert!(out.stdout.contains("done"));
    }

    #[tokio::test]
    async fn nothing_can_be_written_outside_the_private_working_dir() {
        let outside = tempfile::tempdir().expect("tmp");
        // Even a dir anybody may write to is off limits.
        std::fs::set_permissions(outside.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
        let target = outside.path().join("dump");
        let script = format!("echo x > {}; echo y > /tmp/metalhost-escape-$$; echo z > inside && cat inside", target.display());
        let out = sh(&script, &[], &[], Duration::from_secs(10)).await.expect("run");
        assert!(!target.exists(), "a file was written outside: {}", target.display());
        assert_eq!(out.stderr.matches("Permission denied").count(), 2, "{}", out.stderr);
        assert_eq!(out.stdout.trim(), "z", "the working dir itself is writable");
    }

    #[tokio::test]
    async fn programs_run_unprivileged_with_limits() {
        let out = sh("id -u; ulimit -n; ulimit -f; ulimit -t; ulimit -c", &[], &[], Duration::from_secs(10)).await.expect("run");
        let lines: Vec<&str> = out.stdout.lines().collect();
        if is_root() {
            assert_eq!(lines.first(), Some(&"65534"), "{}", out.stdout);
        }
        // dash counts `ulimit -f` in 512-byte blocks: 16 MiB.
        assert_eq!(&lines[1..], ["64", "32768", "30", "0"], "{}", out.stdout);
    }

    #[tokio::test]
    async fn a_descendant_left_running_dies_with_the_call() {
        let out = sh("sleep 300 & echo $!", &[], &[], Duration::from_secs(10)).await.expect("run");
        let pid = out.stdout.trim().to_owned();
        assert!(!pid.is_empty());
        let until = Instant::now() + Duration::from_secs(5);
        while alive(&pid) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(&pid), "pid {pid} outlived the call");
    }

    #[tokio::test]
    async fn a_descendant_cannot_leave_the_process_group() {
        // setsid(1) forks and calls setsid(2), which the seccomp filter refuses.
        let out = sh("setsid sh -c 'echo $$; sleep 300' & sleep 0.5; echo started", &[], &[], Duration::from_secs(10)).await.expect("run");
        assert!(out.stderr.contains("Operation not permitted"), "setsid was allowed: {out:?}");
        for pid in out.stdout.lines().filter(|l| l.chars().all(|c| c.is_ascii_digit())) {
            assert!(!alive(pid), "pid {pid} escaped");
        }
    }

    #[tokio::test]
    async fn a_timed_out_program_and_its_children_are_killed() {
        let marker = format!("9{}.5", std::process::id());
        let err = sh(&format!("sh -c 'sleep {marker}; true' & sleep 300"), &[], &[], Duration::from_millis(500)).await.expect_err("must time out");
        assert!(matches!(err, ExecError::TimedOut(_)), "{err:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let survivors: Vec<_> = std::fs::read_dir("/proc")
            .expect("proc")
            .filter_map(|e| e.ok())
            .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker)))
            .filter(|e| alive(&e.file_name().to_string_lossy()))
            .collect();
        assert!(survivors.is_empty(), "a child outlived the timeout");
    }
}
