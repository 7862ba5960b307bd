//! The broker goes away mid-stream: nothing is lost, nothing is applied twice, order is kept.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tests::{Options, StatusCode, TestSystem, proxy::TcpProxy};

use crate::support;

/// `host:port` of an `amqp://user:pass@host:port/vhost` URL, and the URL with another address.
pub(crate) fn split_amqp_url(url: &str) -> (SocketAddr, impl Fn(SocketAddr) -> String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (creds, after) = rest.rsplit_once('@').map_or(("", rest), |(c, a)| (c, a));
    let (hostport, path) = after.split_once('/').map_or((after, ""), |(h, p)| (h, p));
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:5672") };
    let upstream = hostport.replace("localhost", "127.0.0.1").parse().unwrap();
    let (scheme, creds, path) = (scheme.to_owned(), creds.to_owned(), path.to_owned());
    let rebuild = move |addr: SocketAddr| {
        let at = if creds.is_empty() { String::new() } else { format!("{creds}@") };
        format!("{scheme}://{at}{addr}/{path}")
    };
    (upstream, rebuild)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_workers_broker_connections_loses_and_doubles_nothing() {
    let base = tests::isolated_settings();
    let (upstream, via) = split_amqp_url(&base.amqp_url);
    let proxy = Arc::new(TcpProxy::start(upstream).await);
    let system = Arc::new(
        TestSystem::start_with(Options { workers_amqp_url: Some(via(proxy.addr())), ..Default::default() }).await,
    );
    let (_conn, channel) = support::broker(&system).await;
    let tap = support::tap(&channel, &system).await;

    const USERS: usize = 120;
    let registering = {
        let system = system.clone();
        tokio::spawn(async move {
            let mut users = Vec::new();
            for wave in 0..(USERS / 6) {
                let batch = futures::future::join_all((0..6).map(|i| system.register(format!("w{wave}u{i}")))).await;
                users.extend(batch);
            }
            users
        })
    };
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        proxy.sever();
        tokio::time::sleep(Duration::from_millis(400)).await;
        proxy.restore();
    }
    let users = registering.await.unwrap();
    assert_eq!(users.len(), USERS);

    let limit = Duration::from_secs(60);
    system
        .eventually(limit, "every profile projected", || async {
            (system.count("select count(*) from read.profiles").await == USERS as i64).then_some(())
        })
        .await;
    system
        .eventually(limit, "the outbox drained", || async {
            (system.count("select count(*) from eventstore.events where published_at is null").await == 0).then_some(())
        })
        .await;
    assert_eq!(
        system.count("select count(*) from projection.applied_events where projection = 'profiles'").await,
        USERS as i64,
        "each event applied exactly once"
    );
    for user in users.iter().step_by(17) {
        let res = system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.body["username"], user.username);
    }

    // What reached the broker is the log, in the relay's order: republished duplicates after a
    // cut may follow, but no event ever overtakes one before it.
    let log_order: Vec<String> =
        sqlx::query_scalar("select id::text from eventstore.events order by transaction_id, position")
            .fetch_all(&system.db)
            .await
            .unwrap();
    let seen = support::drain(&channel, &tap).await;
    let mut first_seen: Vec<String> = Vec::new();
    for msg in &seen {
        let id = msg["id"].as_str().unwrap().to_owned();
        if !first_seen.contains(&id) {
            first_seen.push(id);
        }
    }
    assert_eq!(first_seen, log_order, "events reached the broker in log order ({} deliveries)", seen.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_stopped_gracefully_finish_their_work_and_resume_later() {
    let mut system = TestSystem::start().await;
    let users = futures::future::join_all((0..20).map(|i| system.register(format!("g{i}")))).await;
    system
        .eventually(Duration::from_secs(10), "the outbox drained", || async {
            (system.count("select count(*) from eventstore.events where published_at is null").await == 0).then_some(())
        })
        .await;
    system.stop_workers().await;
    // Commands keep working while no worker runs; their events wait in the outbox.
    let late = system.register("late").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // user.registered and the verification mail's mail.requested.
    assert_eq!(system.count("select count(*) from eventstore.events where published_at is null").await, 2);

    system.start_workers(None).await;
    let res = system.query("/api/v1/users/me", &late.access_token, Some(&late.consistency_token)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("x-consistency").as_deref(), Some("fresh"));
    assert_eq!(system.count("select count(*) from read.profiles").await, users.len() as i64 + 1);
    assert_eq!(
        system.count("select count(*) from projection.applied_events where projection = 'profiles'").await,
        users.len() as i64 + 1
    );
}
