//! Confinement of the programs plugins run through `exec` (ARCHITECTURE.md, "plugin-host"): an
//! unprivileged user, its own process group killed as a whole, resource limits, `no_new_privs`, a
//! Landlock ruleset (read the system, write only the private working dir) and a seccomp filter that
//! keeps every descendant in that process group. The only module of the runtime with `unsafe`.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, path_beneath_rules};
use serde::{Deserialize, Serialize};

use crate::netscope::{CallScope, NetScoper, ScopeError};

/// The operator's `[exec]` section: how every program a plugin runs is confined.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecPolicy {
    /// The unprivileged user exec'd programs run as (a name or a number). Applied when the daemon
    /// runs as root; otherwise programs run as the daemon's own user.
    pub user: String,
    /// The group; default: the user's primary group.
    pub group: Option<String>,
    /// RLIMIT_CPU: CPU seconds per program.
    pub cpu_s: u64,
    /// RLIMIT_FSIZE: the largest file a program may write, in MiB.
    pub file_size_mb: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_NPROC for the exec user (only applied with a user switch: it counts per user).
    pub processes: u64,
    /// Extra paths programs may read and execute (a vendor tool under /opt, say).
    pub read_paths: Vec<PathBuf>,
    /// Run exec grants without Landlock when the kernel has none. Off: such plugins are refused.
    pub allow_unconfined: bool,
    /// Run exec and console grants without the network scope (`netscope/`) when the kernel or
    /// the daemon's privileges cannot scope them: their programs then reach any host. Off: such
    /// plugins are refused.
    pub allow_unscoped: bool,
}

impl Default for ExecPolicy {
    fn default() -> Self {
        ExecPolicy {
            user: "nobody".into(),
            group: None,
            cpu_s: 30,
            file_size_mb: 16,
            open_files: 64,
            processes: 64,
            read_paths: Vec::new(),
            allow_unconfined: false,
            allow_unscoped: false,
        }
    }
}

/// What running a granted tool needs to read: binaries, libraries, the loader's and resolver's
/// config, and the few tool configs (FreeIPMI's). Paths that do not exist are skipped.
const READ_PATHS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/lib32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/freeipmi",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
];
/// Devices a program may also write (discarded output).
const WRITE_DEVICES: &[&str] = &["/dev/null"];
/// The Landlock ABI the rules are written for; older kernels enforce what they know (best effort).
const TARGET_ABI: ABI = ABI::V5;

/// The confinement every exec of this daemon gets, resolved once at start; shown per plugin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Confinement {
    /// The kernel's Landlock ABI version; `None`: no Landlock, programs run without it.
    pub landlock_abi: Option<u32>,
    pub user: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
    /// False when the daemon is not root and programs run as its own user.
    pub user_switched: bool,
    pub no_new_privs: bool,
    /// Every program runs in its own process group, killed as a whole when the call ends.
    pub process_group: bool,
    pub cpu_s: u64,
    pub file_size_mb: u64,
    pub open_files: u64,
    pub processes: Option<u64>,
    /// How programs are kept to the call's BMC (`netscope/`); `None`: they are not, and reach
    /// any host. Absent from an older daemon's answer: read as `None`.
    #[serde(default)]
    pub network_scope: Option<String>,
}

impl Confinement {
    /// One line for the daemon's start log and the CLI's CONFINEMENT column.
    pub fn summary(&self) -> String {
        let landlock = match self.landlock_abi {
            Some(abi) => format!("landlock abi {abi}"),
            None => "NO LANDLOCK (unconfined)".to_owned(),
        };
        let user = if self.user_switched { format!("user {}:{}", self.user, self.group) } else { format!("user {} (daemon not root)", self.user) };
        let network = match &self.network_scope {
            Some(_) => "network: the call's BMC only",
            None => "NO NETWORK SCOPE (any host)",
        };
        format!("{landlock}, {network}, {user}, cpu {} s, file {} MiB, {} fds", self.cpu_s, self.file_size_mb, self.open_files)
    }
}

