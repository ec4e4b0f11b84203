//! The HTTP messenger against a real local HTTP/1.1 server the tests start: bodies and
//! headers as sent, statuses mapped onto outcomes, keep-alive, timeouts and refusals.

mod common;

use std::time::{Duration, Instant};

use acoupi::messaging::{HttpMessenger, MessageKind, Outcome, Outgoing, ResponseStatus};
use acoupi::spec;
use common::http_server::{HttpServer, Reply};
use common::mosquitto::free_port;
use uuid::Uuid;

fn http(url: &str, timeout_ms: u64) -> spec::Http {
    spec::Http {
        url: url.into(),
        headers: Vec::new(),
        timeout_ms,
    }
}

fn messenger(spec: &spec::Http) -> HttpMessenger {
    HttpMessenger::new(spec).expect("a valid HTTP destination")
}

fn batch(n: usize) -> Vec<Outgoing> {
    (0..n)
        .map(|i| Outgoing {
            id: Uuid::new_v4(),
            kind: Some(MessageKind::Detection),
            content: format!("{{\"n\":{i},\"name\":\"pipistrelle é\"}}").into_bytes(),
        })
        .collect()
}

/// Waits until the server has read `n` requests (they are recorded by its threads).
fn wait_requests(server: &HttpServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.requests().len() < n {
        assert!(
            Instant::now() < deadline,
            "the server read {} requests, not {n}",
            server.requests().len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_posted_as_json_with_the_manifests_headers_over_one_connection() {
    let server = HttpServer::start(Vec::new());
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, "Bearer from-a-file\n").expect("token file");
    let spec = spec::Http {
        headers: vec![
            spec::Header {
                name: "X-Site".into(),
                value: spec::Secret::Value("north hedge".into()),
            },
            spec::Header {
                name: "Authorization".into(),
                value: spec::Secret::File(
                    camino::Utf8PathBuf::from_path_buf(token).expect("utf-8 path"),
                ),
            },
        ],
        ..http(&server.url("/api/messages?site=1"), 5000)
    };
    let m = messenger(&spec);
    assert_eq!(m.name(), server.url("/api/messages?site=1"));
    let messages = batch(5);
    let outcomes = m.send(&messages).await;
    assert_eq!(
        outcomes,
        vec![Outcome::Delivered("{\"ok\":true}".into()); messages.len()]
    );
    let requests = server.requests();
    assert_eq!(requests.len(), messages.len());
    for (r, message) in requests.iter().zip(&messages) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/messages?site=1");
        assert_eq!(r.body, message.content);
        assert_eq!(r.header("Content-Type"), "application/json");
        assert_eq!(r.header("Accept"), "application/json");
        assert_eq!(r.header("X-Site"), "north hedge");
        assert_eq!(r.header("Authorization"), "Bearer from-a-file");
        assert_eq!(
            r.header("Content-Length"),
            message.content.len().to_string()
        );
        assert_eq!(r.connection, 0, "keep-alive: one connection for the batch");
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_map_onto_outcomes_and_bodies_are_kept() {
    let long = "x".repeat(10_000);
    let server = HttpServer::start(vec![
        Reply::ok("{\"stored\":1}"),
        Reply::status(201, "Created", ""),
        Reply::status(404, "Not Found", "no such sensor"),
        Reply::status(500, "Internal Server Error", "boom"),
        Reply::status(408, "Request Timeout", ""),
        Reply::status(504, "Gateway Timeout", "upstream slow"),
        Reply::status(503, "Service Unavailable", "later"),
        Reply::ok(&long),
    ]);
    let outcomes = messenger(&http(&server.url("/m"), 5000))
        .send(&batch(8))
        .await;
    let refused = |status, detail: &str| Outcome::Refused {
        status,
        detail: detail.into(),
    };
    assert_eq!(
        outcomes[..7],
        [
            Outcome::Delivered("{\"stored\":1}".into()),
            Outcome::Delivered(String::new()),
            refused(ResponseStatus::Error, "HTTP 404 Not Found: no such sensor"),
            refused(
                ResponseStatus::Error,
                "HTTP 500 Internal Server Error: boom"
            ),
            refused(ResponseStatus::Timeout, "HTTP 408 Request Timeout"),
            refused(
                ResponseStatus::Timeout,
                "HTTP 504 Gateway Timeout: upstream slow"
            ),
            refused(ResponseStatus::Error, "HTTP 503 Service Unavailable: later"),
        ]
    );
    let Outcome::Delivered(body) = &outcomes[7] else {
        panic!("expected delivered: {:?}", outcomes[7]);
    };
    assert_eq!(body, &format!("{}…", &long[..4096]));
    assert_eq!(server.requests().len(), 8, "every message was tried");
    assert_eq!(
        server.connections(),
        1,
        "answers with bodies keep the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_after_each_answer_gets_a_connection_per_message() {
    let server = HttpServer::start(vec![
        Reply::ok("one").closing(),
        Reply::ok("two").closing(),
        Reply::ok("three").closing(),
    ]);
    let outcomes = messenger(&http(&server.url("/"), 5000))
        .send(&batch(3))
        .await;
    assert_eq!(
        outcomes,
        ["one", "two", "three"].map(|b| Outcome::Delivered(b.into()))
    );
    let connections: Vec<usize> = server.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_once_and_the_rest_is_not_tried() {
    let server = HttpServer::start(vec![Reply::silent()]);
    let m = messenger(&http(&server.url("/slow"), 300));
    let started = Instant::now();
    let outcomes = m.send(&batch(4)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
    let expected = Outcome::Unreachable {
        status: ResponseStatus::Timeout,
        detail: format!(
            "POST {} failed: no complete answer within 300 ms",
            server.url("/slow")
        ),
    };
    assert_eq!(outcomes, vec![expected; 4]);
    wait_requests(&server, 1);
    assert_eq!(
        server.requests().len(),
        1,
        "only the first message was tried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_makes_the_batch_unreachable_at_once() {
    let url = format!("http://127.0.0.1:{}/m", free_port());
    let started = Instant::now();
    let outcomes = messenger(&http(&url, 5000)).send(&batch(3)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(outcomes.len(), 3);
    for o in &outcomes {
        let Outcome::Unreachable { status, detail } = o else {
            panic!("expected unreachable: {o:?}");
        };
        assert_eq!(*status, ResponseStatus::Failed);
        assert!(
            detail.starts_with(&format!("POST {url} failed: ")) && detail.contains("refused"),
            "{detail}"
        );
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "the same cause");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_refused_and_not_followed() {
    let elsewhere = HttpServer::start(Vec::new());
    let server = HttpServer::start(vec![
        Reply::status(302, "Found", "").header("Location", &elsewhere.url("/other")),
        Reply::status(307, "Temporary Redirect", "").header("Location", &elsewhere.url("/t")),
    ]);
    let outcomes = messenger(&http(&server.url("/m"), 5000))
        .send(&batch(3))
        .await;
    assert_eq!(
        outcomes[..2],
        [
            Outcome::Refused {
                status: ResponseStatus::Error,
                detail: format!(
                    "HTTP 302 Found (redirect to `{}` not followed)",
                    elsewhere.url("/other")
                ),
            },
            Outcome::Refused {
                status: ResponseStatus::Error,
                detail: format!(
                    "HTTP 307 Temporary Redirect (redirect to `{}` not followed)",
                    elsewhere.url("/t")
                ),
            },
        ]
    );
    assert_eq!(outcomes[2], Outcome::Delivered("{\"ok\":true}".into()));
    assert_eq!(server.requests().len(), 3);
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
    assert_eq!(elsewhere.connections(), 0);
}

/// Set only in the child process [`a_header_from_an_environment_variable_is_sent`] starts.
const TOKEN_VAR: &str = "ACOUPI_TEST_HTTP_TOKEN";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_from_an_environment_variable_is_sent() {
    let Ok(token) = std::env::var(TOKEN_VAR) else {
        // The variable is read from the process environment, which a test cannot change
        // (unsafe): run this very test again in a child process that has it.
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "a_header_from_an_environment_variable_is_sent",
                "--test-threads=1",
            ])
            .env(TOKEN_VAR, "Bearer from-the-environment")
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the child test failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    };
    let server = HttpServer::start(Vec::new());
    let spec = spec::Http {
        headers: vec![spec::Header {
            name: "Authorization".into(),
            value: spec::Secret::Env(TOKEN_VAR.into()),
        }],
        ..http(&server.url("/env"), 5000)
    };
    let outcomes = messenger(&spec).send(&batch(2)).await;
    assert_eq!(
        outcomes,
        vec![Outcome::Delivered("{\"ok\":true}".into()); 2]
    );
    for r in server.requests() {
        assert_eq!(r.header("Authorization"), token);
    }
    assert_eq!(server.requests().len(), 2);
}
