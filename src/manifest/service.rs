//! Decoders for the service side of the manifest: `broker`, `messaging`, `summary` and
//! `workers`, and the secret references they use.
//!
//! In: one `KdlNode`. Out: its raw AST node; problems go to the collector.

use kdl::KdlNode;

use super::ast::*;
use super::reader::{self, Shape, arg, check_shape, children, name, prop, value_arg};
use crate::diagnostic::{Diagnostics, Issue, Spanned};

/// A secret: `password "text"`, `password env="VAR"` or `password file="/path"`.
pub(super) fn secret(
    node: &KdlNode,
    example: &'static str,
    diags: &mut Diagnostics,
) -> Option<Spanned<SecretRef>> {
    secret_entries(node, 0, example, diags)
}

/// A secret whose value follows `skip` leading arguments (`header NAME env=…`).
fn secret_entries(
    node: &KdlNode,
    skip: usize,
    example: &'static str,
    diags: &mut Diagnostics,
) -> Option<Spanned<SecretRef>> {
    check_shape(
        node,
        &Shape {
            min_args: skip,
            max_args: skip + 1,
            args: "a value",
            props: &["env", "file"],
            children: false,
            example,
        },
        diags,
    );
    let plain = arg(node, skip);
    let env = prop(node, "env");
    let file = prop(node, "file");
    let given: Vec<_> = [plain, env, file].into_iter().flatten().collect();
    match given.as_slice() {
        [] => {
            diags.push(Issue::MissingArgument {
                node: name(node).to_owned(),
                what: "a value, `env=\"VAR\"` or `file=\"/path\"`".into(),
                span: reader::after_name(node),
                help: Some(format!("for example: {example}")),
            });
            None
        }
        [_, second, ..] => {
            diags.push(Issue::ConflictingSettings {
                message: format!("`{}` is given in more than one way", name(node)),
                span: second.span(),
                label: "second value".into(),
                other: given[0].span(),
                help: Some("give one of: a value, `env=\"VAR\"` or `file=\"/path\"`".into()),
            });
            None
        }
        [one] => {
            let s = reader::string(one, &format!("`{}`", name(node)), diags)?;
            let value = match one.name().map(|n| n.value()) {
                None => SecretRef::Plain(s.value),
                Some("env") => SecretRef::Env(s.value),
                _ => SecretRef::File(s.value),
            };
            Some(Spanned::new(value, one.span()))
        }
    }
}

/// `broker URL { username; password }`, `broker env="VAR"` or `broker "memory"`.
pub(super) fn broker(node: &KdlNode, diags: &mut Diagnostics) -> BrokerNode {
    check_shape(
        node,
        &Shape {
            min_args: 0,
            max_args: 1,
            args: "a URL",
            props: &["env"],
            children: true,
            example: "broker \"amqp://127.0.0.1:5672/%2f\"",
        },
        diags,
    );
    let mut out = BrokerNode {
        span: node.span(),
        url: arg(node, 0).and_then(|e| reader::string(e, "the broker URL", diags)),
        url_env: prop(node, "env").and_then(|e| reader::string(e, "the variable name", diags)),
        username: None,
        password: None,
    };
    match (&out.url, &out.url_env) {
        (Some(url), Some(env)) => diags.push(Issue::ConflictingSettings {
            message: "the broker URL is given both inline and by `env`".into(),
            span: env.span,
            label: "URL from the environment".into(),
            other: url.span,
            help: Some("keep one of them".into()),
        }),
        (None, None) if arg(node, 0).is_none() => diags.push(Issue::MissingArgument {
            node: "broker".into(),
            what: "a URL or `env=\"VAR\"`".into(),
            span: reader::after_name(node),
            help: Some("for example: broker \"amqp://127.0.0.1:5672/%2f\"".into()),
        }),
        _ => {}
    }
    for child in children(node, &["username", "password"], &[], diags) {
        match name(child) {
            "username" => out.username = secret(child, "username \"acoupi\"", diags),
            _ => out.password = secret(child, "password env=\"ACOUPI_BROKER_PASSWORD\"", diags),
        }
    }
    out
}

