//! What to tell the user for each Salt Edge error class, after the guide's "Guide for
//! Clients Support" and the user doc's FAQ.

pub const ALREADY_SYNCHRONIZED: &str = "You have probably already synchronized this bank account with Salt Edge. \
Check your Salt Edge dashboard for a connection with the same credentials. If it was not created from this \
accounting system, delete it there and link the bank again from here. If it was created from here, find it in \
the connections list and use Update credentials to reactivate it.";

pub const DELETE_KEPT: &str = "The consent was revoked, so your bank data is no longer accessed, but the record \
could not be deleted because the connection still exists within Salt Edge. To remove it completely, sign in to \
your Salt Edge account and delete the synchronization there, then delete the record here again.";

pub fn for_class(class: &str) -> Option<&'static str> {
    Some(match class {
        "InvalidCredentials" => "The bank did not accept the credentials. Check them in your online banking (the bank may \
            also ask you to confirm details or accept new terms there), then use Update credentials.",
        "InvalidInteractiveCredentials" => "The extra authentication step (SMS, one-time password, app confirmation) \
            failed. Refresh the connection and complete that step again.",
        "InteractiveAdapterTimeout" => "The extra authentication step (SMS, one-time password, app confirmation) was \
            not completed in time. Refresh the connection and complete it promptly.",
        "ProviderUnavailable" => "The bank is not available right now. Check that you can sign in to your online \
            banking and that the bank is not under maintenance; the synchronization will be retried later.",
        "ProviderError" => "The bank returned an error that has to be fixed on Salt Edge's side; it has been reported.",
        "ProviderDisabled" | "ProviderInactive" => "This bank is no longer available through Salt Edge.",
        "ConnectionDuplicated" => ALREADY_SYNCHRONIZED,
        "AispConsentExpired" | "AispConsentRevoked" | "AispConsentNotFound" => "The consent to access this bank \
            account has ended. Use Update credentials and check the consent checkbox to give it again.",
        "ConnectionDisabled" | "ConnectionCannotBeRefreshed" => "The connection cannot be refreshed now. If this \
            persists, use Update credentials.",
        _ => return None,
    })
}

/// Why an operation is refused in a connection's state, and what the user does instead
/// (409 from the API). Consent: the guide's "Consent has expired. The user must perform a
/// reconnect and give his consent again."
pub const CONSENT_REVOKED: &str = "The consent to read this bank's data was revoked. Use Update credentials to give your consent again.";
pub const CONSENT_EXPIRED: &str =
    "The consent has expired. Use Update credentials (a reconnect) to give your consent again.";
pub const CONNECTION_INACTIVE: &str = "Salt Edge no longer refreshes this connection (for example after the bank refused the credentials). \
    Use Update credentials to reconnect it.";
pub const CONNECTION_DISABLED: &str = "This connection was disabled at Salt Edge and cannot be used again. Delete it and link the bank again.";
pub const CONNECTION_REMOVED: &str =
    "This connection no longer exists at Salt Edge. Link the bank again.";
