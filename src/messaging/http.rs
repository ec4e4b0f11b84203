//! The HTTP messenger: `POST`s each message's JSON to the manifest's URL; a 2xx answer is a
//! delivery and its body is kept.
//!
//! In: the manifest's `http` settings (header secrets read in [`HttpMessenger::new`]) and a
//! batch of [`Outgoing`] messages. Out: one [`Outcome`] per message, in batch order.
//!
//! One [`HttpMessenger::send`] runs on a blocking thread (`tokio::task::spawn_blocking`) with
//! one client for the whole batch, so the connection is kept alive across its requests. Each
//! message is a `POST` of its content as is, with `Content-Type: application/json`,
//! `Accept: application/json` (unless the manifest sets those headers itself) and the
//! manifest's headers, whose values are never logged. The manifest's `timeout` bounds each
//! request as a whole: connecting, sending and reading the answer.
//!
//! Outcomes:
//! - 2xx -> [`Outcome::Delivered`] with the answer's body (its first 4 KiB);
//! - any other status -> [`Outcome::Refused`] with `HTTP <code> <reason>: <body>` (`Timeout`
//!   for 408 and 504, else `Error`). Redirects are never followed: a 3xx is refused too, so a
//!   message never lands somewhere else unnoticed;
//! - a transport error (connection refused, DNS, TLS, the timeout) -> that message
//!   [`Outcome::Unreachable`] (`Timeout` for the timeout, else `Failed`), and **the rest of
//!   the batch is `Unreachable` with the same cause without being tried**: a dead destination
//!   costs one timeout per send, not one per message.
//!
//! TLS uses rustls with the ring provider and the system's root certificates (loaded in
//! [`HttpMessenger::new`] for an `https` URL).

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ureq::http::{HeaderName, HeaderValue, StatusCode, header};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use super::{Outcome, Outgoing, ResponseStatus, SetupError};
use crate::runtime::config::resolve_secret;
use crate::spec;

/// How much of an answer's body is kept as the response content.
pub const BODY_KEPT_BYTES: usize = 4096;

/// How much of an answer's body is read at most, so the connection can be reused; a longer
/// body ends the connection (the next request opens a new one).
const BODY_READ_BYTES: u64 = 64 * 1024;

/// An HTTP destination.
#[derive(Clone)]
pub struct HttpMessenger {
    inner: Arc<Inner>,
}

/// What a send needs, shared with its blocking thread.
struct Inner {
    url: String,
    name: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    /// The system's roots, for an `https` URL.
    roots: Option<Arc<Vec<Certificate<'static>>>>,
}

impl fmt::Debug for HttpMessenger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header names only: their values may be secrets.
        let names: Vec<&str> = self.inner.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpMessenger")
            .field("name", &self.inner.name)
            .field("headers", &names)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpMessenger {
    /// A messenger for `spec`, with its header secrets read now and, for an `https` URL, the
    /// system's root certificates loaded.
    pub fn new(spec: &spec::Http) -> Result<Self, SetupError> {
        let parsed = url::Url::parse(&spec.url)
            .map_err(|e| SetupError(format!("HTTP URL `{}`: {e}", redacted(&spec.url))))?;
        let name = name_of(&parsed);
        let tls = match parsed.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(SetupError(format!(
                    "{name}: the HTTP URL's scheme is `{other}`, not `http` or `https`"
                )));
            }
        };
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(SetupError(format!("{name}: the HTTP URL has no host")));
        }
        if spec.timeout_ms == 0 {
            return Err(SetupError(format!("{name}: the HTTP timeout is zero")));
        }
        let mut headers = Vec::with_capacity(spec.headers.len());
        for h in &spec.headers {
            let header_name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                SetupError(format!(
                    "{name}: `{}` is not a valid HTTP header name",
                    h.name
                ))
            })?;
            let what = format!("the HTTP header `{}`", h.name);
            let value = resolve_secret(&h.value, &what).map_err(|e| SetupError(e.to_string()))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                SetupError(format!(
                    "{name}: the value of the HTTP header `{}` contains characters HTTP does not allow (such as a line break)",
                    h.name
                ))
            })?;
            value.set_sensitive(true);
            headers.push((header_name, value));
        }
        let roots = if tls {
            let certs = super::tls::system_roots(&name)?
                .into_iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect();
            Some(Arc::new(certs))
        } else {
            None
        };
        Ok(HttpMessenger {
            inner: Arc::new(Inner {
                url: spec.url.clone(),
                name,
                headers,
                timeout: Duration::from_millis(spec.timeout_ms),
                roots,
            }),
        })
    }

    /// The URL without user name or password.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `POST`s every message of `batch`, in order, over one kept-alive connection; one outcome
    /// per message, in batch order.
    pub async fn send(&self, batch: &[Outgoing]) -> Vec<Outcome> {
        if batch.is_empty() {
            return Vec::new();
        }
        let inner = self.inner.clone();
        let contents: Vec<Vec<u8>> = batch.iter().map(|m| m.content.clone()).collect();
        let count = contents.len();
        match tokio::task::spawn_blocking(move || inner.send_blocking(&contents)).await {
            Ok(outcomes) => outcomes,
            Err(e) => vec![
                Outcome::Unreachable {
                    status: ResponseStatus::Failed,
                    detail: format!("{}: the sending thread failed: {e}", self.inner.name),
                };
                count
            ],
        }
    }
}

