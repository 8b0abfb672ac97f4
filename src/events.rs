//! The event bus: typed events broadcast to live listeners and appended to the activity log.

pub mod bus;
pub mod event;
pub mod ws;

pub use bus::EventBus;
pub use event::{Event, EventKind};
