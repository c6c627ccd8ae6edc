//! Many BMCs in one process: one UDP socket per BMC on 127.0.0.1, one task per socket on a small
//! tokio runtime, each task owning its BMC's state (no locks between BMCs).

use std::net::UdpSocket as StdSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::protocol::{Account, Bmc};

/// How many BMCs, where, with which account.
#[derive(Debug, Clone)]
pub struct FarmOptions {
    pub bmcs: usize,
    /// First port of consecutive ones; 0 lets the kernel pick each.
    pub first_port: u16,
    pub account: Account,
    /// The runtime's worker threads.
    pub threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FarmError {
    #[error("cannot bind 127.0.0.1:{port} for BMC {index}: {source}")]
    Bind { index: usize, port: u16, source: std::io::Error },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// The running BMCs; dropping it stops them.
pub struct Farm {
    pub ports: Vec<u16>,
    received: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl Farm {
    pub fn start(opts: FarmOptions) -> Result<Farm, FarmError> {
        let mut sockets = Vec::with_capacity(opts.bmcs);
        let mut ports = Vec::with_capacity(opts.bmcs);
        for index in 0..opts.bmcs {
            let port = if opts.first_port == 0 { 0 } else { opts.first_port.saturating_add(u16::try_from(index).unwrap_or(u16::MAX)) };
            let bind = |e| FarmError::Bind { index, port, source: e };
            let socket = StdSocket::bind(("127.0.0.1", port)).map_err(bind)?;
            socket.set_nonblocking(true).map_err(bind)?;
            ports.push(socket.local_addr().map_err(bind)?.port());
            sockets.push(socket);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.threads.max(1))
            .thread_name("lab-bmc")
            .enable_io()
            .build()
            .map_err(FarmError::Runtime)?;
        let received = Arc::new(AtomicU64::new(0));
        let account = Arc::new(opts.account);
        for socket in sockets {
            let (account, received) = (account.clone(), received.clone());
            runtime.spawn(async move {
                let Ok(socket) = tokio::net::UdpSocket::from_std(socket) else { return };
                let mut bmc = Bmc::default();
                let mut buf = [0u8; 2048];
                loop {
                    let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
                    received.fetch_add(1, Ordering::Relaxed);
                    if let Some(answer) = bmc.handle(&account, &buf[..n]) {
                        let _ = socket.send_to(&answer, from).await;
                    }
                }
            });
        }
        Ok(Farm { ports, received, _runtime: runtime })
    }

    /// Datagrams received by all BMCs so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}
