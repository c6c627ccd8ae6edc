//! Records every tracing event during a run: the plugin's own `log` lines (the runtime logs them
//! inside the call), the programs it ran and the runtime's exec refusals, so the suite can look for leaked
//! secrets and ungranted programs.

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Debug, Clone)]
pub struct Event {
    pub message: String,
    /// All fields as `name=value`, the message among them.
    pub text: String,
    /// The `program` field (exec events).
    pub program: Option<String>,
}

#[derive(Clone, Default)]
pub struct Capture {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Capture {
    pub fn new() -> Capture {
        Capture::default()
    }

    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::registry().with(Layer { events: self.events.clone() })
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

struct Layer {
    events: Arc<Mutex<Vec<Event>>>,
}

#[derive(Default)]
struct Fields {
    message: String,
    text: String,
    program: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.text, " {}={value:?}", field.name());
        match field.name() {
            "program" => self.program = Some(format!("{value:?}").trim_matches('"').to_owned()),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.text, " {}={value}", field.name());
        match field.name() {
            "program" => self.program = Some(value.to_owned()),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Ok(mut events) = self.events.lock() {
            events.push(Event { message: fields.message, text: fields.text, program: fields.program });
        }
    }
}
