//! A real S3-compatible server for the storage tests: moto's standalone server (PyPI package
//! `moto[server]`, pinned in scripts/requirements.txt), which speaks the S3 REST API over HTTP.
//! One process per test, on a free port, killed when dropped.

use std::time::Duration;

use platform::settings::S3Settings;
use tokio::process::{Child, Command};

/// A running S3-compatible server.
pub struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    _child: Child,
}

impl S3Server {
    /// Starts the server and waits until it answers.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(crate::python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting moto's S3 server (scripts/python-env.sh installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http.get(&endpoint).send().await.is_ok() {
                return Self { endpoint, _child: child };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the S3 server did not answer within 30 s");
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, name: &str) {
        let res = reqwest::Client::new().put(format!("{}/{name}", self.endpoint)).send().await.unwrap();
        assert!(res.status().is_success(), "creating bucket {name}: {}", res.status());
    }

    /// The settings that reach it (any key is accepted).
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test-secret".into()),
        }
    }
}