/// `messaging { mqtt; http; send; heartbeat; message… }`.
pub(super) fn messaging(node: &KdlNode, diags: &mut Diagnostics) -> MessagingNode {
    check_shape(
        node,
        &Shape {
            min_args: 0,
            max_args: 0,
            args: "",
            props: &[],
            children: true,
            example: "messaging { mqtt host=\"127.0.0.1\" }",
        },
        diags,
    );
    let mut out = MessagingNode {
        span: node.span(),
        mqtt: None,
        http: None,
        send: None,
        heartbeat: None,
        messages: Vec::new(),
    };
    let allowed = ["mqtt", "http", "send", "heartbeat", "message"];
    for child in children(node, &allowed, &["message"], diags) {
        match name(child) {
            "mqtt" => out.mqtt = Some(mqtt(child, diags)),
            "http" => out.http = Some(http(child, diags)),
            "send" => {
                check_shape(
                    child,
                    &Shape {
                        min_args: 0,
                        max_args: 0,
                        args: "",
                        props: &["every", "batch", "order", "max-attempts", "max-age"],
                        children: false,
                        example: "send every=\"2m\" batch=100 order=\"oldest-first\"",
                    },
                    diags,
                );
                out.send = Some(SendNode {
                    every: prop(child, "every")
                        .and_then(|e| reader::duration(e, "the send interval", diags)),
                    batch: prop(child, "batch")
                        .and_then(|e| reader::integer(e, "the batch size", 1, 100_000, diags)),
                    order: prop(child, "order").and_then(|e| {
                        reader::choice(e, "message order", &["oldest-first", "newest-first"], diags)
                    }),
                    max_attempts: prop(child, "max-attempts").and_then(|e| {
                        reader::integer(e, "the maximum number of attempts", 1, 1000, diags)
                    }),
                    max_age: prop(child, "max-age")
                        .and_then(|e| reader::duration(e, "the maximum message age", diags)),
                });
            }
            "heartbeat" => {
                check_shape(
                    child,
                    &Shape {
                        min_args: 0,
                        max_args: 0,
                        args: "",
                        props: &["every"],
                        children: false,
                        example: "heartbeat every=\"1h\"",
                    },
                    diags,
                );
                out.heartbeat = reader::required(child, "every", "heartbeat every=\"1h\"", diags)
                    .and_then(|e| reader::duration(e, "the heartbeat interval", diags));
            }
            _ => out.messages.push(message(child, diags)),
        }
    }
    out
}

fn mqtt(node: &KdlNode, diags: &mut Diagnostics) -> MqttNode {
    check_shape(
        node,
        &Shape {
            min_args: 0,
            max_args: 0,
            args: "",
            props: &["host", "port", "topic"],
            children: true,
            example: "mqtt host=\"broker.example.org\" port=1883 topic=\"acoupi/site-1\"",
        },
        diags,
    );
    let host = reader::required(node, "host", "mqtt host=\"broker.example.org\"", diags)
        .and_then(|e| reader::string(e, "the MQTT host", diags));
    let mut out = MqttNode {
        span: node.span(),
        host,
        port: prop(node, "port").and_then(|e| reader::integer(e, "the MQTT port", 1, 65535, diags)),
        topic: prop(node, "topic").and_then(|e| reader::string(e, "the MQTT topic", diags)),
        username: None,
        password: None,
        tls: None,
        client_id: None,
        topic_per_type: None,
        timeout: None,
    };
    let allowed = [
        "username",
        "password",
        "tls",
        "client-id",
        "topic-per-type",
        "timeout",
    ];
    for child in children(node, &allowed, &[], diags) {
        match name(child) {
            "username" => out.username = secret(child, "username \"pi\"", diags),
            "password" => {
                out.password = secret(child, "password file=\"/etc/acoupi/mqtt-password\"", diags)
            }
            "tls" => {
                out.tls = value_arg(child, "`#true` or `#false`", "tls #true", diags)
                    .and_then(|e| reader::boolean(e, "`tls`", diags));
            }
            "client-id" => {
                out.client_id =
                    value_arg(child, "an identifier", "client-id \"acoupi-site-1\"", diags)
                        .and_then(|e| reader::string(e, "the client id", diags));
            }
            "timeout" => {
                out.timeout = value_arg(child, "a duration", "timeout \"10s\"", diags)
                    .and_then(|e| reader::duration(e, "the MQTT timeout", diags));
            }
            _ => {
                out.topic_per_type =
                    value_arg(child, "`#true` or `#false`", "topic-per-type #true", diags)
                        .and_then(|e| reader::boolean(e, "`topic-per-type`", diags));
            }
        }
    }
    out
}

