//! The states and kinds stored as text columns, as Rust enums mapped to the database (their
//! `CHECK` constraints list the same values): nothing compares status or kind strings. The
//! same enums state the API's vocabularies: each is an `enum` in the OpenAPI document.

use serde::Serialize;

/// A vocabulary's OpenAPI schema: a string whose values are its `ALL`, as `as_str` spells
/// them (the same text serde writes), described by its doc comment.
macro_rules! vocabulary_schema {
    ($name:ident, $($doc:literal),*) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc: Vec<&str> = vec![$($doc.trim()),*];
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(doc.join(" ")).filter(|d| !d.is_empty()))
                    .enum_values(Some($name::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use vocabulary_schema;

macro_rules! text_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($(#[doc = $vdoc:literal])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
        #[sqlx(type_name = "text")]
        pub enum $name {
            $($(#[doc = $vdoc])* #[serde(rename = $text)] #[sqlx(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        vocabulary_schema!($name, $($doc),*);
    };
}

text_enum!(
    /// A connection as Salt Edge reports it, or `removed` once Salt Edge no longer holds it.
    ConnectionStatus {
        Active = "active",
        Inactive = "inactive",
        Disabled = "disabled",
        Removed = "removed",
    }
);

text_enum!(
    /// A sync run's progress.
    RunStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
);

text_enum!(
    /// A statement line: booked (posted) or not yet (pending).
    LineStatus {
        Pending = "pending",
        Posted = "posted",
    }
);

text_enum!(
    /// Where a pending transaction stands (`pending_transactions.state`).
    PendingState {
        Pending = "pending",
        Posted = "posted",
        Expired = "expired",
    }
);

text_enum!(
    /// A job in the queue.
    JobStatus {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
        Dead = "dead",
    }
);

text_enum!(
    /// Whose an API token is: a company's, or an operator's.
    TokenKind {
        Company = "company",
        Operator = "operator",
    }
);

text_enum!(
    /// What a quarantined record was.
    RecordKind {
        Transaction = "transaction",
        Account = "account",
    }
);

text_enum!(
    /// Where a connection's consent stands, for the user: `none` (Salt Edge gave no expiry),
    /// `valid`, `expiring` (15 days or fewer left: ask for a reconnect link with
    /// update-credentials now), `expired` or `revoked`.
    ConsentStatus {
        None = "none",
        Valid = "valid",
        Expiring = "expiring",
        Expired = "expired",
        Revoked = "revoked",
    }
);

text_enum!(
    /// A proposed match between a new Salt Edge account and an earlier bank account.
    MatchStatus {
        Proposed = "proposed",
        Confirmed = "confirmed",
        Rejected = "rejected",
    }
);

text_enum!(
    /// A statement is `open` until its period has ended and a sync after that has
    /// completed; then `closed`, numbered, and never changed again.
    StatementState {
        Open = "open",
        Closed = "closed",
    }
);

text_enum!(
    /// The bookkeeper's review of a look-alike flag: `flagged` (waiting), `confirmed` (a
    /// duplicate: out of the journal) or `dismissed`.
    DuplicateReview {
        Flagged = "flagged",
        Confirmed = "confirmed",
        Dismissed = "dismissed",
    }
);

text_enum!(
    /// The bookkeeper's answer to a line gone at the bank: `flagged` (waiting),
    /// `confirmed` (the removal: out of the journal) or `kept`.
    RemovalReview {
        Flagged = "flagged",
        Confirmed = "confirmed",
        Kept = "kept",
    }
);

text_enum!(
    /// The bookkeeper's review of a possible re-issue: `flagged` (waiting) or `dismissed`.
    ReissueReview {
        Flagged = "flagged",
        Dismissed = "dismissed",
    }
);

text_enum!(
    /// What an entry of the change feed is.
    ChangeEntity {
        Line = "line",
        Statement = "statement",
    }
);

text_enum!(
    /// A webhook endpoint: `enabled`, `paused` (through the API) or `disabled` (by
    /// banksync, after failing for days).
    EndpointState {
        Enabled = "enabled",
        Paused = "paused",
        Disabled = "disabled",
    }
);

text_enum!(
    /// A webhook delivery: `pending` (attempts go on) or `delivered`.
    DeliveryState {
        Pending = "pending",
        Delivered = "delivered",
    }
);

text_enum!(
    /// What the callback receiver did with a verified callback: `accepted`, or `duplicate`
    /// for a redelivery (ignored).
    CallbackOutcome {
        Accepted = "accepted",
        Duplicate = "duplicate",
    }
);
