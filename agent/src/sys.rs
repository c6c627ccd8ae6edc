//! The few raw syscalls the agent needs (discard, page-cache drop, power off), each wrapped in a
//! safe function; the only place in the crate with `unsafe`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

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
