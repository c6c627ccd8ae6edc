//! An HTTP image download as a plain `Read`: when the connection breaks it reconnects with
//! `Range: bytes=<received>-` and carries on, so the hash and decompressor above it never notice.

use std::io::{self, Read};
use std::time::Duration;

use crate::log;

/// Consecutive attempts that bring no new byte before the download is given up.
pub const ATTEMPTS: u32 = 6;

pub struct Download {
    http: ureq::Agent,
    url: String,
    token: Option<String>,
    /// Bytes handed to the reader so far: where a resumed request starts.
    offset: u64,
    /// The full length, once a response said it.
    total: Option<u64>,
    body: Option<Box<dyn Read + Send + Sync>>,
    /// Bytes to drop from a response that ignored our Range header and started from 0.
    skip: u64,
    failures: u32,
    backoff: Backoff,
    /// The same bytes elsewhere (the image path on the pool's other daemons): a failed attempt
    /// moves on to the next, resuming at the same offset.
    mirrors: Vec<String>,
}

impl Download {
    pub fn new(http: ureq::Agent, url: String, token: Option<String>) -> Download {
        Download {
            http,
            url,
            token,
            offset: 0,
            total: None,
            body: None,
            skip: 0,
            failures: 0,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(8)),
            mirrors: Vec::new(),
        }
    }

    /// Other URLs serving the same image, tried in turn after a failed attempt.
    pub fn with_mirrors(mut self, mirrors: Vec<String>) -> Download {
        self.mirrors = mirrors;
        self
    }

    fn open(&mut self) -> Result<(), Failure> {
        let mut request = self.http.get(&self.url);
        if let Some(token) = &self.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        if self.offset > 0 {
            request = request.set("Range", &format!("bytes={}-", self.offset));
        }
        let response = request.call().map_err(classify)?;
        let length: Option<u64> = response.header("Content-Length").and_then(|v| v.trim().parse().ok());
        match response.status() {
            200 => {
                if self.offset > 0 {
                    log(format!("the image server ignored Range; downloading again and skipping {} bytes", self.offset));
                }
                self.skip = self.offset;
                self.total = length;
            }
            206 => {
                let range = response.header("Content-Range").and_then(parse_content_range);
                match range {
                    Some((start, total)) if start == self.offset => self.total = total.or(self.total),
                    _ => {
                        return Err(Failure::Fatal(format!(
                            "asked to resume at byte {}, got Content-Range {:?}",
                            self.offset,
                            response.header("Content-Range").unwrap_or("(none)")
                        )));
                    }
                }
            }
            code => return Err(Failure::Retry(format!("unexpected HTTP {code} for the image"))),
        }
        self.body = Some(Box::new(response.into_reader()));
        Ok(())
    }

    /// Counts a failed attempt and waits before the next; the error once attempts run out.
    fn failed(&mut self, why: String) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        if self.failures >= ATTEMPTS {
            return Err(io::Error::other(format!("gave up at byte {} after {} attempts: {why}", self.offset, self.failures)));
        }
        if !self.mirrors.is_empty() {
            let next = self.mirrors.remove(0);
            self.mirrors.push(std::mem::replace(&mut self.url, next));
            log(format!("download: switching to {}", self.url));
        }
        let wait = self.backoff.next_delay();
        log(format!("download interrupted at byte {} ({why}); resuming with Range in {} ms", self.offset, wait.as_millis()));
        std::thread::sleep(wait);
        Ok(())
    }

    /// Whether a clean end of body is really the end of the image.
    fn complete(&self) -> bool {
        self.total.is_none_or(|t| self.offset >= t)
    }
}

pub enum Failure {
    Retry(String),
    Fatal(String),
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.body.is_none() {
                match self.open() {
                    Ok(()) => {}
                    Err(Failure::Fatal(why)) => return Err(io::Error::other(why)),
                    Err(Failure::Retry(why)) => {
                        self.failed(why)?;
                        continue;
                    }
                }
            }
            let Some(body) = self.body.as_mut() else { continue };
            match body.read(buf) {
                Ok(0) if self.complete() => return Ok(0),
                Ok(0) => {
                    let why = format!("connection closed early, {} of {} bytes", self.offset, self.total.unwrap_or(0));
                    self.failed(why)?;
                }
                Ok(n) if self.skip > 0 => {
                    // Re-sent bytes we already have: drop them without counting them again.
                    let dropped = (n as u64).min(self.skip);
                    self.skip -= dropped;
                    let kept = n - dropped as usize;
                    if kept > 0 {
                        buf.copy_within(dropped as usize..n, 0);
                        self.offset += kept as u64;
                        self.failures = 0;
                        return Ok(kept);
                    }
                }
                Ok(n) => {
                    self.offset += n as u64;
                    self.failures = 0;
                    self.backoff.reset();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.failed(e.to_string())?,
            }
        }
    }
}

