//! The sync engine's one error type. Each variant belongs to one [`Category`], which says
//! whose fault it is and what to do about it; the HTTP crate maps categories (and a few
//! variants' codes) to problem JSON in one place, and the worker retries by
//! [`SyncError::is_retryable`], never by reading messages.

use saltedge_client::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    // --- the caller's input ---
    /// Input the engine refuses (an email that is not one, a currency that is not ISO 4217),
    /// with a stable code (`invalid_email`…).
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    /// A request the caller may not make (a `return_to` origin outside the allow-list).
    #[error("{detail}")]
    NotAllowed { code: &'static str, detail: String },

    // --- not found (for this caller) ---
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// What the caller asks for is no longer kept (a change-feed cursor older than the
    /// retention), with how to start again.
    #[error("{detail}")]
    Gone { detail: String },

    // --- conflicts with what is recorded ---
    /// The request contradicts what is recorded (another tenant's resource, a review
    /// already decided), with a stable code.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The company already has a connection to this institution (the FAQ's "already
    /// synchronized").
    #[error(
        "this company already has a connection to this institution; use Update credentials on it"
    )]
    AlreadySynchronized { connection_id: uuid::Uuid },
    /// Salt Edge still holds the connection: the consent was revoked, the record is kept.
    #[error("the consent was revoked, but the record could not be deleted as it still exists within Salt Edge")]
    StillHeld { saltedge_class: Option<String> },
    #[error("journal currency {journal} does not match bank account currency {account}")]
    CurrencyMismatch { journal: String, account: String },
    /// What the connection's state forbids (removed or disabled at Salt Edge, consent
    /// revoked or expired, inactive), with what the user should do instead.
    #[error("{detail}")]
    State {
        code: &'static str,
        detail: &'static str,
        guidance: &'static str,
    },

    // --- a shared budget spent for now ---
    /// A bounded share is used up (the fetch budget, a company's quota): nothing was done;
    /// the same request may succeed after `retry_after`.
    #[error("{what}: the budget is spent for now; retry in {} s", retry_after.as_secs_f64().ceil())]
    Busy {
        what: &'static str,
        retry_after: std::time::Duration,
    },

    // --- upstream ---
    #[error(transparent)]
    SaltEdge(#[from] saltedge_client::Error),

    // --- internal ---
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Something we stored cannot be read back (a callback body, a job's payload): a bug
    /// or a damaged row, not the caller's doing; retrying does not help.
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    /// The per-connection lock's session ended mid-sync; the sync stopped writing.
    #[error("the connection's sync lock was lost (its database session ended); the sync stopped and will run again")]
    LockLost,
    /// A job's code panicked (or its task ended); the job failed alone and the worker went on.
    #[error("panicked: {0}")]
    Panicked(String),
}

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The caller's input: fix the request.
    Caller,
    /// The resource does not exist for this caller.
    NotFound,
    /// The request contradicts recorded state: change the state first.
    Conflict,
    /// A shared budget or quota is spent for now: retry after the time given.
    Busy,
    /// Salt Edge refused or could not be reached.
    Upstream,
    /// Ours: a database outage, a bug, a lost lock.
    Internal,
}

impl SyncError {
    pub fn not_found(what: &'static str) -> Self {
        SyncError::NotFound { what }
    }

    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        SyncError::Invalid {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        SyncError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn busy(what: &'static str, retry_after: std::time::Duration) -> Self {
        SyncError::Busy { what, retry_after }
    }

    /// When a spent budget allows the same request again (ours, or the client's fetch gate).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            SyncError::Busy { retry_after, .. }
            | SyncError::SaltEdge(saltedge_client::Error::Busy { retry_after }) => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    pub fn category(&self) -> Category {
        if self.retry_after().is_some() {
            return Category::Busy;
        }
        match self {
            SyncError::Busy { .. } => Category::Busy,
            SyncError::Invalid { .. } | SyncError::NotAllowed { .. } => Category::Caller,
            SyncError::NotFound { .. } | SyncError::Gone { .. } => Category::NotFound,
            SyncError::Conflict { .. }
            | SyncError::AlreadySynchronized { .. }
            | SyncError::StillHeld { .. }
            | SyncError::CurrencyMismatch { .. }
            | SyncError::State { .. } => Category::Conflict,
            SyncError::SaltEdge(_) => Category::Upstream,
            SyncError::Db(_)
            | SyncError::Corrupt(_)
            | SyncError::LockLost
            | SyncError::Panicked(_) => Category::Internal,
        }
    }

    /// Whether the same work can succeed later without anyone acting: outages, lost locks,
    /// panics (a bug may depend on timing) and Salt Edge failures except those that need
    /// the user (credentials, consent) or are final (gone, disabled).
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::SaltEdge(se) => !matches!(
                se.class(),
                Some(
                    ErrorClass::InvalidCredentials
                        | ErrorClass::ConnectionNotFound
                        | ErrorClass::AispConsentRevoked
                        | ErrorClass::AispConsentExpired
                        | ErrorClass::ConnectionDisabled
                        | ErrorClass::ProviderDisabled
                )
            ),
            SyncError::Db(_) | SyncError::LockLost | SyncError::Panicked(_) => true,
            SyncError::Busy { .. } => true,
            SyncError::Invalid { .. }
            | SyncError::NotAllowed { .. }
            | SyncError::NotFound { .. }
            | SyncError::Gone { .. }
            | SyncError::Conflict { .. }
            | SyncError::AlreadySynchronized { .. }
            | SyncError::StillHeld { .. }
            | SyncError::CurrencyMismatch { .. }
            | SyncError::State { .. }
            | SyncError::Corrupt(_) => false,
        }
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
