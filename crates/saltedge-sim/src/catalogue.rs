//! The simulator's provider catalogue: the guide's fake providers (country XF) plus demo
//! banks in several countries and currencies (JPY has no minor unit, on purpose).

use crate::wire::{Country, Currency, Provider};

/// How a provider authenticates in the Connect page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// Login + password (`username` / `secret`).
    Credentials,
    /// OAuth redirect: no typed credentials.
    OAuth,
    /// Login + password, then an SMS code (`123456`).
    Interactive,
}

pub struct ProviderSpec {
    pub code: &'static str,
    pub name: &'static str,
    pub country: &'static str,
    pub auth: AuthKind,
    pub fake: bool,
    pub currencies: &'static [&'static str],
    pub mode: &'static str,
}

pub const LOGIN: &str = "username";
pub const PASSWORD: &str = "secret";
pub const SMS_CODE: &str = "123456";

pub const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        code: "fake_client_xf",
        name: "Fake Bank with Client Keys",
        country: "XF",
        auth: AuthKind::Credentials,
        fake: true,
        currencies: &["EUR", "USD", "GBP"],
        mode: "web",
    },
    ProviderSpec {
        code: "fake_oauth_client_xf",
        name: "Fake OAuth Bank with Client Keys",
        country: "XF",
        auth: AuthKind::OAuth,
        fake: true,
        currencies: &["EUR", "USD"],
        mode: "oauth",
    },
    ProviderSpec {
        code: "fake_interactive_client_xf",
        name: "Fake Interactive Bank with Client Keys",
        country: "XF",
        auth: AuthKind::Interactive,
        fake: true,
        currencies: &["EUR", "GBP"],
        mode: "web",
    },
    ProviderSpec {
        code: "fakebank_simple_xf",
        name: "Fakebank Simple",
        country: "XF",
        auth: AuthKind::Credentials,
        fake: true,
        currencies: &["EUR"],
        mode: "web",
    },
    ProviderSpec {
        code: "fakebank_interactive_xf",
        name: "Fakebank Interactive",
        country: "XF",
        auth: AuthKind::Interactive,
        fake: true,
        currencies: &["USD"],
        mode: "web",
    },
    ProviderSpec {
        code: "fakebank_available_xf",
        name: "Fakebank Available Balance",
        country: "XF",
        auth: AuthKind::Credentials,
        fake: true,
        currencies: &["EUR"],
        mode: "web",
    },
    ProviderSpec {
        code: "fakebank_oauth_xf",
        name: "Fakebank OAuth",
        country: "XF",
        auth: AuthKind::OAuth,
        fake: true,
        currencies: &["GBP"],
        mode: "oauth",
    },
    ProviderSpec {
        code: "demobank_de",
        name: "Demobank Deutschland",
        country: "DE",
        auth: AuthKind::OAuth,
        fake: false,
        currencies: &["EUR"],
        mode: "oauth",
    },
    ProviderSpec {
        code: "demobank_gb",
        name: "Demobank United Kingdom",
        country: "GB",
        auth: AuthKind::OAuth,
        fake: false,
        currencies: &["GBP"],
        mode: "oauth",
    },
    ProviderSpec {
        code: "demobank_us",
        name: "Demobank USA",
        country: "US",
        auth: AuthKind::Credentials,
        fake: false,
        currencies: &["USD"],
        mode: "web",
    },
    ProviderSpec {
        code: "demobank_ro",
        name: "Demobank România",
        country: "RO",
        auth: AuthKind::Interactive,
        fake: false,
        currencies: &["RON", "EUR"],
        mode: "web",
    },
    ProviderSpec {
        code: "demobank_jp",
        name: "Demobank Japan",
        country: "JP",
        auth: AuthKind::Credentials,
        fake: false,
        currencies: &["JPY"],
        mode: "web",
    },
    ProviderSpec {
        code: "demobank_md",
        name: "Demobank Moldova",
        country: "MD",
        auth: AuthKind::Credentials,
        fake: false,
        currencies: &["MDL", "USD"],
        mode: "web",
    },
    ProviderSpec {
        code: "demobank_files_de",
        name: "Demobank Statement Upload",
        country: "DE",
        auth: AuthKind::Credentials,
        fake: false,
        currencies: &["EUR"],
        mode: "file",
    },
];

/// Providers that report an available balance (`extra.balance_type = "available"`): the
/// booked balance plus the credit limit, less blocked amounts. The simulator's stand-in for
/// such banks; Salt Edge names neither providers nor a formula.
pub const AVAILABLE_BALANCE: &[&str] = &["fakebank_available_xf"];

/// The time zone of a country's capital, where Salt Edge's nightly fetch runs 02:00–06:00
/// (the guide's access terms). The simulator's own table, for its own countries; others UTC.
pub fn capital(country: &str) -> chrono_tz::Tz {
    use chrono_tz::*;
    match country {
        "DE" => Europe::Berlin,
        "GB" => Europe::London,
        "US" => America::New_York,
        "RO" => Europe::Bucharest,
        "JP" => Asia::Tokyo,
        "MD" => Europe::Chisinau,
        _ => UTC,
    }
}

pub fn spec(code: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|p| p.code == code)
}

/// The provider's numeric id, as `provider_id` on connections.
pub fn provider_id(code: &str) -> String {
    let index = PROVIDERS.iter().position(|p| p.code == code).unwrap_or(0);
    format!("{}", 1000 + index)
}

pub fn provider(index: usize, p: &ProviderSpec) -> Provider {
    Provider {
        id: format!("{}", 1000 + index),
        code: p.code.into(),
        name: p.name.into(),
        country_code: p.country.into(),
        mode: p.mode.into(),
        status: "active",
        automatic_fetch: p.mode != "file",
        interactive: p.auth == AuthKind::Interactive,
        refresh_timeout: 60,
        max_fetch_interval: 365,
        max_consent_days: Some(180),
        supported_fetch_scopes: vec!["accounts", "transactions", "holder_info"],
        supported_account_natures: vec!["account", "card", "savings", "credit_card", "credit"],
        regulated: !p.fake,
        home_url: format!("https://{}.example", p.code),
        logo_url: format!("https://{}.example/logo.svg", p.code),
        created_at: chrono::DateTime::from_timestamp(1_600_000_000, 0).unwrap_or_default(),
        updated_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
    }
}

pub fn providers() -> Vec<Provider> {
    PROVIDERS
        .iter()
        .enumerate()
        .map(|(i, p)| provider(i, p))
        .collect()
}

pub fn countries() -> Vec<Country> {
    [
        ("XF", "Fake Country"),
        ("DE", "Germany"),
        ("GB", "United Kingdom"),
        ("US", "United States"),
        ("RO", "Romania"),
        ("JP", "Japan"),
        ("MD", "Moldova"),
    ]
    .iter()
    .map(|(c, n)| Country {
        code: c,
        name: n,
        refresh_start_time: 2,
    })
    .collect()
}

pub fn currencies() -> Vec<Currency> {
    [
        ("EUR", "Euro"),
        ("USD", "US Dollar"),
        ("GBP", "British Pound"),
        ("RON", "Romanian Leu"),
        ("JPY", "Japanese Yen"),
        ("MDL", "Moldovan Leu"),
    ]
    .iter()
    .map(|(c, n)| Currency { code: c, name: n })
    .collect()
}

/// Minor-unit digits for a currency (ISO 4217).
pub fn scale(currency: &str) -> u32 {
    match currency {
        "JPY" => 0,
        _ => 2,
    }
}