/// Applies the confinement to each command; holds what is resolved once (ids, limits, paths).
#[derive(Debug, Clone)]
pub struct Confiner {
    summary: Confinement,
    read_paths: Vec<PathBuf>,
    allow_unconfined: bool,
    allow_unscoped: bool,
    scoper: NetScoper,
}

impl Confiner {
    /// Resolves the policy against this machine: the kernel's Landlock, the user and group.
    pub fn new(policy: &ExecPolicy) -> Result<Confiner, String> {
        let scoper = NetScoper::probe();
        Confiner::resolve(policy, landlock_abi(), scoper, current_euid(), can_switch_user(), &read_file("/etc/passwd"), &read_file("/etc/group"))
    }

    /// The pure part of [`Confiner::new`], given what it reads from the machine.
    /// `privileged`: the daemon may change user (root, or CAP_SETUID and CAP_SETGID as the packaged
    /// unit grants a non-root daemon).
    fn resolve(
        policy: &ExecPolicy,
        landlock: Option<u32>,
        scoper: NetScoper,
        euid: u32,
        privileged: bool,
        passwd: &str,
        group_db: &str,
    ) -> Result<Confiner, String> {
        let (user, uid, mut gid) = if privileged {
            let (uid, gid) = lookup_user(passwd, &policy.user).ok_or_else(|| format!("[exec] user {:?} does not exist", policy.user))?;
            if uid == 0 {
                return Err("[exec] user must not be root: exec'd programs run unprivileged".into());
            }
            (policy.user.clone(), uid, gid)
        } else {
            let name = passwd.lines().filter_map(passwd_entry).find(|e| e.1 == euid).map_or_else(|| euid.to_string(), |e| e.0.to_owned());
            (name, euid, current_egid())
        };
        if privileged && let Some(group) = &policy.group {
            gid = lookup_group(group_db, group).ok_or_else(|| format!("[exec] group {group:?} does not exist"))?;
        }
        let group = group_db.lines().filter_map(group_entry).find(|e| e.1 == gid).map_or_else(|| gid.to_string(), |e| e.0.to_owned());
        let summary = Confinement {
            landlock_abi: landlock,
            user,
            uid,
            group,
            gid,
            user_switched: privileged,
            no_new_privs: true,
            process_group: true,
            cpu_s: policy.cpu_s,
            file_size_mb: policy.file_size_mb,
            open_files: policy.open_files,
            processes: privileged.then_some(policy.processes),
            network_scope: scoper.mechanism().ok().map(str::to_owned),
        };
        Ok(Confiner {
            summary,
            read_paths: policy.read_paths.clone(),
            allow_unconfined: policy.allow_unconfined,
            allow_unscoped: policy.allow_unscoped,
            scoper,
        })
    }

    pub fn summary(&self) -> &Confinement {
        &self.summary
    }

    /// Why a plugin with exec or console grants may not load here, if it may not.
    pub fn refusal(&self) -> Option<String> {
        if self.summary.landlock_abi.is_none() && !self.allow_unconfined {
            return Some(
                "exec grants need Landlock, which this kernel does not offer; set [exec] allow_unconfined = true to run them unconfined".to_owned(),
            );
        }
        match self.scoper.mechanism() {
            Err(reason) if !self.allow_unscoped => Some(format!(
                "exec and console grants need the network scope, which is not available here ({reason}); set [exec] allow_unscoped = true to let their programs reach any host"
            )),
            _ => None,
        }
    }

    /// Why programs run without the network scope here, if they do.
    pub fn scope_missing(&self) -> Option<&str> {
        self.scoper.mechanism().err()
    }