impl Inner {
    /// The batch, sent from a blocking thread.
    fn send_blocking(&self, contents: &[Vec<u8>]) -> Vec<Outcome> {
        let agent = self.agent();
        let mut outcomes = Vec::with_capacity(contents.len());
        for content in contents {
            match self.post(&agent, content) {
                Ok(outcome) => outcomes.push(outcome),
                Err(unreachable) => {
                    // The destination is unreachable: the rest is not tried.
                    outcomes.resize(contents.len(), unreachable);
                    break;
                }
            }
        }
        outcomes
    }

    /// One client for one batch.
    fn agent(&self) -> ureq::Agent {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(self.timeout))
            .user_agent(concat!("acoupi/", env!("CARGO_PKG_VERSION")));
        if let Some(roots) = &self.roots {
            config = config.tls_config(
                TlsConfig::builder()
                    .provider(TlsProvider::Rustls)
                    .root_certs(RootCerts::Specific(roots.clone()))
                    .unversioned_rustls_crypto_provider(super::tls::provider())
                    .build(),
            );
        }
        config.build().into()
    }

    /// One `POST`: the outcome when the server answered, `Err` with the unreachable outcome
    /// when it could not be reached.
    fn post(&self, agent: &ureq::Agent, content: &[u8]) -> Result<Outcome, Outcome> {
        let mut request = agent.post(&self.url);
        let has = |h: &HeaderName| self.headers.iter().any(|(n, _)| n == h);
        if !has(&header::CONTENT_TYPE) {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if !has(&header::ACCEPT) {
            request = request.header(header::ACCEPT, "application/json");
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let mut response = request.send(content).map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = read_body(response.body_mut());
        if status.is_success() {
            return Ok(Outcome::Delivered(body));
        }
        let mut detail = status_line(status);
        if status.is_redirection() {
            match location {
                Some(to) => detail.push_str(&format!(" (redirect to `{to}` not followed)")),
                None => detail.push_str(" (redirect not followed)"),
            }
        }
        if !body.is_empty() {
            detail.push_str(": ");
            detail.push_str(&body);
        }
        let status = match status {
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ResponseStatus::Timeout,
            _ => ResponseStatus::Error,
        };
        Ok(Outcome::Refused { status, detail })
    }

    /// The outcome of a transport error.
    fn unreachable(&self, e: &ureq::Error) -> Outcome {
        let (status, cause) = match e {
            ureq::Error::Timeout(_) => (
                ResponseStatus::Timeout,
                format!("no complete answer within {} ms", self.timeout.as_millis()),
            ),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                (ResponseStatus::Timeout, format!("timed out: {io}"))
            }
            ureq::Error::Io(io) => (ResponseStatus::Failed, io.to_string()),
            ureq::Error::HostNotFound => (ResponseStatus::Failed, "host not found".into()),
            other => (ResponseStatus::Failed, other.to_string()),
        };
        Outcome::Unreachable {
            status,
            detail: format!("POST {} failed: {cause}", self.name),
        }
    }
}

