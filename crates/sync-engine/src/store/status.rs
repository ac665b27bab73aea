//! The states and kinds stored as text columns, as Rust enums mapped to the database (their
//! `CHECK` constraints list the same values): nothing compares status or kind strings.

use serde::Serialize;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
        #[sqlx(type_name = "text", rename_all = "snake_case")]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $variant),+
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
