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
//! IPv6 address is the same address). The programs are a few instructions with the addresses as
//! constants, assembled here and loaded per call. `listen` (and io_uring, which could listen past
//! the syscall filter) is refused by `confine.rs`'s seccomp filter. With the only module beside
//! `confine.rs` that has `unsafe`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
        for filter in filters(allowed) {
            let prog = match load(&filter) {
                Ok(prog) => prog,
                Err(e) if filter.optional && e.raw_os_error() == Some(libc::EINVAL) => continue,
                Err(source) => return Err(ScopeError::Load { hook: filter.hook, source }),
            };
            attach(&cgroup, &prog, filter.attach_type).map_err(|source| ScopeError::Attach { hook: filter.hook, path: scope.dir.clone(), source })?;
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

// --- The filters ---------------------------------------------------------------------------

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const PROG_TYPE_CGROUP_SOCK: u32 = 9;
const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const ATTACH_INET_SOCK_CREATE: u32 = 2;
const ATTACH_INET4_BIND: u32 = 8;
const ATTACH_INET6_BIND: u32 = 9;
const ATTACH_INET4_CONNECT: u32 = 10;
const ATTACH_INET6_CONNECT: u32 = 11;
const ATTACH_UDP4_SENDMSG: u32 = 14;
const ATTACH_UDP6_SENDMSG: u32 = 15;
/// Linux 6.7+: Unix socket addresses; older kernels have no such hook (and no filter for them).
const ATTACH_UNIX_CONNECT: u32 = 49;
const ATTACH_UNIX_SENDMSG: u32 = 50;

/// `struct bpf_sock_addr` offsets: the destination as the program asked for it, in network
/// byte order.
const USER_IP4: i16 = 4;
const USER_IP6: i16 = 8;
const USER_PORT: i16 = 24;
/// `struct bpf_sock` offsets.
const SOCK_TYPE: i16 = 8;
const SOCK_PROTOCOL: i16 = 12;

/// One BPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

/// A filter for one hook, ready to load.
#[derive(Debug)]
struct Filter {
    hook: &'static str,
    prog_type: u32,
    attach_type: u32,
    insns: Vec<Insn>,
    /// A kernel without this hook scopes without it.
    optional: bool,
}

/// A tiny assembler: loads from the context, 32-bit compares against constants, forward jumps
/// to labels, and returns.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    /// (instruction index, label) of each jump to patch.
    jumps: Vec<(usize, usize)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn bind(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }

    /// r2 = *(u32 *)(r1 + off): r1 is the context.
    fn load_ctx(&mut self, off: i16) {
        self.insns.push(Insn { code: 0x61, regs: 2 | (1 << 4), off, imm: 0 });
    }

    /// if (u32)r2 != value goto label.
    fn jne(&mut self, value: u32, label: usize) {
        self.jumps.push((self.insns.len(), label));
        self.insns.push(Insn { code: 0x56, regs: 2, off: 0, imm: value as i32 });
    }

    /// return value.
    fn ret(&mut self, value: i32) {
        self.insns.push(Insn { code: 0xb7, regs: 0, off: 0, imm: value });
        self.insns.push(Insn { code: 0x95, regs: 0, off: 0, imm: 0 });
    }

    fn finish(mut self) -> Vec<Insn> {
        for (at, label) in self.jumps {
            let target = self.labels[label].unwrap_or(self.insns.len());
            self.insns[at].off = i16::try_from(target as isize - at as isize - 1).unwrap_or(i16::MAX);
        }
        self.insns
    }
}

/// The destination port as the context holds it: the network-order u16, zero-extended.
fn port_word(port: u16) -> u32 {
    u32::from(u16::from_ne_bytes(port.to_be_bytes()))
}

/// Allows a destination that is one of `allowed` (address words and port), denies the rest.
fn destination_filter(allowed: &[(Vec<(i16, u32)>, u16)]) -> Vec<Insn> {
    let mut asm = Asm::default();
    for (words, port) in allowed {
        let next = asm.label();
        for (off, word) in words {
            asm.load_ctx(*off);
            asm.jne(*word, next);
        }
        asm.load_ctx(USER_PORT);
        asm.jne(port_word(*port), next);
        asm.ret(1);
        asm.bind(next);
    }
    asm.ret(0);
    asm.finish()
}

/// Allows a bind to an ephemeral port only: a program may pick its source address, never a
/// port another host could reach it on.
fn bind_filter() -> Vec<Insn> {
    let mut asm = Asm::default();
    let deny = asm.label();
    asm.load_ctx(USER_PORT);
    asm.jne(0, deny);
    asm.ret(1);
    asm.bind(deny);
    asm.ret(0);
    asm.finish()
}

/// Allows TCP stream and UDP datagram sockets only: no ICMP, SCTP, MPTCP, UDP-Lite or raw ones,
/// whose sends the destination hooks would not all see.
fn socket_filter() -> Vec<Insn> {
    let mut asm = Asm::default();
    let not_tcp = asm.label();
    let deny = asm.label();
    asm.load_ctx(SOCK_TYPE);
    asm.jne(libc::SOCK_STREAM as u32, not_tcp);
    asm.load_ctx(SOCK_PROTOCOL);
    asm.jne(libc::IPPROTO_TCP as u32, deny);
    asm.ret(1);
    asm.bind(not_tcp);
    asm.jne(libc::SOCK_DGRAM as u32, deny);
    asm.load_ctx(SOCK_PROTOCOL);
    asm.jne(libc::IPPROTO_UDP as u32, deny);
    asm.ret(1);
    asm.bind(deny);
    asm.ret(0);
    asm.finish()
}

