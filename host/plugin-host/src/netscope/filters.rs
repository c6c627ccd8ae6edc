//! The BPF filters of a call's network scope (ARCHITECTURE.md, "plugin-host"): assembled here from
//! a few instructions with the call's BMC addresses as constants, loaded with bpf(2) and attached
//! to the call's cgroup. No BPF crate: each filter is a handful of loads, compares and returns.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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
pub(super) struct Filter {
    pub hook: &'static str,
    prog_type: u32,
    pub attach_type: u32,
    insns: Vec<Insn>,
    /// A kernel without this hook scopes without it.
    pub optional: bool,
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
pub(super) fn filters(allowed: &[SocketAddr]) -> Vec<Filter> {
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

pub(super) fn load(filter: &Filter) -> io::Result<OwnedFd> {
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
pub(super) fn attach(cgroup: &File, prog: &OwnedFd, attach_type: u32) -> io::Result<()> {
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
