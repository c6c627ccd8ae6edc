//! The few raw syscalls the agent needs (discard, page-cache drop, power off, a NIC's address, raw
//! LLDP sockets), each wrapped in a safe function; the only place in the crate with `unsafe`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// `BLKDISCARD` = `_IO(0x12, 119)` from `<linux/fs.h>`; libc does not export it.
const BLKDISCARD: u32 = 0x1277;

/// Discards `len` bytes from `start` on a block device. `Unsupported` when the device cannot.
pub fn discard(device: &File, start: u64, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [start, len];
    // SAFETY: the fd is open for the lifetime of `device`; BLKDISCARD reads two u64 from the
    // pointer, which points at `range`, alive for the call.
    let rc = unsafe { libc::ioctl(device.as_raw_fd(), BLKDISCARD as libc::Ioctl, range.as_ptr()) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENOTTY | libc::EINVAL) => Err(io::Error::new(io::ErrorKind::Unsupported, e)),
        _ => Err(e),
    }
}

/// Drops the file's clean cached pages, so a read-back after fsync reads the medium, not memory.
pub fn drop_cached_pages(file: &File) -> io::Result<()> {
    // SAFETY: plain syscall on an open fd; offset 0 and len 0 mean the whole file.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// Flushes every filesystem and powers the machine off. Returns only on failure (not root, or
/// not allowed in this namespace).
pub fn power_off() -> io::Error {
    // SAFETY: sync(2) and reboot(2) take no pointers; reboot needs CAP_SYS_BOOT and fails cleanly without it.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    io::Error::last_os_error()
}

/// Starts writeback of a just-written range without waiting for it, so the final fsync finds
/// little left to do and dirty pages do not pile up while the download runs.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    // SAFETY: plain syscall on an open fd with integer arguments.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The IPv4 address of a NIC (`SIOCGIFADDR`), if it has one.
pub fn ipv4_of(interface: &str) -> Option<std::net::Ipv4Addr> {
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: a plain socket(2) call; the fd is closed below on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFADDR reads the name and writes a sockaddr into `request`, which lives across the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFADDR as libc::Ioctl, &mut request) };
    // SAFETY: fd is ours and open.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success the union holds a sockaddr; for AF_INET it is a sockaddr_in of the same size.
    let addr: libc::sockaddr_in = unsafe { std::mem::transmute_copy(&request.ifr_ifru.ifru_addr) };
    (i32::from(addr.sin_family) == libc::AF_INET).then(|| std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)))
}

/// An open raw packet socket, closed on drop.
struct PacketSocket(libc::c_int);

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and open.
        unsafe { libc::close(self.0) };
    }
}

/// Opens an `AF_PACKET` socket for LLDP frames on one NIC, member of the LLDP multicast group.
fn lldp_socket(interface: &str) -> io::Result<PacketSocket> {
    let protocol = crate::lldp::ETHERTYPE.to_be();
    let name = std::ffi::CString::new(interface).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string that lives across the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a plain socket(2) call; the fd is owned by PacketSocket from here.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, libc::c_int::from(protocol)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let socket = PacketSocket(fd);
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol;
    address.sll_ifindex = index as i32;
    // SAFETY: bind reads `size_of::<sockaddr_ll>()` bytes from `address`, alive for the call.
    let rc = unsafe { libc::bind(fd, (&raw const address).cast::<libc::sockaddr>(), std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: packet_mreq is plain old data; all-zero is valid.
    let mut membership: libc::packet_mreq = unsafe { std::mem::zeroed() };
    membership.mr_ifindex = index as i32;
    membership.mr_type = libc::PACKET_MR_MULTICAST as u16;
    membership.mr_alen = 6;
    membership.mr_address[..6].copy_from_slice(&[0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]);
    // SAFETY: setsockopt reads the struct, alive for the call. A NIC that cannot join the group
    // still hears frames a promiscuous bridge or tap hands it, so a failure is not fatal.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&raw const membership).cast::<libc::c_void>(),
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    };
    Ok(socket)
}

/// Every LLDP frame that arrives on the named NICs within `wait` (at most 256), with the NIC's
/// name. NICs that cannot be opened are skipped; an error only if none can.
pub fn receive_lldp(interfaces: &[&str], wait: Duration) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut sockets = Vec::new();
    let mut last_error = None;
    for name in interfaces {
        match lldp_socket(name) {
            Ok(s) => sockets.push(((*name).to_owned(), s)),
            Err(e) => last_error = Some(e),
        }
    }
    if sockets.is_empty() {
        return match last_error {
            Some(e) => Err(e),
            None => Ok(Vec::new()),
        };
    }
    let deadline = Instant::now() + wait;
    let mut frames = Vec::new();
    let mut buffer = vec![0u8; 9216];
    while frames.len() < 256 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut polled: Vec<libc::pollfd> = sockets.iter().map(|(_, s)| libc::pollfd { fd: s.0, events: libc::POLLIN, revents: 0 }).collect();
        let timeout = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll reads and writes `polled.len()` pollfd entries, alive for the call.
        let rc = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, timeout) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (p, (name, socket)) in polled.iter().zip(&sockets) {
            if p.revents & libc::POLLIN == 0 {
                continue;
            }
            // SAFETY: recv writes at most `buffer.len()` bytes into `buffer`, alive for the call.
            let n = unsafe { libc::recv(socket.0, buffer.as_mut_ptr().cast::<libc::c_void>(), buffer.len(), libc::MSG_DONTWAIT) };
            if let Ok(n) = usize::try_from(n) {
                frames.push((name.clone(), buffer[..n].to_vec()));
            }
        }
    }
    Ok(frames)
}