fn words(bytes: &[u8], base: i16) -> Vec<(i16, u32)> {
    bytes.chunks(4).zip((base..).step_by(4)).map(|(c, off)| (off, u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))).collect()
}

/// Every hook's filter for a call that may reach `allowed`. An IPv4 BMC is also allowed as its
/// v4-mapped IPv6 address (an IPv6 socket connecting to it); nothing else.
fn filters(allowed: &[SocketAddr]) -> Vec<Filter> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for addr in allowed {
        match addr.ip() {
            IpAddr::V4(ip) => {
                v4.push((words(&ip.octets(), USER_IP4), addr.port()));
                v6.push((words(&ip.to_ipv6_mapped().octets(), USER_IP6), addr.port()));
            }
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(mapped) => {
                    v4.push((words(&mapped.octets(), USER_IP4), addr.port()));
                    v6.push((words(&ip.octets(), USER_IP6), addr.port()));
                }
                None => v6.push((words(&ip.octets(), USER_IP6), addr.port())),
            },
        }
    }
    let addr = |hook, attach_type, insns| Filter { hook, prog_type: PROG_TYPE_CGROUP_SOCK_ADDR, attach_type, insns, optional: false };
    let deny = || {
        let mut asm = Asm::default();
        asm.ret(0);
        asm.finish()
    };
    vec![
        Filter { hook: "socket", prog_type: PROG_TYPE_CGROUP_SOCK, attach_type: ATTACH_INET_SOCK_CREATE, insns: socket_filter(), optional: false },
        addr("connect4", ATTACH_INET4_CONNECT, destination_filter(&v4)),
        addr("sendmsg4", ATTACH_UDP4_SENDMSG, destination_filter(&v4)),
        addr("connect6", ATTACH_INET6_CONNECT, destination_filter(&v6)),
        addr("sendmsg6", ATTACH_UDP6_SENDMSG, destination_filter(&v6)),
        addr("bind4", ATTACH_INET4_BIND, bind_filter()),
        addr("bind6", ATTACH_INET6_BIND, bind_filter()),
        // No Unix socket of another process either (a local daemon, abstract or by path).
        Filter { optional: true, ..addr("unix_connect", ATTACH_UNIX_CONNECT, deny()) },
        Filter { optional: true, ..addr("unix_sendmsg", ATTACH_UNIX_SENDMSG, deny()) },
    ]
}

/// `union bpf_attr` as BPF_PROG_LOAD reads it (up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` as BPF_PROG_ATTACH reads it.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn load(filter: &Filter) -> io::Result<OwnedFd> {
    let license = CString::new("Apache-2.0").map_err(io::Error::other)?;
    let mut name = [0u8; 16];
    for (slot, byte) in name.iter_mut().zip(format!("mh_{}", filter.hook).bytes().take(15)) {
        *slot = byte;
    }
    let attr = ProgLoadAttr {
        prog_type: filter.prog_type,
        insn_cnt: u32::try_from(filter.insns.len()).map_err(io::Error::other)?,
        insns: filter.insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: filter.attach_type,
        ..ProgLoadAttr::default()
    };
    // SAFETY: attr is a valid, fully initialised bpf_attr prefix of the size passed; the
    // instructions and license it points at outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &attr as *const ProgLoadAttr, size_of::<ProgLoadAttr>()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches without BPF_F_ALLOW_OVERRIDE or MULTI: nothing below the call's cgroup can replace or
/// add to its filters. The cgroup keeps the program; the fd may close.
fn attach(cgroup: &File, prog: &OwnedFd, attach_type: u32) -> io::Result<()> {
    let attr =
        ProgAttachAttr { target_fd: cgroup.as_raw_fd() as u32, attach_bpf_fd: prog.as_raw_fd() as u32, attach_type, ..ProgAttachAttr::default() };
    // SAFETY: attr is a valid bpf_attr prefix of the size passed; both fds are open.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_ATTACH, &attr as *const ProgAttachAttr, size_of::<ProgAttachAttr>()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_their_labels() {
        let insns = bind_filter();
        // load, jne +2, mov r0 1, exit, mov r0 0, exit
        assert_eq!(insns.len(), 6);
        assert_eq!((insns[1].code, insns[1].off), (0x56, 2));
        assert_eq!((insns[4].code, insns[4].imm), (0xb7, 0));
    }

    #[test]
    fn ports_and_addresses_are_compared_as_the_kernel_holds_them() {
        assert_eq!(port_word(623).to_ne_bytes(), [0x02, 0x6f, 0, 0]);
        let v4 = words(&[127, 0, 0, 1], USER_IP4);
        assert_eq!(v4, [(4, u32::from_ne_bytes([127, 0, 0, 1]))]);
        let filters = filters(&["127.0.0.1:623".parse().expect("addr")]);
        // One address: its v4 filter checks one word and the port; its v6 one the mapped form.
        let connect6 = filters.iter().find(|f| f.hook == "connect6").expect("connect6");
        assert_eq!(connect6.insns.iter().filter(|i| i.code == 0x56).count(), 5);
    }
}