/// A refusal (bad token, no such image) will not change on retry; a server error might.
pub fn classify(e: ureq::Error) -> Failure {
    match e {
        ureq::Error::Status(code, r) => {
            let text = format!("HTTP {code} for the image: {}", r.into_string().unwrap_or_default().trim());
            if (400..500).contains(&code) { Failure::Fatal(text) } else { Failure::Retry(text) }
        }
        other => Failure::Retry(other.to_string()),
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) → (START, TOTAL).
pub fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Capped exponential backoff with jitter, so many nodes retrying at once do not move in step.
pub struct Backoff {
    first: Duration,
    cap: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff { first, cap, current: first }
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.cap);
        // Between 75 % and 125 % of the base.
        let spread = base.as_millis().max(4) as u64 / 2;
        base - base / 4 + Duration::from_millis(random_u64() % spread.max(1))
    }

    pub fn reset(&mut self) {
        self.current = self.first;
    }
}

/// Enough randomness for jitter without a crate: std's randomly seeded hasher.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    #[test]
    fn content_range_is_parsed() {
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, Some(1000))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (d, base) in delays.iter().zip([100u64, 200, 400, 800, 800, 800]) {
            assert!(*d >= Duration::from_millis(base * 3 / 4) && *d <= Duration::from_millis(base * 5 / 4), "{d:?} for {base}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }

    /// How the test server answers: cut the first `cuts` image responses after `cut_at` bytes of
    /// body; honour Range or not.
    struct Script {
        image: Vec<u8>,
        cuts: usize,
        cut_at: usize,
        honour_range: bool,
        status: u16,
    }

    /// A one-thread HTTP/1.1 server on 127.0.0.1:0 that records each request's Range header.
    fn serve(script: Script) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/image", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut cuts_left = script.cuts;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                handle(stream, &script, &mut cuts_left, &log);
            }
        });
        (url, seen)
    }

    fn handle(mut stream: TcpStream, s: &Script, cuts_left: &mut usize, seen: &Mutex<Vec<Option<String>>>) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut range = None;
        let mut auth = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Range: bytes=") {
                range = Some(v.trim_end_matches('-').to_owned());
            }
            if let Some(v) = line.strip_prefix("Authorization: ") {
                auth = Some(v.to_owned());
            }
        }
        seen.lock().unwrap().push(range.clone());
        if s.status != 200 || auth.as_deref() != Some("Bearer tok") {
            let code = if s.status != 200 { s.status } else { 401 };
            let _ = write!(stream, "HTTP/1.1 {code} Nope\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope");
            return;
        }
        let start = match (&range, s.honour_range) {
            (Some(r), true) => r.parse::<usize>().unwrap(),
            _ => 0,
        };
        let body = &s.image[start..];
        let head = if start > 0 {
            format!(
                "HTTP/1.1 206 Partial\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                body.len(),
                s.image.len() - 1,
                s.image.len()
            )
        } else {
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
        };
        let _ = stream.write_all(head.as_bytes());
        let send = if *cuts_left > 0 {
            *cuts_left -= 1;
            body.len().min(s.cut_at)
        } else {
            body.len()
        };
        let _ = stream.write_all(&body[..send]);
        let _ = stream.flush();
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }

    fn fetch(url: &str, token: &str) -> io::Result<Vec<u8>> {
        let mut d = Download::new(ureq::agent(), url.to_owned(), Some(token.to_owned()));
        d.backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok(out)
    }

    fn image() -> Vec<u8> {
        (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
    }

    #[test]
    fn a_cut_download_resumes_where_it_stopped() {
        let image = image();
        let (url, seen) = serve(Script { image: image.clone(), cuts: 2, cut_at: 1_000_000, honour_range: true, status: 200 });
        let got = fetch(&url, "tok").unwrap();
        assert!(got == image, "resumed download differs from the image");
        assert_eq!(*seen.lock().unwrap(), [None, Some("1000000".to_owned()), Some("2000000".to_owned())]);
    }

    #[test]
    fn a_server_that_ignores_range_is_skipped_forward() {
        let image = image();
        let (url, seen) = serve(Script { image: image.clone(), cuts: 1, cut_at: 1_234_567, honour_range: false, status: 200 });
        let got = fetch(&url, "tok").unwrap();
        assert!(got == image, "the re-sent prefix must be dropped");
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_server_that_keeps_cutting_is_given_up_with_the_offset() {
        let (url, seen) = serve(Script { image: image(), cuts: usize::MAX, cut_at: 0, honour_range: true, status: 200 });
        let e = fetch(&url, "tok").unwrap_err().to_string();
        assert!(e.contains("gave up at byte 0 after 6 attempts"), "{e}");
        assert_eq!(seen.lock().unwrap().len(), ATTEMPTS as usize);
    }

    #[test]
    fn a_refusal_is_not_retried() {
        let (url, seen) = serve(Script { image: image(), cuts: 0, cut_at: 0, honour_range: true, status: 200 });
        let e = fetch(&url, "wrong").unwrap_err().to_string();
        assert!(e.contains("HTTP 401"), "{e}");
        assert_eq!(seen.lock().unwrap().len(), 1);
        let (url, seen) = serve(Script { image: image(), cuts: 0, cut_at: 0, honour_range: true, status: 503 });
        assert!(fetch(&url, "tok").unwrap_err().to_string().contains("HTTP 503"));
        assert_eq!(seen.lock().unwrap().len(), ATTEMPTS as usize, "server errors are retried");
    }
}
