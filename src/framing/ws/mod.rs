//! WebSocket (RFC 6455), the protocol a request upgrades to: the opening handshake
//! ([`handshake`]), the frame codec ([`frame`]) and text validation ([`utf8`]).

pub mod frame;
pub mod handshake;
pub mod utf8;
