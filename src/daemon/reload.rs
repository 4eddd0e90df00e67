//! Live reload (`SIGHUP`, `POST /api/v1/reload`): read the config again
//! with the start's command-line overrides and, if it is valid, give new
//! calls the new dialplan, queues and prompts. Calls in progress and
//! waiting callers keep what they have.

use tracing::{info, warn};

use super::Startup;
use super::core::Core;
use crate::config::Config;
use crate::media::prompt::PromptLibrary;

/// Reloads the config into `core`. `Ok`: the settings that changed but need
/// a restart; `Err`: why the new config was refused (the old one stays).
pub fn reload(startup: &Startup, core: &mut Core, why: &str) -> Result<Vec<String>, String> {
    let result = Config::load(&startup.config_path, &startup.overrides)
        .map_err(|errors| {
            format!("{errors}\nthe running config stays; fix the file and reload again")
        })
        .and_then(|config| {
            let prompts =
                PromptLibrary::load(&config.sounds_dir, config.sound_names()).map_err(|e| {
                    format!(
                        "loading the prompts of the new config: {e:#}; the running config stays"
                    )
                })?;
            core.reload(config, prompts)
        });
    match &result {
        Ok(restart) if restart.is_empty() => info!(trigger = why, "config reloaded"),
        Ok(restart) => warn!(
            trigger = why,
            restart_needed = %restart.join(", "),
            "config reloaded; these changes need a restart of zentrale and are not applied yet"
        ),
        Err(errors) => warn!(trigger = why, "config reload refused:\n{errors}"),
    }
    core.metrics
        .config_reloads
        .get_or_create(&crate::metrics::ResultLabel {
            result: if result.is_ok() { "ok" } else { "rejected" }.into(),
        })
        .inc();
    result
}