    /// A fresh network scope for one program: it may reach `allowed` and nothing else. `None`
    /// when the scope is unavailable and the operator opted out of it (`allow_unscoped`).
    pub fn scope(&self, allowed: &[std::net::SocketAddr]) -> Result<Option<CallScope>, ScopeError> {
        match self.scoper.scope(allowed) {
            Ok(scope) => Ok(Some(scope)),
            Err(ScopeError::Unavailable(_)) if self.allow_unscoped => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets up `command` to run confined with `workdir` as its only writable place. The working dir
    /// (and the files in it) are handed to the exec user first.
    /// `scope`: the program joins this cgroup before it runs (`netscope/`).
    pub fn apply(&self, command: &mut tokio::process::Command, workdir: &Path, program: &Path, scope: Option<&CallScope>) -> std::io::Result<()> {
        self.confine(command, workdir, program, Leader::Group, scope)
    }

    /// As [`Confiner::apply`], for a program that runs on a terminal (a serial console): its
    /// stdin, stdout and stderr must already be the pty's slave side. The program leads a new
    /// session with that terminal as its controlling one (so it gets a process group of its own
    /// as well), and has no CPU-time limit: a console stays open as long as someone watches it,
    /// and ends when the last viewer leaves.
    pub fn apply_terminal(
        &self,
        command: &mut tokio::process::Command,
        workdir: &Path,
        program: &Path,
        scope: Option<&CallScope>,
    ) -> std::io::Result<()> {
        self.confine(command, workdir, program, Leader::Session, scope)
    }

    fn confine(
        &self,
        command: &mut tokio::process::Command,
        workdir: &Path,
        program: &Path,
        leader: Leader,
        scope: Option<&CallScope>,
    ) -> std::io::Result<()> {
        let s = &self.summary;
        // The fds stay open while the scope lives, which is until the program has been reaped.
        // An exec'd program is cloned straight into its cgroup (cheap); a console moves itself
        // there (a cgroup migration waits for an RCU grace period, a few ms, which a console
        // opened once can afford, while the forked process waiting for a clone would keep a
        // copy-on-write image of the daemon as long as the console stays open).
        let join = scope.map(|scope| match leader {
            Leader::Group => Join::Clone(scope.cgroup_fd()),
            Leader::Session => Join::Move(scope.procs_fd()),
        });
        if s.user_switched {
            chown_tree(workdir, s.uid, s.gid)?;
        }
        // The user is switched in the hook, not by std before it: a program is cloned into its
        // cgroup with the daemon's rights first.
        let ids = s.user_switched.then_some((s.uid, s.gid));
        if leader == Leader::Group {
            // A session leader (below) gets its own group from setsid, which refuses to run in
            // a process that already leads one.
            command.process_group(0);
        }
        let ruleset = match s.landlock_abi {
            Some(_) => self.ruleset(workdir, program)?,
            None => None,
        };
        let mut limits = vec![
            (libc::RLIMIT_FSIZE, s.file_size_mb.saturating_mul(1 << 20)),
            (libc::RLIMIT_NOFILE, s.open_files),
            // No core dumps: a crashed tool's memory holds the BMC password.
            (libc::RLIMIT_CORE, 0),
        ];
        if leader == Leader::Group {
            limits.push((libc::RLIMIT_CPU, s.cpu_s));
        }
        if let Some(processes) = s.processes {
            limits.push((libc::RLIMIT_NPROC, processes));
        }
        let hook = move || -> std::io::Result<()> {
            // Runs in the forked child before exec: only async-signal-safe syscalls, no allocation.
            // Into the call's cgroup first, before anything can open a socket.
            match join {
                // SAFETY: write of one byte from a static buffer to an open fd.
                Some(Join::Move(procs)) if unsafe { libc::write(procs, b"0".as_ptr().cast(), 1) } != 1 => {
                    return Err(std::io::Error::last_os_error());
                }
                // Returns in the program's process only.
                Some(Join::Clone(cgroup)) => crate::netscope::fork_into(cgroup)?,
                _ => {}
            }
            if leader == Leader::Session {
                // Before the seccomp filter, which refuses setsid. stdin is the pty's slave.
                // SAFETY: setsid and ioctl with integer arguments only.
                if unsafe { libc::setsid() } < 0 || unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some((uid, gid)) = ids {
                // Raw syscalls: this process may be a raw clone, where libc's own wrappers would
                // try to reach threads it does not have. No supplementary groups, then gid, uid.
                // SAFETY: syscalls with integer arguments (a null list of length 0).
                unsafe {
                    if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0
                        || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
                        || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            for (resource, value) in &limits {
                let limit = libc::rlimit { rlim_cur: *value, rlim_max: *value };
                // SAFETY: setrlimit reads a valid rlimit struct; it only lowers this child's limits.
                if unsafe { libc::setrlimit(*resource, &limit) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // A daemon given ambient capabilities (the packaged unit) must not pass them on: with
            // no ambient set and no_new_privs, the program starts with no capabilities at all.
            // SAFETY: prctl with integer arguments only. Kernels before 4.3 lack it (EINVAL): ignored.
            unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = &ruleset {
                // SAFETY: the ruleset fd is open (owned by this closure) and flags are 0.
                if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let program = libc::sock_fprog { len: SECCOMP_FILTER.len() as u16, filter: SECCOMP_FILTER.as_ptr().cast_mut() };
            // SAFETY: the filter points at a static, well-formed BPF program; no_new_privs is set.
            if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program as *const libc::sock_fprog) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: the hook allocates nothing and makes only async-signal-safe calls (see above).
        unsafe { command.pre_exec(hook) };
        Ok(())
    }

    /// Built in the parent, per exec (the working dir differs each time): opening the paths
    /// allocates, which a forked child of a threaded process must not do.
    fn ruleset(&self, workdir: &Path, program: &Path) -> std::io::Result<Option<OwnedFd>> {
        let fail = |e: landlock::RulesetError| std::io::Error::other(format!("landlock ruleset: {e}"));
        let read = AccessFs::from_read(TARGET_ABI);
        let mut readable: Vec<PathBuf> = READ_PATHS.iter().map(PathBuf::from).collect();
        readable.extend(self.read_paths.iter().cloned());
        readable.push(program.to_owned());
        let created = Ruleset::default()
            .handle_access(AccessFs::from_all(TARGET_ABI))
            .map_err(fail)?
            .create()
            .map_err(fail)?
            .add_rules(path_beneath_rules(&readable, read))
            .map_err(fail)?
            .add_rules(path_beneath_rules(WRITE_DEVICES, AccessFs::ReadFile | AccessFs::WriteFile))
            .map_err(fail)?
            .add_rules(path_beneath_rules([workdir], AccessFs::from_all(TARGET_ABI)))
            .map_err(fail)?;
        Ok(created.into())
    }
}

/// How a program gets into its network scope's cgroup.
#[derive(Debug, Clone, Copy)]
enum Join {
    /// Cloned into it (the cgroup dir's fd).
    Clone(std::os::fd::RawFd),
    /// Moves itself in (its `cgroup.procs`).
    Move(std::os::fd::RawFd),
}

/// How a confined program is kept apart from the daemon's own processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leader {
    /// Its own process group (exec).
    Group,
    /// Its own session, with a controlling terminal (a console).
    Session,
}

/// A pseudo-terminal: the daemon keeps `master`, the program gets `slave` as stdin, stdout and
/// stderr. The master is non-blocking, for the async runtime.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Opens a pty pair, 80x24, both ends close-on-exec (the child gets the slave through dup2).
pub fn open_pty() -> std::io::Result<Pty> {
    use std::os::fd::FromRawFd;
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    let size = libc::winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty writes two fds into the given ints; name and termios may be null.
    if unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just opened by openpty and are owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // SAFETY: fcntl on an open fd with integer arguments.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: as above; the master is read and written through tokio's AsyncFd.
    let flags = unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Pty { master, slave })
}

/// The pty master, registered with tokio's reactor for reading and writing.
pub fn async_master(master: OwnedFd) -> std::io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let interest = tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE;
    // SAFETY: an OwnedFd is a valid open fd, stays open until the AsyncFd (its owner) drops it,
    // and its as_raw_fd never changes.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(master, interest) }.map_err(std::io::Error::from)
}

/// One `read(2)` on a raw fd (the pty master), for tokio's AsyncFd.
pub fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: reads at most buf.len() bytes into buf from an open fd.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// One `write(2)` on a raw fd (the pty master).
pub fn write_fd(fd: &OwnedFd, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: writes at most buf.len() bytes from buf to an open fd.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// Kills a process group when dropped: whatever the program left behind dies with the call,
/// also when the call is cancelled.
pub struct GroupKill(pub Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
            // SAFETY: kill with a negative pid signals that process group only. The group is the
            // exec'd child's own (process_group(0)); its id is not reused while any member lives.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// The kernel's Landlock ABI version, if it has Landlock.
pub fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: a null attr with size 0 and the VERSION flag only queries the ABI version.
    let version = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, LANDLOCK_CREATE_RULESET_VERSION) };
    u32::try_from(version).ok().filter(|v| *v > 0)
}

fn current_euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Root, or a daemon holding CAP_SETUID (7) and CAP_SETGID (6) in its effective set.
fn can_switch_user() -> bool {
    if current_euid() == 0 {
        return true;
    }
    let status = read_file("/proc/self/status");
    let effective = status.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok()).unwrap_or(0);
    effective & (1 << 6) != 0 && effective & (1 << 7) != 0
}

fn current_egid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
/// x32 syscall numbers on x86_64 carry this bit; refuse them rather than filter a second table.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// setsid and setpgid fail with EPERM, so no descendant can leave the process group that is
/// killed when the call ends; so do listen (no program serves anything: `netscope/`),
/// io_uring_setup (io_uring can listen without the listen syscall) and sockets of any family but
/// Unix, IPv4, IPv6 and netlink (no vsock to a hypervisor, no packet or CAN sockets: the network
/// scope's filters see inet sockets only). A foreign syscall ABI kills the process.
static SECCOMP_FILTER: [libc::sock_filter; 18] = [
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, AUDIT_ARCH, 1, 0),
    stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
    jump(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, X32_SYSCALL_BIT, 11, 0),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::SYS_setsid as u32, 10, 0),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::SYS_setpgid as u32, 9, 0),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::SYS_listen as u32, 8, 0),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::SYS_io_uring_setup as u32, 7, 0),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::SYS_socket as u32, 1, 0),
    stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    // socket(2)'s family: the low half of args[0] (little-endian targets only, as AUDIT_ARCH).
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 16),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::AF_UNIX as u32, 4, 0),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::AF_INET as u32, 3, 0),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::AF_INET6 as u32, 2, 0),
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::AF_NETLINK as u32, 1, 0),
    stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
    stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
];

