//! Why bytes could not become an event: shared by the catalogue (which decodes `data`) and the
//! envelope (which decodes the rest), and depending on neither.

/// Why bytes could not be turned into an [`crate::Event`]. Every variant is permanent: retrying the
/// same bytes can never succeed, so a consumer parks such a message with [`DecodeError::code`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not an envelope (a required envelope field missing or of the wrong type).
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(String),
    /// The `type` is not in the catalogue.
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    /// The type is known but this `version` is not.
    #[error("unsupported version {version} of `{event_type}`")]
    UnsupportedVersion {
        /// The event type.
        event_type: String,
        /// The version that was sent.
        version: u32,
    },
    /// `data` does not match the schema of its type and version.
    #[error("invalid data for `{event_type}` v{version}: {message}")]
    InvalidData {
        /// The event type.
        event_type: String,
        /// The version that was sent.
        version: u32,
        /// What serde said.
        message: String,
    },
}

impl DecodeError {
    /// A stable, machine-readable reason, used in the `x-parked-reason` header.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedEnvelope(_) => "malformed_envelope",
            Self::UnknownType(_) => "unknown_type",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::InvalidData { .. } => "schema_violation",
        }
    }
}