fn http(node: &KdlNode, diags: &mut Diagnostics) -> HttpNode {
    check_shape(
        node,
        &Shape {
            min_args: 0,
            max_args: 0,
            args: "",
            props: &["url"],
            children: true,
            example: "http url=\"https://example.org/api/messages\"",
        },
        diags,
    );
    let url = reader::required(
        node,
        "url",
        "http url=\"https://example.org/api/messages\"",
        diags,
    )
    .and_then(|e| reader::string(e, "the HTTP URL", diags));
    let mut out = HttpNode {
        span: node.span(),
        url,
        headers: Vec::new(),
        timeout: None,
    };
    for child in children(node, &["header", "timeout"], &["header"], diags) {
        match name(child) {
            "header" => out.headers.push(HeaderNode {
                name: arg(child, 0).and_then(|e| reader::string(e, "the header name", diags)),
                value: secret_entries(
                    child,
                    1,
                    "header \"Authorization\" env=\"ACOUPI_HTTP_TOKEN\"",
                    diags,
                ),
            }),
            _ => {
                out.timeout = value_arg(child, "a duration", "timeout \"5s\"", diags)
                    .and_then(|e| reader::duration(e, "the HTTP timeout", diags));
            }
        }
    }
    out
}

fn message(node: &KdlNode, diags: &mut Diagnostics) -> MessageNode {
    check_shape(
        node,
        &Shape {
            min_args: 1,
            max_args: 1,
            args: "a message kind",
            props: &["min-score", "detector"],
            children: false,
            example: "message detection min-score=0.5",
        },
        diags,
    );
    let kind = arg(node, 0)
        .and_then(|e| reader::choice(e, "message kind", &["detection", "recording"], diags));
    if kind.as_ref().is_some_and(|k| k.value == "recording") {
        for key in ["min-score", "detector"] {
            if let Some(e) = prop(node, key) {
                diags.push(Issue::UnknownProperty {
                    name: key.into(),
                    node: "message recording".into(),
                    span: e.span(),
                    help: Some("`message recording` takes no properties; scores and detectors apply to `message detection`".into()),
                });
            }
        }
    }
    MessageNode {
        span: node.span(),
        kind,
        min_score: prop(node, "min-score")
            .and_then(|e| reader::number(e, "`min-score`", f64::MIN, f64::MAX, diags)),
        detector: prop(node, "detector")
            .and_then(|e| reader::string(e, "the detector name", diags)),
    }
}

/// `summary every=… { statistics; thresholds low=… mid=… high=… }`.
pub(super) fn summary(node: &KdlNode, diags: &mut Diagnostics) -> SummaryNode {
    check_shape(
        node,
        &Shape {
            min_args: 0,
            max_args: 0,
            args: "",
            props: &["every"],
            children: true,
            example: "summary every=\"1h\" { statistics }",
        },
        diags,
    );
    let every = reader::required(node, "every", "summary every=\"1h\" { statistics }", diags)
        .and_then(|e| reader::duration(e, "the summary interval", diags));
    let mut out = SummaryNode {
        span: node.span(),
        every,
        statistics: None,
        thresholds: None,
    };
    for child in children(node, &["statistics", "thresholds"], &[], diags) {
        if name(child) == "statistics" {
            check_shape(
                child,
                &Shape {
                    min_args: 0,
                    max_args: 0,
                    args: "",
                    props: &[],
                    children: false,
                    example: "statistics",
                },
                diags,
            );
            out.statistics = Some(child.span());
        } else {
            check_shape(
                child,
                &Shape {
                    min_args: 0,
                    max_args: 0,
                    args: "",
                    props: &["low", "mid", "high"],
                    children: false,
                    example: "thresholds low=0.3 mid=0.6 high=0.9",
                },
                diags,
            );
            let t = |k: &str, diags: &mut Diagnostics| {
                prop(child, k).and_then(|e| {
                    reader::number(
                        e,
                        &format!("the `{k}` threshold"),
                        f64::MIN,
                        f64::MAX,
                        diags,
                    )
                })
            };
            out.thresholds = Some((
                child.span(),
                [t("low", diags), t("mid", diags), t("high", diags)],
            ));
        }
    }
    out
}

