//! Live reload (`SIGHUP`, `POST /api/v1/reload`): read the config again
//! with the start's command-line overrides and, if it is valid, give new
//! calls the new dialplan, queues and prompts. Calls in progress and
//! waiting callers keep what they have.
//!
//! Reading happens off the call path ([`load`] runs on a blocking thread);
//! only the swap ([`apply`]) runs on the core thread.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::{info, warn};

use super::Startup;
use super::cdr_writer::CdrWriter;
use super::core::Core;
use crate::config::Config;
use crate::media::prompt::PromptLibrary;
use crate::metrics::ResultLabel;

/// A config read for a reload, with its prompts and a call record writer
/// on its `cdr.path` (opened anew, which is what log rotation needs);
/// `Err`: why it is refused.
pub type Loaded = Result<(Config, PromptLibrary, Option<CdrWriter>), String>;

/// Reads and validates the config, loads its prompts and opens its call
/// record file (file IO: run it on a blocking thread). `records` counts
/// what the new writer writes.
pub fn load(startup: &Startup, records: &Family<ResultLabel, Counter>) -> Loaded {
    let config = Config::load(&startup.config_path, &startup.overrides).map_err(|errors| {
        format!("{errors}\nthe running config stays; fix the file and reload again")
    })?;
    let prompts = PromptLibrary::load(&config.sounds_dir, config.sound_names()).map_err(|e| {
        format!("loading the prompts of the new config: {e:#}; the running config stays")
    })?;
    let cdr =
        start_cdr(&config, records).map_err(|e| format!("{e:#}; the running config stays"))?;
    Ok((config, prompts, cdr))
}

/// The writer for the config's `cdr:`, if it has one.
pub fn start_cdr(
    config: &Config,
    records: &Family<ResultLabel, Counter>,
) -> anyhow::Result<Option<CdrWriter>> {
    use anyhow::Context;
    config
        .cdr
        .as_ref()
        .map(|c| {
            CdrWriter::start(&c.path, records.clone()).with_context(|| {
                format!(
                    "{}: cdr.path: cannot open the call record file {}",
                    config.path.display(),
                    c.path.display()
                )
            })
        })
        .transpose()
}

/// Swaps a loaded config into `core`, logs and counts the outcome. `Ok`:
/// the settings that changed but need a restart, and the new config's
/// call record writer (the shell's from now on); `Err`: why the new
/// config was refused (the old one stays).
pub fn apply(
    loaded: Loaded,
    core: &mut Core,
    trigger: &str,
) -> Result<(Vec<String>, Option<CdrWriter>), String> {
    let result = loaded.and_then(|(config, prompts, cdr)| {
        core.reload(config, prompts).map(|restart| (restart, cdr))
    });
    match &result {
        Ok((restart, _)) if restart.is_empty() => info!(trigger, "config reloaded"),
        Ok((restart, _)) => warn!(
            trigger,
            restart_needed = %restart.join(", "),
            "config reloaded; these changes need a restart of zentrale and are not applied yet"
        ),
        Err(errors) => warn!(trigger, "config reload refused:\n{errors}"),
    }
    core.metrics
        .config_reloads
        .get_or_create(&ResultLabel {
            result: if result.is_ok() { "ok" } else { "rejected" }.into(),
        })
        .inc();
    result
}
