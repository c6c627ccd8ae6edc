//! A request whose body nobody read to its end (a 401 before a handler ran, a 404, a refused
//! size) leaves its bytes on the connection, and hyper closes the connection after the answer.
//! A client that reused the connection meanwhile loses its next request ("remote end closed",
//! over TLS "EOF in violation of protocol": the fuzzer saw dozens under load). The answer then
//! says `Connection: close`, so the client opens a new connection instead of racing the close.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Bodies up to this size are read whole before the handler runs, so none is left unread on the
/// connection whatever the answer (a refused request's bytes would otherwise reset it).
const READ_AHEAD: u64 = 64 * 1024;

pub async fn close_when_body_unread(request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    if request.body().size_hint().upper().is_some_and(|n| n <= READ_AHEAD) {
        let (parts, body) = request.into_parts();
        return match axum::body::to_bytes(body, READ_AHEAD as usize).await {
            Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
            Err(e) => {
                let mut response = super::error::ApiError::BadRequest(format!("cannot read the request body: {e}")).into_response();
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
        };
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::new(Watched { inner: body, read_to_end: read_to_end.clone() });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if !read_to_end.load(Ordering::Acquire) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The request body, noting when it has been read to its end.
struct Watched {
    inner: Body,
    read_to_end: Arc<AtomicBool>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read_to_end.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
