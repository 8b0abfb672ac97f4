//! HTTP plumbing shared by every feature: extractors, middleware, static assets.

pub mod assets;
pub mod conn;
pub mod extract;
pub mod middleware;
pub mod page;