/// `HTTP <code> <reason>`.
fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// The body's first [`BODY_KEPT_BYTES`] as text (`…` marks a cut); the body is read on up
/// to [`BODY_READ_BYTES`] so the connection can serve the next request.
fn read_body(body: &mut ureq::Body) -> String {
    let mut bytes = Vec::new();
    let read = body
        .as_reader()
        .take(BODY_READ_BYTES)
        .read_to_end(&mut bytes);
    let mut text = truncate(&bytes);
    if let Err(e) = read {
        text.push_str(&format!(
            " (body unreadable after {} bytes: {e})",
            bytes.len()
        ));
    }
    text
}

/// `bytes` as text, cut to at most [`BODY_KEPT_BYTES`] on a character boundary.
fn truncate(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= BODY_KEPT_BYTES {
        return text.into_owned();
    }
    let mut end = BODY_KEPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The URL without user name or password.
fn name_of(url: &url::Url) -> String {
    let mut url = url.clone();
    // Only fails for URLs that cannot have credentials, which then have none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// An unparsable URL for a message: cut before any `@`, which may follow credentials.
fn redacted(url: &str) -> String {
    match url.rfind('@') {
        Some(at) => match url.find("://") {
            Some(scheme) if scheme < at => format!("{}://…{}", &url[..scheme], &url[at..]),
            _ => format!("…{}", &url[at..]),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> spec::Http {
        spec::Http {
            url: url.into(),
            headers: vec![spec::Header {
                name: "Authorization".into(),
                value: spec::Secret::Value("Bearer s3cret".into()),
            }],
            timeout_ms: 5000,
        }
    }

    #[test]
    fn the_name_is_the_url_without_credentials() {
        let m =
            HttpMessenger::new(&spec("http://user:pw@example.org:8080/api?x=1")).expect("valid");
        assert_eq!(m.name(), "http://example.org:8080/api?x=1");
        let debug = format!("{m:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("pw"),
            "{debug}"
        );
        assert!(debug.contains("authorization"), "{debug}");
        let tls = HttpMessenger::new(&spec("https://example.org/m")).expect("system roots");
        assert_eq!(tls.name(), "https://example.org/m");
        assert!(tls.inner.roots.as_ref().is_some_and(|r| !r.is_empty()));
    }

    #[test]
    fn setup_errors_name_what_is_wrong() {
        let mut unset = spec("http://example.org/");
        unset.headers[0].value = spec::Secret::Env("ACOUPI_TEST_SURELY_UNSET_HTTP_TOKEN".into());
        let e = HttpMessenger::new(&unset).expect_err("unset variable");
        assert!(
            e.0.contains("ACOUPI_TEST_SURELY_UNSET_HTTP_TOKEN") && e.0.contains("Authorization"),
            "{e}"
        );
        let e = HttpMessenger::new(&spec("ftp://example.org/")).expect_err("scheme");
        assert!(e.0.contains("`ftp`"), "{e}");
        let e = HttpMessenger::new(&spec("http://a:hunter2@[nope/")).expect_err("unparsable");
        assert!(!e.0.contains("hunter2"), "{e}");
        let mut bad = spec("http://example.org/");
        bad.headers[0].name = "Bad Name".into();
        let e = HttpMessenger::new(&bad).expect_err("header name");
        assert!(e.0.contains("`Bad Name`"), "{e}");
        let mut bad = spec("http://example.org/");
        bad.headers[0].value = spec::Secret::Value("a\nb".into());
        let e = HttpMessenger::new(&bad).expect_err("header value");
        assert!(
            e.0.contains("Authorization") && !e.0.contains("a\nb"),
            "{e}"
        );
    }

    #[test]
    fn bodies_are_cut_on_a_character_boundary() {
        assert_eq!(truncate(b"ok"), "ok");
        let long = "é".repeat(BODY_KEPT_BYTES);
        let cut = truncate(long.as_bytes());
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= BODY_KEPT_BYTES + '…'.len_utf8());
        assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
    }

    #[test]
    fn status_lines_name_code_and_reason() {
        assert_eq!(status_line(StatusCode::NOT_FOUND), "HTTP 404 Not Found");
        assert_eq!(
            status_line(StatusCode::from_u16(599).expect("valid code")),
            "HTTP 599"
        );
    }
}
