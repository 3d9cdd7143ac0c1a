//! Backups: where they are stored (`store`), what backup Jobs and restore
//! init containers run (`cli` with `save`, `verify`, `restore`, talking to
//! the cluster through `member`) and what they report (`record`).

pub mod cli;
pub mod member;
pub mod pod;
pub mod record;
pub mod restore;
pub mod save;
pub mod schedule;
pub mod store;
pub mod verify;
