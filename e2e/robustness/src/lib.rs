//! The robustness suite: traffic from several clients on every member
//! while faults are injected, the whole history recorded, then checked for
//! linearizability and etcd's watch guarantees.

pub mod check;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod linearizability;
pub mod model;
pub mod patch;
pub mod reference;
pub mod run;
pub mod traffic;
pub mod watch_check;
pub mod watcher;
