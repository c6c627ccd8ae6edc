//! Positioned reads of an image over HTTP (`Range: bytes=A-B`), for the qcow2 reader's header,
//! tables and out-of-order clusters. Retried with backoff and moved to a mirror like a download.

use std::io::{self, Read};
use std::time::Duration;

use metalhost_image_format::ReadAt;

use crate::download::{ATTEMPTS, Backoff, Failure, classify, parse_content_range};
use crate::log;

pub struct HttpRanges {
    http: ureq::Agent,
    url: String,
    token: Option<String>,
    mirrors: Vec<String>,
    /// The file's length, from the first answer's Content-Range.
    size: Option<u64>,
    backoff: Backoff,
}

impl HttpRanges {
    pub fn new(http: ureq::Agent, url: String, token: Option<String>, mirrors: Vec<String>) -> HttpRanges {
        HttpRanges { http, url, token, mirrors, size: None, backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(8)) }
    }

    #[cfg(test)]
    pub fn fast_retries(mut self) -> HttpRanges {
        self.backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        self
    }

    /// The served file's length (one small request the first time).
    pub fn size(&mut self) -> io::Result<u64> {
        if self.size.is_none() {
            self.read_at(0, &mut [0u8; 1])?;
        }
        self.size.ok_or_else(|| io::Error::other("the image server did not say the image's length"))
    }

    fn attempt(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Failure> {
        let last = offset + buf.len() as u64 - 1;
        let mut request = self.http.get(&self.url).set("Range", &format!("bytes={offset}-{last}"));
        if let Some(token) = &self.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = request.call().map_err(classify)?;
        if response.status() != 206 {
            return Err(Failure::Fatal(format!("the image server answered HTTP {} to a Range request; qcow2 images need Range", response.status())));
        }
        match response.header("Content-Range").and_then(parse_content_range) {
            Some((start, total)) if start == offset => self.size = total.or(self.size),
            _ => return Err(Failure::Fatal(format!("asked for bytes {offset}-{last}, got Content-Range {:?}", response.header("Content-Range")))),
        }
        response.into_reader().read_exact(buf).map_err(|e| Failure::Retry(format!("reading bytes {offset}-{last}: {e}")))
    }
}

impl ReadAt for HttpRanges {
    type Error = io::Error;

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut failures = 0;
        loop {
            match self.attempt(offset, buf) {
                Ok(()) => {
                    self.backoff.reset();
                    return Ok(());
                }
                Err(Failure::Fatal(why)) => return Err(io::Error::other(why)),
                Err(Failure::Retry(why)) => {
                    failures += 1;
                    if failures >= ATTEMPTS {
                        return Err(io::Error::other(format!("gave up reading bytes at {offset} after {failures} attempts: {why}")));
                    }
                    if !self.mirrors.is_empty() {
                        let next = self.mirrors.remove(0);
                        self.mirrors.push(std::mem::replace(&mut self.url, next));
                    }
                    let wait = self.backoff.next_delay();
                    log(format!("range read at byte {offset} failed ({why}); retrying in {} ms", wait.as_millis()));
                    std::thread::sleep(wait);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Serves `file` with `bytes=A-B` ranges; the first `cuts` answers stop half-way, and with
    /// `whole` every answer is the whole file (a server that ignores Range).
    fn serve(file: Vec<u8>, cuts: usize, whole: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/image", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut range = (0, file.len() - 1);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((a, b)) = line.trim().strip_prefix("Range: bytes=").and_then(|r| r.split_once('-')) {
                        range = (a.parse().unwrap(), b.parse().unwrap());
                    }
                }
                let body = if whole { &file[..] } else { &file[range.0..=range.1] };
                let head = if whole {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                } else {
                    format!(
                        "HTTP/1.1 206 Partial\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                        body.len(),
                        range.0,
                        range.1,
                        file.len()
                    )
                };
                let send = if n < cuts { body.len() / 2 } else { body.len() };
                let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body[..send]));
            }
        });
        (url, seen)
    }

    #[test]
    fn ranges_are_read_and_a_cut_answer_is_retried() {
        let file: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (url, seen) = serve(file.clone(), 2, false);
        let mut r = HttpRanges::new(ureq::agent(), url, None, Vec::new()).fast_retries();
        let mut buf = vec![0u8; 5000];
        r.read_at(70_000, &mut buf).unwrap();
        assert!(buf == file[70_000..75_000]);
        assert_eq!(seen.load(Ordering::SeqCst), 3, "two cut answers, then a whole one");
        assert_eq!(r.size().unwrap(), 100_000);
    }

    #[test]
    fn a_server_that_ignores_range_is_an_error_not_a_retry() {
        let (url, seen) = serve(vec![7u8; 1000], 0, true);
        let mut r = HttpRanges::new(ureq::agent(), url, None, Vec::new()).fast_retries();
        let e = r.read_at(10, &mut [0u8; 10]).unwrap_err().to_string();
        assert!(e.contains("answered HTTP 200 to a Range request"), "{e}");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
