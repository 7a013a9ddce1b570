//! WebSocket (RFC 6455), the protocol a request upgrades to: the opening handshake
//! ([`handshake`]).

pub mod handshake;
