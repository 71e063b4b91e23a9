//! Project tasks, run with `cargo xtask <task>` (an alias in `.cargo/config.toml`): the portable
//! agent build ([`dist`]) and the reader of the glibc versions a binary needs ([`glibc`],
//! [`elf`]), which the test suite also uses to check the dist binary.

pub mod deb;
pub mod dist;
pub mod elf;
pub mod glibc;
pub mod packages;
pub mod tools;
