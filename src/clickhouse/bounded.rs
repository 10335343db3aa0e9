//! Bounded answers: a ClickHouse error body is read to at most [`MAX_ERROR_BODY`] bytes.
//!
//! The clickhouse crate reads an error answer (a status other than 200, or a 200 announcing
//! `X-ClickHouse-Exception-Code`) whole into memory, and its `HttpClient` trait is sealed: only a
//! hyper legacy client can be handed to it. So the bound sits in that client's connector: each
//! connection it opens to ClickHouse is relayed, in the process, through a hyper server and a
//! hyper client connection. The relay passes every request and every good answer through as
//! they are, and replaces the body of an error answer with its first [`MAX_ERROR_BODY`] bytes
//! (none at all for a 200 announcing the exception by header: that body holds rows); the rest is
//! never read: the body is dropped, which closes the connection to ClickHouse, and the relayed
//! answer says `Connection: close`. An exception in the middle of a good answer is found by the
//! crate in one chunk of the stream (bounded by hyper's read buffer); its log line is bounded by
//! [`crate::framework::bounded_text`].

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;

/// The most of an error answer's body the exporter reads (the text of a ClickHouse exception
/// is a few hundred bytes; beyond this the rest is dropped unread).
pub const MAX_ERROR_BODY: usize = 4 * 1024;

/// Most bytes in flight in the in-process pipe between the crate's client and the relay (grown
/// as needed). As large as hyper's largest read, so that the crate gets the chunks it would get
/// from the socket: it decodes a row again from its start for each chunk that does not complete
/// it, so small chunks make a 1 MiB value cost many times its size.
const PIPE_BUFFER: usize = 512 * 1024;

type BoxError = Box<dyn Error + Send + Sync>;
/// The error that ended a relayed request (a TLS alert, a reset), handed to the crate's side.
type Failure = Arc<Mutex<Option<hyper::Error>>>;

/// A connector whose connections bound error bodies (see the module's documentation).
#[derive(Clone)]
pub struct Bounded<C>(pub C);

impl<C> tower_service::Service<Uri> for Bounded<C>
where
    C: tower_service::Service<Uri> + Clone + Send + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Relayed;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Relayed, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.0.call(dst);
        Box::pin(async move {
            // Connect and TLS errors come back as they are (tls_problem explains them).
            let io = connecting.await.map_err(Into::into)?;
            let (sender, conn) = hyper::client::conn::http1::handshake::<_, Incoming>(io).await?;
            let (near, far) = tokio::io::duplex(PIPE_BUFFER);
            let failure = Failure::default();
            tokio::spawn(relay(sender, conn, far, Arc::clone(&failure)));
            Ok(Relayed { io: TokioIo::new(near), failure })
        })
    }
}

/// Serves the crate's requests arriving on `far` through the connection to ClickHouse.
async fn relay<T>(
    sender: hyper::client::conn::http1::SendRequest<Incoming>,
    conn: hyper::client::conn::http1::Connection<T, Incoming>,
    far: DuplexStream,
    failure: Failure,
) where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let sender = Arc::clone(&sender);
        let failure = Arc::clone(&failure);
        async move {
            // HTTP/1: one request at a time on this connection.
            let mut sender = sender.lock().await;
            let sent = match sender.ready().await {
                Ok(()) => sender.send_request(req).await,
                Err(err) => Err(err),
            };
            match sent {
                Ok(response) => Ok(bound(response)),
                Err(err) => {
                    // The crate's side reads it instead of a bare end of the connection.
                    *failure.lock().expect("relay failure poisoned") = Some(err);
                    Err("the request to ClickHouse failed")
                }
            }
        }
    });
    let server = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(far), service);
    let mut server = std::pin::pin!(server);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        // The crate's side closed: dropping `conn` closes the connection to ClickHouse.
        _ = server.as_mut() => {}
        // ClickHouse closed: finish the answer in flight, then close the crate's side.
        _ = conn.as_mut() => {
            server.as_mut().graceful_shutdown();
            let _ = server.await;
        }
    }
}

/// Whether the clickhouse crate reads this answer as an error (and so whole).
pub fn is_error_answer(status: StatusCode, headers: &hyper::HeaderMap) -> bool {
    status != StatusCode::OK || headers.contains_key("x-clickhouse-exception-code")
}

fn bound(response: Response<Incoming>) -> Response<Capped> {
    let (mut parts, body) = response.into_parts();
    // The relay's server frames the body itself from its size hint.
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(TRANSFER_ENCODING);
    let capped = if !is_error_answer(parts.status, &parts.headers) {
        Capped { body: Some(body), left: None }
    } else {
        parts.headers.insert(CONNECTION, HeaderValue::from_static("close"));
        if parts.status == StatusCode::OK {
            // A 200 announcing an exception by header: its body starts with rows, never a
            // message; none of it is read (the crate reports the header's code).
            Capped { body: None, left: Some(0) }
        } else {
            Capped { body: Some(body), left: Some(MAX_ERROR_BODY) }
        }
    };
    Response::from_parts(parts, capped)
}

/// A body passed through, or (`left` set) cut after that many more bytes.
pub struct Capped {
    body: Option<Incoming>,
    left: Option<usize>,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else { return Poll::Ready(None) };
        let frame = ready!(Pin::new(body).poll_frame(cx));
        let Some(left) = this.left.as_mut() else { return Poll::Ready(frame) };
        match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() >= *left {
                        data.truncate(*left);
                        // Never read the rest: dropping the body closes the connection.
                        this.body = None;
                    }
                    *left -= data.len();
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(trailers) => Poll::Ready(Some(Ok(trailers))),
            },
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.body, self.left) {
            (None, _) => SizeHint::with_exact(0),
            (Some(body), None) => body.size_hint(),
            (Some(body), Some(left)) => {
                let inner = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_upper(inner.upper().map_or(left as u64, |u| u.min(left as u64)));
                hint.set_lower(inner.lower().min(left as u64));
                hint
            }
        }
    }
}

/// The crate's end of a relayed connection.
pub struct Relayed {
    io: TokioIo<DuplexStream>,
    failure: Failure,
}

impl Connection for Relayed {
    fn connected(&self) -> Connected {
        // Plain HTTP/1.1 to the relay, never through a proxy (ClickHouse is reached directly).
        Connected::new()
    }
}

impl hyper::rt::Read for Relayed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        // A failed request gets no answer at all, so what was read with a failure recorded is
        // the end of the connection: the relay's error (and what caused it) instead.
        if let Some(err) = this.failure.lock().expect("relay failure poisoned").take() {
            return Poll::Ready(Err(std::io::Error::other(err)));
        }
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Relayed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
