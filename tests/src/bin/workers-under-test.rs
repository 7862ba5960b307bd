//! The `workers` process exactly as shipped (`workers::main_from_env`), built inside this
//! package so that end-to-end tests can run it as a real child process and kill it with SIGKILL.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    workers::main_from_env().await
}
