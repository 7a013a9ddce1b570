//! Incremental UTF-8 validation for text messages whose bytes come in pieces (frames, reads):
//! a message is refused at the first byte that cannot be part of valid UTF-8, not at its end
//! (RFC 6455 §8.1 lets a server fail fast; the Autobahn suite checks it does).
//!
//! It carries at most the 3 bytes of a character cut between pieces, never allocates, and
//! leaves the scanning to std's validator.

/// A message's text validated so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Utf8 {
    /// The start of a character cut at the end of the last piece.
    carry: [u8; 3],
    carried: u8,
}

/// The text is not UTF-8: this byte cannot follow what came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

impl Utf8 {
    /// Validates the next piece of the text.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Invalid> {
        if self.carried > 0 {
            // Finish the cut character first, from at most 4 bytes.
            let had = usize::from(self.carried);
            let take = bytes.len().min(4 - had);
            let mut char_bytes = [0u8; 4];
            char_bytes[..had].copy_from_slice(&self.carry[..had]);
            char_bytes[had..had + take].copy_from_slice(&bytes[..take]);
            match std::str::from_utf8(&char_bytes[..had + take]) {
                Ok(_) => {
                    self.carried = 0;
                    bytes = &bytes[take..];
                }
                Err(e) if e.valid_up_to() > 0 => {
                    // The character is whole (it is longer than the carry); go on after it.
                    self.carried = 0;
                    bytes = &bytes[e.valid_up_to() - had..];
                }
                Err(e) if e.error_len().is_some() => return Err(Invalid),
                Err(_) => {
                    // Still cut: the piece was shorter than the rest of the character.
                    self.carry[had..had + take].copy_from_slice(&bytes[..take]);
                    self.carried = (had + take) as u8;
                    return Ok(());
                }
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Invalid),
            Err(e) => {
                // A valid start of a character at the end: at most 3 bytes.
                let tail = &bytes[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carried = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// The text ends here: valid unless a character was left cut.
    pub fn finish(&mut self) -> Result<(), Invalid> {
        let cut = self.carried > 0;
        self.carried = 0;
        if cut {
            Err(Invalid)
        } else {
            Ok(())
        }
    }

    /// Forgets any carried bytes, for the next message.
    pub fn reset(&mut self) {
        self.carried = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pieces(text: &[u8], cuts: &[usize]) -> Result<(), Invalid> {
        let mut utf8 = Utf8::default();
        let mut start = 0;
        for &cut in cuts.iter().chain([&text.len()]) {
            let cut = cut.clamp(start, text.len());
            utf8.feed(&text[start..cut])?;
            start = cut;
        }
        utf8.finish()
    }

    #[test]
    fn a_character_cut_anywhere_is_valid() {
        let text = "κόσμε 𝄞 €".as_bytes();
        for a in 0..=text.len() {
            for b in a..=text.len() {
                assert_eq!(pieces(text, &[a, b]), Ok(()), "cut at {a}, {b}");
            }
        }
        // One byte at a time.
        assert_eq!(pieces(text, &(0..text.len()).collect::<Vec<_>>()), Ok(()));
    }

    #[test]
    fn fails_at_the_first_bad_byte_not_at_the_end() {
        let mut utf8 = Utf8::default();
        // Autobahn 6.4.1: U+110000 and beyond is refused at 0x90 after 0xF4.
        assert_eq!(
            utf8.feed(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4"),
            Ok(())
        );
        assert_eq!(utf8.feed(b"\x90"), Err(Invalid));
        // A surrogate, its first two bytes cut apart.
        let mut utf8 = Utf8::default();
        assert_eq!(utf8.feed(b"ab\xed"), Ok(()));
        assert_eq!(utf8.feed(b"\xa0"), Err(Invalid));
        // Overlong and stray bytes.
        for bad in [&b"\xc0\xaf"[..], b"\x80", b"\xff", b"a\xe0\x80"] {
            assert_eq!(Utf8::default().feed(bad), Err(Invalid), "{bad:x?}");
        }
    }

    #[test]
    fn a_cut_character_at_the_end_is_invalid() {
        let mut utf8 = Utf8::default();
        assert_eq!(utf8.feed(b"ok\xe2\x82"), Ok(()));
        assert_eq!(utf8.finish(), Err(Invalid));
        // finish() leaves it ready for the next message.
        assert_eq!(utf8.feed(b"ok"), Ok(()));
        assert_eq!(utf8.finish(), Ok(()));
    }

    #[test]
    fn a_cut_character_followed_by_a_bad_byte() {
        let mut utf8 = Utf8::default();
        assert_eq!(utf8.feed(b"\xe2"), Ok(()));
        assert_eq!(utf8.feed(b"\x82\xac\xff"), Err(Invalid));
        let mut utf8 = Utf8::default();
        assert_eq!(utf8.feed(b"\xf0\x9d"), Ok(()));
        assert_eq!(utf8.feed(b"\x84"), Ok(()));
        assert_eq!(utf8.feed(b"\x9ez"), Ok(()));
        assert_eq!(utf8.finish(), Ok(()));
    }

    proptest! {
        /// However the bytes are cut, the verdict is std's on the whole.
        #[test]
        fn pieces_agree_with_the_whole(
            units in prop::collection::vec(
                prop_oneof![
                    6 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
                    1 => any::<u8>().prop_map(|b| vec![b]),
                ],
                0..16,
            ),
            cuts in prop::collection::vec(0usize..64, 0..8),
        ) {
            let text = units.concat();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let whole = std::str::from_utf8(&text).map(|_| ()).map_err(|_| Invalid);
            prop_assert_eq!(pieces(&text, &cuts), whole);
        }
    }
}
