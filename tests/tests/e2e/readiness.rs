//! Readiness per role: an API stays ready while it can serve (PostgreSQL reachable) and says
//! what is degraded; a workers process needs PostgreSQL and RabbitMQ.

use std::time::Duration;

use serde_json::Value;
use tests::{StatusCode, TestSystem, proxy::TcpProxy};
use tokio_util::sync::CancellationToken;

/// `url` with `from` (host:port) replaced by the proxy's address.
fn through(url: &str, from: &str, proxy: &TcpProxy) -> String {
    assert!(url.contains(from), "{url} does not point at {from}");
    url.replace(from, &proxy.addr().to_string())
}

async fn ready(http: &reqwest::Client, port: u16) -> (StatusCode, Value) {
    let res = http.get(format!("http://127.0.0.1:{port}/ready")).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_is_ready_while_it_can_serve() {
    let system = TestSystem::start_with(tests::Options { workers: false, ..Default::default() }).await;
    let pg = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let redis = TcpProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let rabbit = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let mut settings = system.settings.clone();
    settings.migrate_on_start = false;
    settings.database_url = through(&settings.database_url, "127.0.0.1:5432", &pg);
    settings.redis_url = through(&settings.redis_url, "127.0.0.1:6379", &redis);
    settings.amqp_url = through(&settings.amqp_url, "127.0.0.1:5672", &rabbit);

    let stop = CancellationToken::new();
    let command = command_api::App::build(settings.clone()).await.unwrap();
    let query = query_api::App::build(settings.clone()).await.unwrap();
    let workers = workers::App::build(settings.clone(), vec![workers::Role::consumer(&platform::topology::INGEST)])
        .await
        .unwrap();
    let ports = [("command-api", command.port()), ("query-api", query.port()), ("workers", workers.port())];
    tokio::spawn(command.run_until_stopped(stop.clone()));
    tokio::spawn(query.run_until_stopped(stop.clone()));
    tokio::spawn(workers.run_until_stopped(stop.clone()));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Expected (status, body status) per role, for each dependency cut in turn.
    type PerRole = [(StatusCode, &'static str); 3];
    let cases: [(&str, Option<&TcpProxy>, PerRole); 4] = [
        ("nothing", None, [(StatusCode::OK, "ready"); 3]),
        ("redis", Some(&redis), [(StatusCode::OK, "degraded"); 3]),
        (
            "rabbitmq",
            Some(&rabbit),
            [
                (StatusCode::OK, "degraded"),
                (StatusCode::OK, "degraded"),
                (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ],
        ),
        ("postgres", Some(&pg), [(StatusCode::SERVICE_UNAVAILABLE, "not_ready"); 3]),
    ];
    for (cut, proxy, expected) in cases {
        if let Some(p) = proxy {
            p.sever();
        }
        for ((role, port), (status, state)) in ports.iter().zip(expected) {
            // Connections already in a pool notice the cut on their next use; ask until the
            // answer settles (bounded).
            let mut last = None;
            for _ in 0..20 {
                let got = ready(&http, *port).await;
                if got.0 == status && got.1["status"] == state {
                    last = Some(got);
                    break;
                }
                last = Some(got);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let (got_status, body) = last.unwrap();
            assert_eq!(
                (got_status, body["status"].as_str().unwrap_or(&body.to_string())),
                (status, state),
                "{role} with {cut} cut: {body}"
            );
            if let Some(dependency) = proxy.map(|_| cut) {
                let check = body["checks"][dependency].as_str().unwrap_or_default();
                assert!(check.starts_with("down"), "{role} with {cut} cut: {body}");
            }
        }
        if let Some(p) = proxy {
            p.restore();
        }
    }
    // Health is liveness only: it never asks a dependency.
    pg.sever();
    for (role, port) in ports {
        let res = http.get(format!("http://127.0.0.1:{port}/health")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{role}");
    }
    let metrics =
        http.get(format!("http://127.0.0.1:{}/metrics", ports[1].1)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dependency_up{dependency=\"postgres\"}"), "the readiness metric is exported");
    stop.cancel();
}
