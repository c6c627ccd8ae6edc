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
