//! Fuzzes HTTP mode through the `Protocol` interface, driven the way the event loop drives it;
//! the plan, the checks and the known findings are in `http_check.rs`, shared with
//! `http_over_tls`.
#![no_main]

mod http_check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    http_check::check(data, &mut |piece| piece.to_vec());
});
