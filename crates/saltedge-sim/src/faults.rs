//! Fault injection: rules chosen per test (in process or via `POST /sim/faults`) or by
//! flags on `banksync simulator`. A rule matches requests by path and method, skips the
//! first `skip` matches, then applies to the next `times` (all if unset), each with
//! `probability` (always if unset).

use serde::{Deserialize, Serialize};

use crate::world::SplitMix64;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
// Externally tagged on purpose: internally tagged or flattened enums buffer numbers, which
// serde_json's `arbitrary_precision` (needed for money) cannot read back.
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with Salt Edge's error JSON for this class (and its HTTP status).
    ErrorClass(String),
    /// Answer with this HTTP status and a matching error body (429 / 500 / 503…).
    Status(u16),
    /// Wait this many milliseconds, then answer normally.
    Delay(u64),
    /// Send headers, then drop the connection mid-body.
    Drop,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultRule {
    pub action: FaultAction,
    #[serde(default)]
    pub path_contains: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub skip: u32,
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(default, skip_deserializing)]
    pub matched: u32,
    #[serde(default, skip_deserializing)]
    pub applied: u32,
}

impl FaultRule {
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            action,
            path_contains: None,
            method: None,
            skip: 0,
            times: None,
            probability: None,
            matched: 0,
            applied: 0,
        }
    }
    pub fn on_path(mut self, p: &str) -> Self {
        self.path_contains = Some(p.into());
        self
    }
    pub fn on_method(mut self, m: &str) -> Self {
        self.method = Some(m.to_ascii_uppercase());
        self
    }
    /// Only the `n`th matching request (1-based).
    pub fn nth(mut self, n: u32) -> Self {
        self.skip = n.saturating_sub(1);
        self.times = Some(1);
        self
    }
    pub fn skip(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
    pub fn fraction(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    /// Parses the CLI form `ACTION[@path][#skip][xtimes][%prob]`, e.g. `500@transactions#2x1`,
    /// `drop@transactions%0.1`, `InvalidCredentials@connect_sessions`, `delay=300`.
    pub fn parse_cli(s: &str) -> Result<Self, String> {
        let mut rest = s;
        let mut take = |sep: char| -> Option<String> {
            let i = rest.rfind(sep)?;
            let v = rest[i + 1..].to_string();
            rest = &rest[..i];
            Some(v)
        };
        let prob = take('%')
            .map(|v| v.parse::<f64>().map_err(|e| e.to_string()))
            .transpose()?;
        let times = take('x')
            .map(|v| v.parse::<u32>().map_err(|e| e.to_string()))
            .transpose()?;
        let skip = take('#')
            .map(|v| v.parse::<u32>().map_err(|e| e.to_string()))
            .transpose()?;
        let path = take('@');
        let action = if rest == "drop" {
            FaultAction::Drop
        } else if let Some(ms) = rest.strip_prefix("delay=") {
            FaultAction::Delay(ms.parse().map_err(|_| format!("bad delay in {s}"))?)
        } else if let Ok(status) = rest.parse::<u16>() {
            FaultAction::Status(status)
        } else if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()) {
            FaultAction::ErrorClass(rest.into())
        } else {
            return Err(format!("unknown fault action in {s:?}: use drop, delay=MS, an HTTP status or an error class"));
        };
        Ok(FaultRule {
            action,
            path_contains: path,
            method: None,
            skip: skip.unwrap_or(0),
            times,
            probability: prob,
            matched: 0,
            applied: 0,
        })
    }
}

/// Picks the action for one request, updating the rules' counters.
pub fn pick(
    rules: &mut [FaultRule],
    method: &str,
    path: &str,
    rng: &mut SplitMix64,
) -> Vec<FaultAction> {
    let mut actions = vec![];
    for r in rules.iter_mut() {
        if r.path_contains
            .as_deref()
            .is_some_and(|p| !path.contains(p))
        {
            continue;
        }
        if r.method.as_deref().is_some_and(|m| m != method) {
            continue;
        }
        r.matched += 1;
        if r.matched <= r.skip {
            continue;
        }
        if r.times.is_some_and(|t| r.applied >= t) {
            continue;
        }
        if let Some(p) = r.probability {
            if !rng.chance(p) {
                continue;
            }
        }
        r.applied += 1;
        actions.push(r.action.clone());
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_form_parses() {
        let r = FaultRule::parse_cli("500@transactions#2x1").unwrap();
        assert_eq!(r.action, FaultAction::Status(500));
        assert_eq!(
            (r.path_contains.as_deref(), r.skip, r.times),
            (Some("transactions"), 2, Some(1))
        );
        let r = FaultRule::parse_cli("drop%0.5").unwrap();
        assert_eq!((r.action, r.probability), (FaultAction::Drop, Some(0.5)));
        assert!(FaultRule::parse_cli("what?").is_err());
    }

    #[test]
    fn nth_applies_once() {
        let mut rules = vec![FaultRule::new(FaultAction::Drop).nth(3)];
        let mut rng = SplitMix64::new(1);
        let hits: Vec<bool> = (0..5)
            .map(|_| !pick(&mut rules, "GET", "/x", &mut rng).is_empty())
            .collect();
        assert_eq!(hits, vec![false, false, true, false, false]);
    }
}