/// `workers { worker NAME queues=… concurrency=… prefetch=…; task NAME … }`.
pub(super) fn workers(node: &KdlNode, diags: &mut Diagnostics) -> WorkersNode {
    check_shape(
        node,
        &Shape {
            min_args: 0,
            max_args: 0,
            args: "",
            props: &[],
            children: true,
            example: "workers { worker \"default\" queues=\"default\" }",
        },
        diags,
    );
    let mut out = WorkersNode {
        span: node.span(),
        workers: Vec::new(),
        tasks: Vec::new(),
    };
    for child in children(node, &["worker", "task"], &["worker", "task"], diags) {
        if name(child) == "worker" {
            out.workers.push(worker(child, diags));
        } else {
            out.tasks.push(task(child, diags));
        }
    }
    out
}

fn worker(node: &KdlNode, diags: &mut Diagnostics) -> WorkerNode {
    check_shape(
        node,
        &Shape {
            min_args: 1,
            max_args: 1,
            args: "a name",
            props: &["queues", "concurrency", "prefetch"],
            children: false,
            example: "worker \"recording\" queues=\"recording\" concurrency=1",
        },
        diags,
    );
    let queues_entry = prop(node, "queues");
    let queues = queues_entry
        .and_then(|e| reader::string(e, "`queues`", diags))
        .map(|s| split_queues(&s))
        .unwrap_or_default();
    if queues_entry.is_none() {
        diags.push(Issue::MissingProperty {
            node: "worker".into(),
            name: "queues".into(),
            span: reader::after_name(node),
            help: Some(
                "list the queues it consumes, comma-separated: queues=\"default,messaging\"".into(),
            ),
        });
    }
    WorkerNode {
        span: node.span(),
        name: arg(node, 0).and_then(|e| reader::string(e, "the worker name", diags)),
        queues,
        queues_span: queues_entry.map(|e| e.span()),
        concurrency: prop(node, "concurrency")
            .and_then(|e| reader::integer(e, "the concurrency", 1, 256, diags)),
        prefetch: prop(node, "prefetch")
            .and_then(|e| reader::integer(e, "the prefetch count", 1, 65535, diags)),
    }
}

/// Splits `"a, b"` into queue names, each labelled with the span of the whole entry.
fn split_queues(s: &Spanned<String>) -> Vec<Spanned<String>> {
    s.value
        .split(',')
        .map(|q| Spanned::new(q.trim().to_owned(), s.span))
        .collect()
}

fn task(node: &KdlNode, diags: &mut Diagnostics) -> TaskNode {
    check_shape(
        node,
        &Shape {
            min_args: 1,
            max_args: 1,
            args: "a task name",
            props: &[
                "queue",
                "every",
                "offset",
                "retries",
                "soft-time-limit",
                "time-limit",
            ],
            children: false,
            example: "task \"heartbeat\" every=\"30m\" queue=\"default\"",
        },
        diags,
    );
    let dur = |k: &str, what: &str, diags: &mut Diagnostics| {
        prop(node, k).and_then(|e| reader::duration(e, what, diags))
    };
    TaskNode {
        span: node.span(),
        name: arg(node, 0).and_then(|e| reader::string(e, "the task name", diags)),
        queue: prop(node, "queue").and_then(|e| reader::string(e, "the queue name", diags)),
        every: dur("every", "the task interval", diags),
        offset: dur("offset", "the task offset", diags),
        retries: prop(node, "retries")
            .and_then(|e| reader::integer(e, "the retry limit", 0, 1000, diags)),
        soft_time_limit: dur("soft-time-limit", "the soft time limit", diags),
        time_limit: dur("time-limit", "the time limit", diags),
    }
}
