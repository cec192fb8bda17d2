//! toa-edgeone — Tencent EdgeOne's L4 rule lists next to toa's proxy config: `toa proxy
//! rules import` converts them to TOML rules, `toa proxy rules export` writes a config
//! back. The config types and their validation are `toa-config`'s ([`toa_config`]), the
//! only toa crate this one uses: it converts and validates, and never needs the proxy's
//! runtime; the proxy does not carry it either.
//!
//! # Layout
//! - [`import`]: EdgeOne JSON/CSV rule lists (and origin groups) to validated TOML.
//! - [`export`]: a validated config to EdgeOne rule JSON, which `import` reads back.

pub mod export;
pub mod import;
