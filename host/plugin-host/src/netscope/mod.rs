//! The network scope of every program the daemon runs for a plugin (ARCHITECTURE.md,
//! "plugin-host"): exec'd programs and consoles reach the call's BMC address and port and nothing
//! else, whatever their arguments say.
//!
//! Each program runs in a cgroup v2 of its own, made for the call under the daemon's own cgroup,
//! with BPF programs attached that the kernel runs on every socket operation of every process in
//! it: `connect` and UDP `sendmsg` (IPv4 and IPv6) must name one of the call's BMC addresses and
//! its port; `bind` may only ask for an ephemeral port; only TCP and UDP sockets can be created;
//! Unix sockets connect and send nowhere (Linux 6.7+).
//! The kernel compares binary addresses, so no spelling of an address gets past it (a v4-mapped
//! IPv6 address is the same address). The filters (`filters.rs`) are a few instructions with the
//! addresses as constants, loaded per call. `listen` (and io_uring, which could listen past the
//! syscall filter) is refused by `confine.rs`'s seccomp filter. With `confine.rs`, the only
//! modules with `unsafe`.
#![allow(unsafe_code)]

mod filters;

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Why a call's scope could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("the kernel cannot scope programs' network: {0}")]
    Unavailable(String),
    #[error("cannot create the call's cgroup {}: {source}", path.display())]
    Cgroup { path: PathBuf, source: io::Error },
    #[error("the kernel refused the {hook} filter: {source}")]
    Load { hook: &'static str, source: io::Error },
    #[error("cannot attach the {hook} filter to {}: {source}", path.display())]
    Attach { hook: &'static str, path: PathBuf, source: io::Error },
}

/// Makes per-call scopes; resolved once at start. `base` is `None` when this kernel or this
/// daemon's privileges cannot scope (the reason is kept for the start log and `plugin list`).
#[derive(Debug, Clone)]
pub struct NetScoper {
    base: Result<Arc<Base>, String>,
}

/// This process's parent cgroup of every call's cgroup: `<own cgroup>/metalhost-scope-<pid>`,
/// shared by every plugin host of the process, removed with the last one.
#[derive(Debug)]
struct Base {
    dir: PathBuf,
}

impl Drop for Base {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

static BASE: Mutex<Weak<Base>> = Mutex::new(Weak::new());
static CALLS: AtomicU64 = AtomicU64::new(0);

impl NetScoper {
    /// Finds the cgroup v2 hierarchy and this process's place in it, removes what daemons that
    /// died left there, and proves the mechanism with one filter attached and removed.
    pub fn probe() -> NetScoper {
        NetScoper { base: shared_base().map_err(|e| e.to_string()) }
    }

    /// A scoper that says it scopes, for tests of what is shown (its cgroup does not exist).
    #[cfg(test)]
    pub(crate) fn pretend() -> NetScoper {
        NetScoper { base: Ok(Arc::new(Base { dir: PathBuf::from("/nonexistent/metalhost-scope-test") })) }
    }

    /// A scoper that never scopes (the reason is shown as the kernel's).
    #[cfg(test)]
    pub(crate) fn unavailable(reason: &str) -> NetScoper {
        NetScoper { base: Err(reason.to_owned()) }
    }

    /// What the start log and `plugin list` say: the mechanism, or why there is none.
    pub fn mechanism(&self) -> Result<&'static str, &str> {
        match &self.base {
            Ok(_) => Ok("bpf cgroup (connect, sendmsg, bind, socket, unix)"),
            Err(reason) => Err(reason),
        }
    }

    /// A fresh cgroup whose processes may connect and send to `allowed` only.
    pub fn scope(&self, allowed: &[SocketAddr]) -> Result<CallScope, ScopeError> {
        let base = self.base.as_ref().map_err(|r| ScopeError::Unavailable(r.clone()))?;
        let dir = base.dir.join(format!("call-{}", CALLS.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&dir).map_err(|source| ScopeError::Cgroup { path: dir.clone(), source })?;
        // From here on, dropping the scope removes the cgroup again.
        let mut scope = CallScope { dir, cgroup: None, procs: None, base: base.clone() };
        let cgroup = File::open(&scope.dir).map_err(|source| ScopeError::Cgroup { path: scope.dir.clone(), source })?;
        for filter in filters::filters(allowed) {
            let prog = match filters::load(&filter) {
                Ok(prog) => prog,
                Err(e) if filter.optional && e.raw_os_error() == Some(libc::EINVAL) => continue,
                Err(source) => return Err(ScopeError::Load { hook: filter.hook, source }),
            };
            filters::attach(&cgroup, &prog, filter.attach_type).map_err(|source| ScopeError::Attach {
                hook: filter.hook,
                path: scope.dir.clone(),
                source,
            })?;
        }
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(scope.dir.join("cgroup.procs"))
            .map_err(|source| ScopeError::Cgroup { path: scope.dir.clone(), source })?;
        scope.procs = Some(procs.into());
        scope.cgroup = Some(cgroup.into());
        Ok(scope)
    }
}

/// One call's cgroup. A program joins it before exec ([`CallScope::procs_fd`], written by the
/// forked child); dropping it kills whatever is still inside and removes the cgroup.
#[derive(Debug)]
pub struct CallScope {
    dir: PathBuf,
    cgroup: Option<OwnedFd>,
    procs: Option<OwnedFd>,
    base: Arc<Base>,
}

impl CallScope {
    /// The open `cgroup.procs` of the call's cgroup: writing "0" to it moves the writer in. The
    /// kernel checks the opener's (the daemon's) rights, so the child may already be unprivileged.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// The open cgroup dir, for [`fork_into`].
    pub fn cgroup_fd(&self) -> RawFd {
        self.cgroup.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

/// `struct clone_args` of clone3(2), up to `cgroup`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Called in a forked child before exec: clones the process straight into the cgroup `cgroup`
/// (no migration, which would wait for an RCU grace period) and returns in the clone, which goes
/// on to exec the program. The forked child itself closes every fd (so nothing waits on pipes it
/// holds), waits for the program and ends as it ended, in the same process group (killed with
/// it). It is still the daemon's user: the clone needs the daemon's rights on the cgroup, and
/// the program switches user afterwards. Only async-signal-safe syscalls, no allocation.
pub(crate) fn fork_into(cgroup: RawFd) -> io::Result<()> {
    let args = CloneArgs { flags: CLONE_INTO_CGROUP, exit_signal: libc::SIGCHLD as u64, cgroup: cgroup as u64, ..CloneArgs::default() };
    // SAFETY: clone3 without CLONE_VM is a fork: the clone gets a copy of this (single-threaded,
    // freshly forked) process and returns here with 0.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>()) };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        return Ok(());
    }
    let pid = pid as libc::pid_t;
    // SAFETY: close_range, waitpid, signal, kill, getpid and _exit with integer arguments and a
    // local status; this process never returns to the caller.
    unsafe {
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        let mut status = 0;
        loop {
            let waited = libc::waitpid(pid, &mut status, 0);
            if waited == pid {
                break;
            }
            if waited < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        let signal = libc::WTERMSIG(status);
        libc::signal(signal, libc::SIG_DFL);
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal)
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        self.procs = None;
        // Whatever is still inside dies (cgroup.kill, Linux 5.14+; the process group kill covers
        // older kernels), then the empty cgroup is removed; exiting takes a moment, so a busy
        // cgroup is retried off the caller's thread.
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        if std::fs::remove_dir(&self.dir).is_ok() {
            return;
        }
        let dir = std::mem::take(&mut self.dir);
        let base = self.base.clone();
        let retry = move || {
            for _ in 0..200 {
                std::thread::sleep(Duration::from_millis(25));
                match std::fs::remove_dir(&dir) {
                    Ok(()) => return,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                    Err(_) => {}
                }
            }
            tracing::warn!(cgroup = %dir.display(), "a call's cgroup could not be removed: processes are still inside");
            drop(base);
        };
        // Off the async workers: the retry sleeps.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(retry)),
            Err(_) => drop(std::thread::Builder::new().name("cgroup-reaper".into()).spawn(retry)),
        }
    }
}

/// The call's BMC as socket addresses: an address literal as it is, a name as it resolves now
/// (the program itself cannot ask DNS: that would be a way out).
pub async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if found.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address")));
    }
    Ok(found)
}

