//! A small real HTTP/1.1 server for tests (std::net, a thread per connection): it records
//! every request (method, path, headers, body, which connection it came on) and answers each
//! with the next scripted reply. Keep-alive is honoured unless a reply closes the connection;
//! a silent reply never answers, holding the connection until the client gives up. Bodies
//! come with `Content-Length` or chunked.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One scripted answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: u16,
    /// Reason phrase.
    pub(crate) reason: String,
    /// Extra headers.
    pub(crate) headers: Vec<(String, String)>,
    /// Body.
    pub(crate) body: String,
    /// Close the connection after answering.
    pub(crate) close: bool,
    /// Never answer (the connection stays open until the client closes it).
    pub(crate) silent: bool,
}

impl Reply {
    /// `200 OK` with `body`.
    pub(crate) fn ok(body: &str) -> Self {
        Reply::status(200, "OK", body)
    }

    /// `status reason` with `body`.
    pub(crate) fn status(status: u16, reason: &str, body: &str) -> Self {
        Reply {
            status,
            reason: reason.to_owned(),
            headers: Vec::new(),
            body: body.to_owned(),
            close: false,
            silent: false,
        }
    }

    /// Never answers.
    pub(crate) fn silent() -> Self {
        Reply {
            silent: true,
            ..Reply::ok("")
        }
    }

    /// The same reply with an extra header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The same reply, closing the connection after it (`Connection: close`).
    pub(crate) fn closing(mut self) -> Self {
        self.close = true;
        self
    }
}

/// A request as the server read it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// `POST`, `GET`, …
    pub(crate) method: String,
    /// The request target.
    pub(crate) path: String,
    /// Headers in arrival order, names as sent.
    pub(crate) headers: Vec<(String, String)>,
    /// The body.
    pub(crate) body: Vec<u8>,
    /// The connection's number (0 for the first accepted).
    pub(crate) connection: usize,
}

impl Recorded {
    /// Every value of header `name` (case-insensitive).
    pub(crate) fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`; panics when it is absent or repeated.
    pub(crate) fn header(&self, name: &str) -> &str {
        match self.header_values(name).as_slice() {
            [one] => one,
            other => panic!(
                "header `{name}` sent {} times: {:?}",
                other.len(),
                self.headers
            ),
        }
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    connections: AtomicUsize,
    stopping: AtomicBool,
}

/// A running server; dropping it stops accepting.
pub(crate) struct HttpServer {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on a free port of 127.0.0.1; requests get the `script`'s replies in order,
    /// then `200 OK` with `{"ok":true}`.
    pub(crate) fn start(script: Vec<Reply>) -> Self {
        Self::start_on(
            TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1"),
            script,
        )
    }

    /// [`HttpServer::start`] on a listener the test bound (a port it chose).
    pub(crate) fn start_on(listener: TcpListener, script: Vec<Reply>) -> Self {
        let addr = listener.local_addr().expect("bound address");
        let state = Arc::new(State {
            script: Mutex::new(script.into()),
            ..State::default()
        });
        let shared = state.clone();
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let number = shared.connections.fetch_add(1, Ordering::SeqCst);
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, number, &state));
            }
        });
        HttpServer {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests read so far, in arrival order.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("requests lock").clone()
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor, which then sees `stopping`.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Serves one connection until the client closes it or a reply closes it.
fn serve(stream: TcpStream, connection: usize, state: &State) {
    // A stuck client must not keep the thread for ever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut reader, connection) else {
            return;
        };
        state.requests.lock().expect("requests lock").push(request);
        let reply = state
            .script
            .lock()
            .expect("script lock")
            .pop_front()
            .unwrap_or_else(|| Reply::ok("{\"ok\":true}"));
        if reply.silent {
            // Hold the connection until the client closes it (or the read timeout).
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            return;
        }
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            reply.status,
            reply.reason,
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if reply.close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(reply.body.as_bytes()).is_err()
            || writer.flush().is_err()
        {
            return;
        }
        if reply.close {
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// The next request on the connection; `None` at its end or on garbage.
fn read_request(reader: &mut BufReader<TcpStream>, connection: usize) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = value("content-length") {
        let length: usize = length.parse().ok()?;
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Recorded {
        method,
        path,
        headers,
        body,
        connection,
    })
}
