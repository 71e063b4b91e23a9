//! The gRPC contract between `cryptobot-agent` and `cryptoctl`. The `.proto` files in this crate are
//! the only interface the two binaries share.
