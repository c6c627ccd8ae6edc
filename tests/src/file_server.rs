//! A static file server on 127.0.0.1:0 for images registered by URL: HTTP/1.1 `GET` with
//! `Range: bytes=A-[B]` (or, with `honour_range: false`, a server that ignores Range, like
//! `python3 -m http.server`), and on request the first few answers cut short, as a broken
//! connection would. One thread per connection; it lives as long as the test process.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What the server does, shared with its threads so a test can change it between requests.
#[derive(Debug, Default)]
struct Behaviour {
    ignore_range: std::sync::atomic::AtomicBool,
    /// Answers still to cut, each after `cut_after` body bytes.
    cuts: AtomicUsize,
    cut_after: AtomicU64,
}

pub struct FileServer {
    pub url: String,
    /// Every request's Range header (None: the whole file).
    pub requests: Arc<std::sync::Mutex<Vec<Option<String>>>>,
    behaviour: Arc<Behaviour>,
}

impl FileServer {
    /// Serves the files in `dir` at `{url}/{name}`.
    pub fn start(dir: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let behaviour = Arc::new(Behaviour::default());
        let (dir, seen, b) = (dir.to_owned(), requests.clone(), behaviour.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (dir, seen, b) = (dir.clone(), seen.clone(), b.clone());
                std::thread::spawn(move || serve(stream, &dir, &b, &seen));
            }
        });
        FileServer { url, requests, behaviour }
    }

    /// Answers every request whole from now on, as a server without Range support does.
    pub fn ignore_range(&self, ignore: bool) {
        self.behaviour.ignore_range.store(ignore, Ordering::SeqCst);
    }

    /// Cuts the next `answers` answers longer than `after` bytes after `after` body bytes.
    pub fn cut(&self, answers: usize, after: u64) {
        self.behaviour.cut_after.store(after, Ordering::SeqCst);
        self.behaviour.cuts.store(answers, Ordering::SeqCst);
    }
}

fn serve(mut stream: TcpStream, dir: &Path, b: &Behaviour, seen: &std::sync::Mutex<Vec<Option<String>>>) {
    let Ok(clone) = stream.try_clone() else { return };
    let mut reader = BufReader::new(clone);
    let mut request = String::new();
    if reader.read_line(&mut request).unwrap_or(0) == 0 {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = value.trim().strip_prefix("bytes=").map(str::to_owned);
        }
    }
    if let Ok(mut log) = seen.lock() {
        log.push(range.clone());
    }
    let name = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').split('?').next().unwrap_or("").to_owned();
    let Ok(mut file) = std::fs::File::open(dir.join(&name)) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let parsed = range.filter(|_| !b.ignore_range.load(Ordering::SeqCst)).and_then(|r| {
        let (a, b) = r.split_once('-')?;
        let start: u64 = a.parse().ok()?;
        let end: u64 = if b.is_empty() { size.saturating_sub(1) } else { b.parse::<u64>().ok()?.min(size.saturating_sub(1)) };
        (start < size && start <= end).then_some((start, end))
    });
    let (start, len, head) = match parsed {
        Some((start, end)) => (
            start,
            end - start + 1,
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{size}\r\nConnection: close\r\n\r\n",
                end - start + 1
            ),
        ),
        None => (0, size, format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n")),
    };
    // Only answers longer than the cut count: small Range reads go through whole.
    let after = b.cut_after.load(Ordering::SeqCst);
    let cut = len > after && b.cuts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let send = if cut { after } else { len };
    if stream.write_all(head.as_bytes()).is_err() || file.seek(SeekFrom::Start(start)).is_err() {
        return;
    }
    let _ = std::io::copy(&mut file.take(send), &mut stream);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
