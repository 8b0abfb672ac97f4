//! The event bus: typed events broadcast to live listeners (`ws`) and appended to the
//! activity log (`activity`), which `handlers` serves.

pub mod activity;
pub mod bus;
pub mod event;
pub mod handlers;
pub mod ws;

pub(crate) use bus::EventBus;
pub(crate) use event::{Event, EventKind};