fn shared_base() -> Result<Arc<Base>, ScopeError> {
    let mut shared = BASE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(base) = shared.upgrade() {
        return Ok(base);
    }
    let parent = own_cgroup()?;
    sweep(&parent);
    let dir = parent.join(format!("metalhost-scope-{}", std::process::id()));
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(ScopeError::Cgroup { path: dir, source }),
    }
    let base = Arc::new(Base { dir });
    // One filter attached to a scratch cgroup and removed: loading and attaching both work here.
    let probe = NetScoper { base: Ok(base.clone()) };
    drop(probe.scope(&[])?);
    *shared = Arc::downgrade(&base);
    Ok(base)
}

/// This process's cgroup in the v2 hierarchy (`/sys/fs/cgroup` on a unified system,
/// `/sys/fs/cgroup/unified` on a hybrid one).
fn own_cgroup() -> Result<PathBuf, ScopeError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| ScopeError::Unavailable(format!("/proc/self/mountinfo: {e}")))?;
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER": the v2 mount's root is
    // "/" unless this process is in a cgroup namespace.
    let mount = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            (right.split(' ').next() == Some("cgroup2")).then(|| (fields.get(3).copied(), fields.get(4).copied()))
        })
        .find_map(|(root, point)| (root == Some("/")).then_some(point).flatten())
        .ok_or_else(|| ScopeError::Unavailable("no cgroup v2 hierarchy is mounted".into()))?;
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| ScopeError::Unavailable(format!("/proc/self/cgroup: {e}")))?;
    let path =
        own.lines().find_map(|l| l.strip_prefix("0::")).ok_or_else(|| ScopeError::Unavailable("this process has no cgroup v2 membership".into()))?;
    Ok(Path::new(mount).join(path.trim_start_matches('/')))
}

/// Removes the scope cgroups of daemons that are gone (a crash leaves them behind). Another live
/// daemon's are left alone.
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("metalhost-scope-")).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(calls) = std::fs::read_dir(entry.path()) {
            for call in calls.flatten().filter(|c| c.path().is_dir()) {
                let _ = std::fs::write(call.path().join("cgroup.kill"), "1");
                let _ = std::fs::remove_dir(call.path());
            }
        }
        let _ = std::fs::remove_dir(entry.path());
    }
}
