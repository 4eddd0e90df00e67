//! Where a call goes: called number → tenant and hotline. Pure data, no IO.
//!
//! This first version maps numbers exactly (after normalising national and
//! international forms); service hours, menus and overflow come with the
//! dialplan issue.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;

/// What a hotline does with a call, resolved from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub tenant: String,
    pub tenant_name: String,
    pub hotline: String,
    pub hotline_name: String,
    /// The number as configured (not as dialled).
    pub number: String,
    /// Sound played once after answering.
    pub greeting: String,
    /// Sound looped after the greeting until the call ends (hotlines
    /// without a queue).
    pub waiting: String,
    /// The ACD queue callers wait in, as `tenant/queue`.
    pub queue: Option<String>,
    /// Added to the queue's priority for callers of this hotline.
    pub priority: i32,
    /// Ring (180) this long before answering.
    pub answer_after: std::time::Duration,
}

/// The number → route table of all tenants.
#[derive(Debug, Clone, Default)]
pub struct Dialplan {
    by_number: HashMap<String, Arc<Route>>,
}

impl Dialplan {
    /// Builds the table from a validated config (numbers are unique there).
    pub fn from_config(config: &Config) -> Dialplan {
        let mut by_number = HashMap::new();
        for tenant in &config.tenants {
            for hotline in &tenant.dialplan.hotlines {
                for number in &hotline.numbers {
                    let route = Arc::new(Route {
                        tenant: tenant.id.clone(),
                        tenant_name: tenant.name.clone(),
                        hotline: hotline.id.clone(),
                        hotline_name: hotline.name.clone(),
                        number: number.clone(),
                        greeting: hotline.greeting.clone(),
                        waiting: hotline.waiting.clone(),
                        queue: hotline.queue.as_ref().map(ToString::to_string),
                        priority: hotline.priority,
                        answer_after: std::time::Duration::from_millis(hotline.answer_after_ms),
                    });
                    by_number.insert(normalise(number), route);
                }
            }
        }
        Dialplan { by_number }
    }

    /// The route for a called number (Request-URI user), if any.
    ///
    /// ```
    /// # use zentrale::dialplan::normalise;
    /// assert_eq!(normalise("+49561115"), "0561115");
    /// assert_eq!(normalise("0049561115"), "0561115");
    /// assert_eq!(normalise("115"), "115");
    /// ```
    pub fn route(&self, called: &str) -> Option<Arc<Route>> {
        self.by_number.get(&normalise(called)).cloned()
    }

    /// All configured numbers, normalised.
    pub fn numbers(&self) -> impl Iterator<Item = &str> {
        self.by_number.keys().map(String::as_str)
    }
}

/// Brings German numbers into national form: `+49 561 115`, `0049561115`
/// and `49561115`-with-plus all become `0561115`; visual separators and a
/// `;phone-context`/parameters are dropped. Short codes stay as they are.
pub fn normalise(number: &str) -> String {
    let number = number.split(';').next().unwrap_or("");
    let digits: String = number
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    if let Some(rest) = digits.strip_prefix("+49") {
        return format!("0{rest}");
    }
    if let Some(rest) = digits.strip_prefix("0049") {
        return format!("0{rest}");
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_keeps_short_codes_and_strips_separators() {
        assert_eq!(normalise("115"), "115");
        assert_eq!(normalise("+49 (561) 78-70"), "05617870");
        assert_eq!(normalise("0561115;phone-context=+49"), "0561115");
    }
}
