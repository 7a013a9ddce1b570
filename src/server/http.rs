//! HTTP mode's settings from the flags: its limits, the test-backend controls' bounds and
//! defaults, and the checks run on them before anything starts. Built here rather than in
//! `config`, which the framing imports, so imports run one way; nothing here runs per request.

use std::sync::Arc;
use std::time::Duration;

use log::warn;

use crate::config::{Config, FlagError, FramingKind, MAX_TRUSTED_NETS};
use crate::framing::http::control::{ControlLimits, Controls};
use crate::framing::http::{Backend, HeldBudget};
use crate::framing::HttpLimits;

/// The limits of HTTP mode from the flags, with a new `--max-held` budget. Built here rather than
/// in `config`, which the framing imports: imports run one way, down to `config`.
pub(super) fn http_limits(config: &Config) -> HttpLimits {
    HttpLimits {
        max_header: config.max_header as usize,
        max_body: config.max_body,
        header_timeout: Duration::from_secs(config.header_timeout),
        body_timeout: (config.body_timeout > 0).then(|| Duration::from_secs(config.body_timeout)),
        held: Arc::new(HeldBudget::new(config.max_held)),
        max_message: config.max_message,
        ws_ping: config.ws_ping(),
    }
}

/// The bounds of the test-backend controls, from `--max-delay` and `--max-size`.
fn control_limits(config: &Config) -> ControlLimits {
    ControlLimits {
        max_delay: config.max_delay,
        max_size: config.max_size,
    }
}

/// `--http-defaults`, read as a request's query is (none: no control); a bad one is a usage
/// error naming the flag.
fn http_defaults(config: &Config) -> Result<Controls, FlagError> {
    let mut defaults = Controls::default();
    if let Some(query) = &config.http_defaults {
        defaults
            .add_query(query.as_bytes(), &control_limits(config))
            .map_err(|e| FlagError {
                flag: "--http-defaults",
                message: e.to_string().trim_end().to_string(),
            })?;
    }
    Ok(defaults)
}

/// What worker `index`'s HTTP mode needs for the test-backend controls, from the flags.
pub(super) fn backend(config: &Config, index: usize) -> Result<Backend, FlagError> {
    let defaults = http_defaults(config)?;
    Ok(Backend {
        enabled: !config.no_controls,
        limits: control_limits(config),
        defaults: (!defaults.is_empty()).then_some(defaults),
        instance: config.instance.clone(),
        trusted: config.trust_proxy.clone(),
        worker: index,
    })
}

/// Checks the flags of the test-backend controls before anything runs, and warns when they
/// were given to a framing other than HTTP, which ignores them.
pub(super) fn check_controls(config: &Config) -> Result<(), FlagError> {
    if config.trust_proxy.len() > MAX_TRUSTED_NETS {
        return Err(FlagError {
            flag: "--trust-proxy",
            message: format!("give at most {MAX_TRUSTED_NETS} nets"),
        });
    }
    http_defaults(config)?;
    if config.ws_ping > 0 && config.idle_timeout > 0 && config.ws_ping >= config.idle_timeout {
        return Err(FlagError {
            flag: "--ws-ping",
            message: format!(
                "{} s is not shorter than --idle-timeout ({} s), which closes a silent \
                 WebSocket before its ping: shorten --ws-ping or lengthen --idle-timeout",
                config.ws_ping, config.idle_timeout
            ),
        });
    }
    let given = config.instance.is_some()
        || config.http_defaults.is_some()
        || config.no_controls
        || !config.trust_proxy.is_empty();
    if given && config.framing != FramingKind::Http {
        warn!(
            "--instance, --http-defaults, --no-controls and --trust-proxy apply to --framing \
             http only; they are ignored"
        );
    }
    Ok(())
}

/// HTTP's limits on the admin endpoint: a head has at most `SIDE_HEADER_TIMEOUT` to complete.
pub(super) fn admin_limits(config: &Config) -> HttpLimits {
    let limits = http_limits(config);
    HttpLimits {
        header_timeout: limits
            .header_timeout
            .min(crate::config::SIDE_HEADER_TIMEOUT),
        ..limits
    }
}
