//! Salt Edge's error classes as the simulator answers them, with the HTTP status for each.
//! Written from the guide's error list (`docs/saltedge/sources/saltedge-api-guide.txt`, "Errors")
//! and `docs/saltedge/api-notes.md`; kept apart from saltedge-client's own list so that
//! the client's assumptions cannot leak into what the simulator says.

use std::fmt;

macro_rules! classes {
    ($($name:ident = $status:literal),* $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum ErrorClass {
            $($name,)*
            /// A class given by a test or a fault rule that the list above does not name.
            Named(String),
        }

        impl ErrorClass {
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorClass::$name => stringify!($name),)*
                    ErrorClass::Named(s) => s,
                }
            }

            pub fn status(&self) -> u16 {
                match self {
                    $(ErrorClass::$name => $status,)*
                    ErrorClass::Named(_) => 400,
                }
            }

            pub fn parse(s: &str) -> ErrorClass {
                match s {
                    $(stringify!($name) => ErrorClass::$name,)*
                    other => ErrorClass::Named(other.to_string()),
                }
            }
        }
    };
}

classes! {
    AccountNotFound = 404, ActionNotAllowed = 403, AispConsentAlreadyRevoked = 409,
    AispConsentExpired = 406, AispConsentNotFound = 404, AispConsentRevoked = 406,
    ApiKeyNotFound = 401, AppIdNotProvided = 400, ClientPending = 403,
    ConnectionCannotBeRefreshed = 406, ConnectionDuplicated = 409, ConnectionNotFound = 404,
    CustomerNotFound = 404, DuplicatedCustomer = 409, ExpiresAtInvalid = 400,
    InternalServerError = 500, InvalidCredentials = 406, InvalidInteractiveCredentials = 406,
    JsonParseError = 400, MissingExpiresAt = 400, MissingSignature = 400,
    ProviderAccessNotGranted = 406, ProviderNotFound = 404, ProviderUnavailable = 503,
    PublicKeyNotProvided = 400, RequestExpired = 400, SecretNotProvided = 400,
    SignatureNotMatch = 401, TooManyRequests = 429, TransactionNotFound = 404,
    WrongRequestFormat = 400, CountryNotFound = 404, AttemptNotFound = 404,
    ConsentNotFound = 404, ConnectSessionNotFound = 404, InteractiveAdapterTimeout = 406,
    ProviderError = 406, ProviderInactive = 406, ProviderDisabled = 406, ClientDisabled = 403,
    ClientRestricted = 403, ClientNotFound = 404, RateLimitExceeded = 429,
    BackgroundFetchLimitExceeded = 429, ConnectionAlreadyProcessing = 409,
    ConnectionDisabled = 406, ConnectionLimitReached = 406, CustomFieldsSizeTooBig = 400,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
