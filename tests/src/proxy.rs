//! A TCP proxy a test can sever and restore, to cut one process's broker connections without
//! touching the broker (which other tests share).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

#[derive(Default)]
struct State {
    accepting: bool,
    connections: Vec<AbortHandle>,
}

/// Forwards `127.0.0.1:<port>` to an upstream address.
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept_task: AbortHandle,
}

impl TcpProxy {
    /// Starts forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State { accepting: true, connections: Vec::new() }));
        let shared = state.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                let mut guard = shared.lock().unwrap();
                if !guard.accepting {
                    drop(inbound); // refused: the client sees the connection close at once
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                guard.connections.push(task.abort_handle());
            }
        })
        .abort_handle();
        Self { addr, state, accept_task }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn sever(&self) {
        let mut state = self.state.lock().unwrap();
        state.accepting = false;
        for c in state.connections.drain(..) {
            c.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.state.lock().unwrap().accepting = true;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.sever();
    }
}
