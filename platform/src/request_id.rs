//! The id of the request a task serves, for what runs inside it (problem bodies, logs) without
//! passing it down. Set by `http`'s request middleware.

use uuid::Uuid;

tokio::task_local! {
    /// The request being served on this task.
    pub(crate) static REQUEST_ID: Uuid;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}
