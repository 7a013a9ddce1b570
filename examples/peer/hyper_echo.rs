//! The peer saythat's HTTP framing is measured against: a minimal hyper 1.x server answering what
//! the HTTP contract (`serve --framing http`) says saythat answers: 200, `text/plain;
//! charset=utf-8`, body = prefix + the request body when there is one, else prefix + the path
//! after its `/`, percent-decoded, query dropped; HEAD alike without the body; OPTIONS 204 with
//! `Allow`. It runs on a current-thread runtime, i.e. one thread like saythat's one loop.
//!
//! A request body is streamed back, not buffered: the answer is the prefix as one frame, then the
//! request's data frames as hyper hands them over (trailers dropped), so a large body costs no
//! more memory than a small one. The answer waits for the body's first frame, so hyper sends
//! `100 Continue` first to a client that expects it, as saythat does (hyper sends one only while
//! no answer has started). The answer's size hint is what is left of the request's plus the
//! frames held, so hyper answers a Content-Length request with Content-Length and a chunked one
//! chunked, as saythat does.
//!
//! Shared by `examples/hyper_peer.rs` (for scripts) and `tests/hyper_peer.rs`. It must stay the
//! idiomatic minimal server, not be tuned past what a hyper user would write: hyper's own
//! defaults decide its refusals (its 400/431 and so on have empty bodies), no `Server` header,
//! no body limit (nothing is buffered), no header timeout (hyper needs a timer set for one), and
//! header names go out lowercase.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The `Content-Type` of every answer with a body, as in saythat's contract.
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
/// The methods an OPTIONS answer lists, as in saythat's contract.
const ALLOWED: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// An answer's body: whole (built from the path, or an error line), empty (OPTIONS) or streamed
/// from the request.
type EchoBody = Either<Either<Full<Bytes>, Empty<Bytes>>, Prefixed>;

/// Binds `addr` on a fresh current-thread runtime in a new thread; returns the bound address.
pub fn spawn(addr: SocketAddr, prefix: Vec<u8>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(serve(listener, prefix));
    });
    Ok(local)
}

/// Accepts forever, a task per connection, each served by hyper's HTTP/1 connection driver with
/// keep-alive and pipelined answers flushed together.
pub async fn serve(listener: std::net::TcpListener, prefix: Vec<u8>) {
    let listener = TcpListener::from_std(listener).expect("a tokio listener");
    let prefix = Bytes::from(prefix);
    let mut http = http1::Builder::new();
    http.keep_alive(true).pipeline_flush(true);
    let http = Arc::new(http);
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let prefix = prefix.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, prefix.clone()));
            // A connection's error (a reset, a malformed request hyper refused) ends only it.
            let _ = http.serve_connection(TokioIo::new(socket), service).await;
        });
    }
}

/// The answer to one request, per saythat's HTTP contract (also the TLS peer's,
/// `examples/hyper_rustls_peer.rs`).
pub async fn answer(
    request: Request<Incoming>,
    prefix: Bytes,
) -> Result<Response<EchoBody>, hyper::Error> {
    if request.method() == Method::OPTIONS {
        let mut response = Response::new(Either::Left(Either::Right(Empty::new())));
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(ALLOWED));
        return Ok(response);
    }
    let body = if request.body().is_end_stream() {
        // No body (none, or Content-Length: 0): say the path.
        let path = request.uri().path();
        let Some(said) = percent_decoded(path.strip_prefix('/').unwrap_or(path)) else {
            return Ok(bad_request("bad percent-encoding in the path\n"));
        };
        let mut whole = Vec::with_capacity(prefix.len() + said.len());
        whole.extend_from_slice(&prefix);
        whole.extend_from_slice(&said);
        Either::Left(Either::Left(Full::new(Bytes::from(whole))))
    } else {
        let mut body = request.into_body();
        let first = loop {
            match body.frame().await.transpose()? {
                Some(frame) => match frame.into_data() {
                    Ok(data) => break Some(data),
                    Err(_trailers) => continue,
                },
                None => break None,
            }
        };
        Either::Right(Prefixed {
            prefix: Some(prefix),
            first,
            body,
        })
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    Ok(response)
}

/// A 400 with a one-line reason, closing the connection, as saythat's refusals do.
fn bad_request(reason: &'static str) -> Response<EchoBody> {
    let body = Either::Left(Either::Left(Full::new(Bytes::from_static(
        reason.as_bytes(),
    ))));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `text` percent-decoded, or None if a `%` is not followed by two hex digits (the crate's
/// decoder passes those through as they are; saythat refuses them with 400).
pub fn percent_decoded(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    well_formed.then(|| percent_encoding::percent_decode_str(text).collect())
}

/// The answer body to a request with a body: the prefix as the first frame, then the request's
/// data frames as they arrive.
pub struct Prefixed {
    /// Taken when sent as the first frame.
    prefix: Option<Bytes>,
    /// The request's first data frame, awaited before answering; taken when sent second.
    first: Option<Bytes>,
    /// The request's body, read only as fast as the answer is written.
    body: Incoming,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(bytes) = self.prefix.take().or_else(|| self.first.take()) {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                // Trailers are not part of what the client said.
                Poll::Ready(Some(Ok(frame))) if !frame.is_data() => continue,
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.first.is_none() && self.body.is_end_stream()
    }

    /// The request body's hint (what is left of it) plus the frames held: exact (so hyper sends Content-Length) when the
    /// request had a Content-Length, open (so hyper answers chunked) when it was chunked.
    fn size_hint(&self) -> SizeHint {
        let held = |bytes: &Option<Bytes>| bytes.as_ref().map_or(0, |b| b.len() as u64);
        let extra = held(&self.prefix) + held(&self.first);
        let inner = self.body.size_hint();
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(extra));
        }
        hint.set_lower(inner.lower().saturating_add(extra));
        hint
    }
}
