//! The client's one error type. API errors keep Salt Edge's error class (typed, unknown
//! classes kept as text) and the HTTP status, so callers can branch on the class.

use std::fmt;

/// Every failure the client can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Salt Edge answered with its error JSON.
    #[error("Salt Edge error {class} (HTTP {status}): {message}")]
    Api {
        status: u16,
        class: ErrorClass,
        message: String,
    },
    /// A non-2xx answer that did not carry Salt Edge's error JSON (a proxy page, say).
    #[error("unexpected HTTP {status} from Salt Edge: {snippet}")]
    UnexpectedStatus { status: u16, snippet: String },
    /// The request did not complete in the configured time.
    #[error("request to Salt Edge timed out")]
    Timeout,
    /// The connection failed or was dropped before a whole answer arrived.
    #[error("transport error talking to Salt Edge: {0}")]
    Transport(#[source] reqwest::Error),
    /// A 2xx answer whose body did not match the documented shape.
    #[error("could not decode Salt Edge response: {0}")]
    Decode(String),
    /// Keys or configuration that cannot be used.
    #[error("client configuration: {0}")]
    Config(String),
    /// Our own budget of fetches of new data (Salt Edge's access terms) is spent for longer
    /// than a caller may wait: nothing was sent; the same request may go after `retry_after`.
    #[error("the budget of fetches from Salt Edge is spent for now; retry in {} s", retry_after.as_secs_f64().ceil())]
    Busy { retry_after: std::time::Duration },
}

impl Error {
    /// The Salt Edge error class, when the API answered with one.
    pub fn class(&self) -> Option<&ErrorClass> {
        match self {
            Error::Api { class, .. } => Some(class),
            _ => None,
        }
    }

    /// Whether repeating the same request later may succeed (429, 5xx, timeouts, drops).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { status, .. } | Error::UnexpectedStatus { status, .. } => {
                *status == 429 || *status >= 500
            }
            Error::Timeout | Error::Transport(_) => true,
            // Not retried inside the client: the caller decides (an API answers 429, a job
            // is queued again for the slot's time).
            Error::Decode(_) | Error::Config(_) | Error::Busy { .. } => false,
        }
    }
}

macro_rules! error_classes {
    ($($(#[$doc:meta])* $name:ident => $status:expr,)*) => {
        /// Salt Edge v5 error classes, each with the HTTP status the API uses for it.
        /// Classes this build does not know are kept verbatim in [`ErrorClass::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorClass {
            $($(#[$doc])* $name,)*
            Other(String),
        }

        impl ErrorClass {
            /// Every class the guide names, in a fixed order.
            pub const ALL: &'static [ErrorClass] = &[$(ErrorClass::$name,)*];

            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorClass::$name => stringify!($name),)*
                    ErrorClass::Other(s) => s,
                }
            }

            /// The HTTP status Salt Edge answers with for this class.
            pub fn http_status(&self) -> u16 {
                match self {
                    $(ErrorClass::$name => $status,)*
                    ErrorClass::Other(_) => 400,
                }
            }

            pub fn parse(s: &str) -> ErrorClass {
                match s {
                    $(stringify!($name) => ErrorClass::$name,)*
                    other => ErrorClass::Other(other.to_string()),
                }
            }
        }
    };
}

error_classes! {
    ConnectionNotFound => 404,
    CustomerNotFound => 404,
    AccountNotFound => 404,
    ProviderNotFound => 404,
    CountryNotFound => 404,
    AttemptNotFound => 404,
    ConsentNotFound => 404,
    ConnectSessionNotFound => 404,
    DuplicatedCustomer => 409,
    /// "You have already used these credentials to connect with this provider."
    ConnectionDuplicated => 409,
    InvalidCredentials => 406,
    InvalidInteractiveCredentials => 406,
    InteractiveAdapterTimeout => 406,
    ProviderUnavailable => 503,
    ProviderError => 406,
    ProviderInactive => 406,
    ProviderDisabled => 406,
    ActionNotAllowed => 403,
    ClientPending => 403,
    ClientDisabled => 403,
    ClientRestricted => 403,
    ClientNotFound => 404,
    ApiKeyNotFound => 401,
    AppIdNotProvided => 400,
    SecretNotProvided => 400,
    ExpiresAtInvalid => 400,
    MissingExpiresAt => 400,
    MissingSignature => 400,
    SignatureNotMatch => 401,
    RequestExpired => 400,
    PublicKeyNotProvided => 400,
    RateLimitExceeded => 429,
    TooManyRequests => 429,
    BackgroundFetchLimitExceeded => 429,
    ConnectionCannotBeRefreshed => 406,
    ConnectionAlreadyProcessing => 409,
    ConnectionDisabled => 406,
    ConnectionLimitReached => 406,
    WrongRequestFormat => 400,
    JsonParseError => 400,
    CustomFieldsSizeTooBig => 400,
    AispConsentExpired => 406,
    AispConsentRevoked => 406,
    AispConsentNotFound => 404,
    AispConsentAlreadyRevoked => 409,
    InternalServerError => 500,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorClass {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorClass::parse(&s))
    }
}

/// The API's error body: `{"error":{"class","message","documentation_url"},"request":{…}}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    pub class: ErrorClass,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_round_trips_and_unknown_is_kept() {
        for c in ErrorClass::ALL {
            assert_eq!(&ErrorClass::parse(c.as_str()), c);
        }
        assert_eq!(
            ErrorClass::parse("BrandNewClass"),
            ErrorClass::Other("BrandNewClass".into())
        );
        assert_eq!(ErrorClass::parse("BrandNewClass").as_str(), "BrandNewClass");
    }
}
