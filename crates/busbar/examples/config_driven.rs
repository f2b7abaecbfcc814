//! Documentation scenario: Integration with Other Components › Working with ConfigHandler —
//! a bus built from the application's configuration, and an event published only if the
//! configuration enables it.
//!
//! The application's TOML file (`examples/config/app.toml`) embeds a `[busbar]` table, which
//! deserializes into [`BusConfig`]; `BUSBAR_*` environment variables override it; the bus is
//! built with [`EventBus::from_config`]. The application's own setting
//! `notifications.email.enabled` (default `true`, as in the documentation) decides whether a
//! `notification.email` event is published.
//!
//! Run with `cargo run -p busbar --example config_driven`; pass another file as the first
//! argument to try other settings, e.g. `BUSBAR_THREADS=4 cargo run -p busbar --example
//! config_driven -- my.toml`.

use std::path::PathBuf;
use std::process::ExitCode;

use busbar::{handler_fn, BusConfig, Event, EventBus, EventFactory, EventResult};
use serde::Deserialize;
use serde_json::json;

/// The application's configuration file.
#[derive(Debug, Deserialize)]
struct AppConfig {
    app: AppSection,
    #[serde(default)]
    notifications: Notifications,
    /// busbar's settings; all defaults if the table is missing.
    #[serde(default)]
    busbar: BusConfig,
}

#[derive(Debug, Deserialize)]
struct AppSection {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
struct Notifications {
    #[serde(default)]
    email: EmailNotifications,
}

#[derive(Debug, Deserialize)]
struct EmailNotifications {
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(default = "default_recipient")]
    recipient: String,
}

impl Default for EmailNotifications {
    fn default() -> Self {
        EmailNotifications { enabled: enabled_by_default(), recipient: default_recipient() }
    }
}

/// `config.get("notifications.email.enabled", default=True)`.
fn enabled_by_default() -> bool {
    true
}

fn default_recipient() -> String {
    "admin@example.com".to_owned()
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Load configuration
    let path = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/config/app.toml"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut config: AppConfig = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // The environment wins over the file; this also checks the settings.
    config.busbar = config
        .busbar
        .with_env()
        .map_err(|e| format!("[busbar] settings of {} with BUSBAR_* overrides: {e}", path.display()))?;
    println!("loaded {} for `{}`", path.display(), config.app.name);
    println!("busbar settings: {:?}", config.busbar);

    // Create event bus with config-driven settings
    let factory = EventFactory::new();
    factory.register_event_type("notification.email", || {
        handler_fn(|ctx| {
            let recipient = ctx.event().data()["recipient"].as_str().ok_or("no `recipient` string")?;
            println!("Sending email notification to {recipient}");
            Ok(EventResult::success_with(json!({"sent_to": recipient})))
        })
    });
    let bus = EventBus::from_config(&config.busbar, factory)?;

    // Create events based on configuration
    let notify_email = &config.notifications.email;
    if notify_email.enabled {
        let event = Event::new("notification.email").with_data(json!({"recipient": notify_email.recipient}));
        let result = bus.publish(event)?.wait();
        assert!(result.success, "{result:?}");
        assert_eq!(result.data["sent_to"], notify_email.recipient.as_str());
    } else {
        println!("email notifications are disabled: nothing published");
    }

    let stats = bus.stats();
    assert_eq!(stats.published, u64::from(notify_email.enabled));
    println!("events published: {}", stats.published);
    bus.shutdown();
    Ok(())
}
