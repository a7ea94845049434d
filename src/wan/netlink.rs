//! The netlink watcher (filled in by the netlink work).
