//! The OpenAPI documents committed under `docs/openapi/` are what clients code against: what
//! the running servers serve must equal them. After changing the API on purpose, regenerate
//! them with `UPDATE_SPECS=1 cargo test -p tests --test e2e specs`.

use std::path::PathBuf;

use serde_json::Value;
use tests::{Options, TestSystem};

fn committed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi").join(format!("{name}.json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_specs_are_the_committed_ones() {
    let system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let update = std::env::var_os("UPDATE_SPECS").is_some();
    for (name, base) in [("command-api", &system.command_url), ("query-api", &system.query_url)] {
        let served: Value = system.http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
        let path = committed(name);
        if update {
            std::fs::write(&path, serde_json::to_string_pretty(&served).unwrap() + "\n").unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{} is missing ({e}); run UPDATE_SPECS=1 cargo test -p tests --test e2e specs", path.display())
        });
        let on_disk: Value = serde_json::from_str(&text).unwrap();
        assert!(
            on_disk == served,
            "{name}: the served spec differs from docs/openapi/{name}.json; if the change is meant, run \
             UPDATE_SPECS=1 cargo test -p tests --test e2e specs and commit the result"
        );
    }
}
