//! The `datagram` capability: one UDP datagram to the call's BMC from a fresh socket, and the
//! replies that come back from that address within the timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::{BmcScope, NetError, budget};

/// The largest UDP payload over IPv4.
pub const MAX_PAYLOAD: usize = 65_507;
/// Replies one exchange may collect.
pub const MAX_REPLIES: u32 = 16;

pub async fn exchange(
    scope: &BmcScope,
    deadline: Instant,
    port: Option<u16>,
    payload: &[u8],
    timeout_ms: u32,
    max_replies: u32,
) -> Result<Vec<Vec<u8>>, NetError> {
    let allowed = scope.authority();
    if let Some(port) = port.filter(|p| *p != scope.port) {
        return Err(NetError::NotPermitted(format!("port {port} is not this call's BMC: datagrams may go to {allowed} only")));
    }
    if payload.is_empty() || payload.len() > MAX_PAYLOAD {
        return Err(NetError::InvalidRequest(format!("a datagram holds 1 to {MAX_PAYLOAD} bytes, not {}", payload.len())));
    }
    let wait = budget(deadline, timeout_ms);
    let target = resolve(scope, wait).await?;
    let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await.map_err(|e| NetError::Unreachable(format!("cannot open a UDP socket: {e}")))?;
    // A connected socket: the kernel drops datagrams from any other address.
    socket.connect(target).await.map_err(|e| NetError::Unreachable(format!("no route to {allowed}: {e}")))?;
    socket.send(payload).await.map_err(|e| NetError::Unreachable(format!("sending to {allowed}: {e}")))?;
    let until = Instant::now() + wait;
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while replies.len() < max_replies.clamp(1, MAX_REPLIES) as usize {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => replies.push(buf[..n].to_vec()),
            // ICMP port unreachable arrives as a refused receive: nothing listens there.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(NetError::Unreachable(format!("{allowed} refused the datagram (nothing listens there)")));
            }
            Ok(Err(e)) => return Err(NetError::Unreachable(format!("receiving from {allowed}: {e}"))),
            Err(_) => break,
        }
    }
    Ok(replies)
}

async fn resolve(scope: &BmcScope, wait: Duration) -> Result<SocketAddr, NetError> {
    let lookup = tokio::net::lookup_host((scope.host.as_str(), scope.port));
    let mut addrs = match tokio::time::timeout(wait.max(Duration::from_millis(1)), lookup).await {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(e)) => return Err(NetError::Unreachable(format!("cannot resolve {}: {e}", scope.host))),
        Err(_) => return Err(NetError::Unreachable(format!("resolving {} took past the deadline", scope.host))),
    };
    addrs.next().ok_or_else(|| NetError::Unreachable(format!("{} resolves to no address", scope.host)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_come_back_and_other_ports_are_refused_naming_the_bmc() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = peer.local_addr().expect("addr").port();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = peer.recv_from(&mut buf).expect("recv");
            peer.send_to(&buf[..n], from).expect("send");
        });
        let scope = BmcScope { host: "127.0.0.1".into(), port };
        let deadline = Instant::now() + Duration::from_secs(5);
        let replies = exchange(&scope, deadline, None, b"ping", 2000, 1).await.expect("exchange");
        assert_eq!(replies, vec![b"ping".to_vec()]);
        echo.join().expect("echo");
        match exchange(&scope, deadline, Some(port.wrapping_add(1)), b"ping", 100, 1).await {
            Err(NetError::NotPermitted(m)) => assert!(m.contains(&format!("127.0.0.1:{port} only")), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
