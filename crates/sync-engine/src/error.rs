//! The sync engine's one error type; the HTTP crate maps it to problem JSON in one place.

use saltedge_client::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    SaltEdge(#[from] saltedge_client::Error),
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("journal currency {journal} does not match bank account currency {account}")]
    CurrencyMismatch { journal: String, account: String },
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The request contradicts what is recorded (another tenant's resource, say).
    #[error("{0}")]
    Conflict(String),
    /// The per-connection lock's session ended mid-sync; the sync stopped writing.
    #[error("the connection's sync lock was lost (its database session ended); the sync stopped and will run again")]
    LockLost,
    /// A job's code panicked; the job failed alone and the worker went on.
    #[error("panicked: {0}")]
    Panicked(String),
}

impl SyncError {
    pub fn not_found(what: &'static str) -> Self {
        SyncError::NotFound { what }
    }

    /// Salt Edge's error class, when the failure came from Salt Edge.
    pub fn saltedge_class(&self) -> Option<&ErrorClass> {
        match self {
            SyncError::SaltEdge(e) => e.class(),
            _ => None,
        }
    }
}

pub type Result<T, E = SyncError> = std::result::Result<T, E>;