fn read_file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// (name, uid, gid) of a passwd line.
fn passwd_entry(line: &str) -> Option<(&str, u32, u32)> {
    let mut f = line.split(':');
    let name = f.next()?;
    let uid = f.nth(1)?.parse().ok()?;
    let gid = f.next()?.parse().ok()?;
    Some((name, uid, gid))
}

/// (name, gid) of a group line.
fn group_entry(line: &str) -> Option<(&str, u32)> {
    let mut f = line.split(':');
    let name = f.next()?;
    let gid = f.nth(1)?.parse().ok()?;
    Some((name, gid))
}

/// A user by name or number: (uid, primary gid).
fn lookup_user(passwd: &str, user: &str) -> Option<(u32, u32)> {
    let entries = || passwd.lines().filter_map(passwd_entry);
    entries().find(|e| e.0 == user).or_else(|| user.parse::<u32>().ok().and_then(|uid| entries().find(|e| e.1 == uid))).map(|e| (e.1, e.2))
}

fn lookup_group(groups: &str, group: &str) -> Option<u32> {
    groups.lines().filter_map(group_entry).find(|e| e.0 == group).map(|e| e.1).or_else(|| group.parse().ok())
}

/// Hands the private working dir and the files the plugin put in it to the exec user.
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    for entry in std::fs::read_dir(dir)? {
        std::os::unix::fs::chown(entry?.path(), Some(uid), Some(gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nipmi:x:990:991::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nipmi:x:991:\nbmc:x:992:\n";

    fn scoped() -> NetScoper {
        NetScoper::pretend()
    }

    #[test]
    fn root_switches_to_the_configured_user_and_its_primary_group() {
        let c = Confiner::resolve(&ExecPolicy::default(), Some(7), scoped(), 0, true, PASSWD, GROUP).expect("resolve");
        let s = c.summary();
        assert_eq!((s.user.as_str(), s.uid, s.group.as_str(), s.gid, s.user_switched), ("nobody", 65534, "nogroup", 65534, true));
        assert_eq!(s.processes, Some(64));
        assert_eq!(c.refusal(), None);
        let policy = ExecPolicy { user: "990".into(), group: Some("bmc".into()), ..ExecPolicy::default() };
        let s = Confiner::resolve(&policy, Some(7), scoped(), 0, true, PASSWD, GROUP).expect("numeric user").summary;
        assert_eq!((s.user.as_str(), s.uid, s.group.as_str(), s.gid), ("990", 990, "bmc", 992));
    }

    #[test]
    fn an_unknown_user_or_group_or_root_is_refused() {
        let policy = |user: &str, group: Option<&str>| ExecPolicy { user: user.into(), group: group.map(Into::into), ..ExecPolicy::default() };
        assert!(
            Confiner::resolve(&policy("nosuch", None), Some(7), scoped(), 0, true, PASSWD, GROUP).unwrap_err().contains("\"nosuch\" does not exist")
        );
        assert!(Confiner::resolve(&policy("nobody", Some("nosuch")), Some(7), scoped(), 0, true, PASSWD, GROUP).unwrap_err().contains("group"));
        assert!(Confiner::resolve(&policy("root", None), Some(7), scoped(), 0, true, PASSWD, GROUP).unwrap_err().contains("must not be root"));
    }

    #[test]
    fn a_daemon_that_is_not_root_keeps_its_user_and_sets_no_process_limit() {
        let s = Confiner::resolve(&ExecPolicy::default(), Some(7), scoped(), 990, false, PASSWD, GROUP).expect("resolve").summary;
        assert_eq!((s.user.as_str(), s.user_switched, s.processes), ("ipmi", false, None));
        // The same daemon with CAP_SETUID/CAP_SETGID (the packaged unit) switches like root.
        let s = Confiner::resolve(&ExecPolicy::default(), Some(7), scoped(), 990, true, PASSWD, GROUP).expect("resolve").summary;
        assert_eq!((s.user.as_str(), s.uid, s.user_switched), ("nobody", 65534, true));
    }

    #[test]
    fn without_landlock_exec_grants_are_refused_unless_the_operator_opts_out() {
        let c = Confiner::resolve(&ExecPolicy::default(), None, scoped(), 0, true, PASSWD, GROUP).expect("resolve");
        assert!(c.refusal().expect("refused").contains("allow_unconfined"));
        assert!(c.summary().summary().contains("NO LANDLOCK"));
        let policy = ExecPolicy { allow_unconfined: true, ..ExecPolicy::default() };
        assert_eq!(Confiner::resolve(&policy, None, scoped(), 0, true, PASSWD, GROUP).expect("resolve").refusal(), None);
    }

    #[test]
    fn without_the_network_scope_grants_are_refused_unless_the_operator_opts_out() {
        let unscoped = || NetScoper::unavailable("no cgroup v2 hierarchy is mounted");
        let c = Confiner::resolve(&ExecPolicy::default(), Some(7), unscoped(), 0, true, PASSWD, GROUP).expect("resolve");
        let refusal = c.refusal().expect("refused");
        assert!(refusal.contains("allow_unscoped") && refusal.contains("no cgroup v2"), "{refusal}");
        assert!(c.summary().summary().contains("NO NETWORK SCOPE"), "{}", c.summary().summary());
        let policy = ExecPolicy { allow_unscoped: true, ..ExecPolicy::default() };
        let c = Confiner::resolve(&policy, Some(7), unscoped(), 0, true, PASSWD, GROUP).expect("resolve");
        assert_eq!(c.refusal(), None);
        assert!(c.scope(&[]).expect("opted out").is_none());
        let scoped = Confiner::resolve(&ExecPolicy::default(), Some(7), scoped(), 0, true, PASSWD, GROUP).expect("resolve");
        assert!(scoped.summary().summary().contains("network: the call's BMC only"), "{}", scoped.summary().summary());
    }
}
