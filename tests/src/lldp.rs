//! A switch's side of LLDP, as far as a test needs it: 802.1AB frames written onto an interface
//! (a VM's tap in the lab netns) every so often from a thread, until dropped.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// An LLDP frame: chassis id a MAC (subtype 4), port id an interface name (subtype 5), TTL 120,
/// system name, end.
pub fn frame(chassis_mac: [u8; 6], port: &str, system_name: &str) -> Vec<u8> {
    let mut f = vec![0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
    f.extend_from_slice(&[0x02, 0x00, 0x00, 0x99, 0x00, 0x02]);
    f.extend_from_slice(&0x88ccu16.to_be_bytes());
    let mut tlv = |kind: u16, value: &[u8]| {
        f.extend_from_slice(&((kind << 9) | value.len() as u16).to_be_bytes());
        f.extend_from_slice(value);
    };
    tlv(1, &[&[4u8][..], &chassis_mac].concat());
    tlv(2, &[&[5u8][..], port.as_bytes()].concat());
    tlv(3, &120u16.to_be_bytes());
    tlv(5, system_name.as_bytes());
    tlv(0, &[]);
    f
}

/// Sends `frame` on `interface` every `every` from its own thread (which starts in the caller's
/// network namespace) until dropped.
pub struct Announcer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Announcer {
    pub fn start(interface: &str, frame: Vec<u8>, every: Duration) -> Announcer {
        let name = std::ffi::CString::new(interface).expect("interface name");
        // SAFETY: if_nametoindex reads a NUL-terminated string alive for the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(index, 0, "no interface {interface}: {}", std::io::Error::last_os_error());
        // SAFETY: a plain socket(2) call; the fd is closed by the thread.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = index as i32;
        address.sll_halen = 6;
        address.sll_addr[..6].copy_from_slice(&frame[..6]);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut sent = 0;
            while !stopping.load(Ordering::Relaxed) {
                // SAFETY: sendto reads `frame.len()` bytes and the address, both alive for the call.
                let n = unsafe {
                    libc::sendto(
                        fd,
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&raw const address).cast::<libc::sockaddr>(),
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                if n > 0 {
                    sent += 1;
                }
                std::thread::sleep(every);
            }
            // SAFETY: the fd is this thread's and open.
            unsafe { libc::close(fd) };
            sent
        });
        Announcer { stop, thread: Some(thread) }
    }

    /// Stops sending; returns how many frames went out.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
