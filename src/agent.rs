//! `--agent-listen`: HAProxy's agent check (`agent-check` on a server line). HAProxy connects,
//! sends nothing (unless `agent-send` is set) and reads one line: saythat writes `up ready\n`
//! while serving and `drain\n` from the first signal on (the lame duck and the drain: HAProxy
//! sends the server no new clients, and the existing ones go on), then closes; whatever the
//! agent sends is read and dropped.
//!
//! It is a protocol whose whole answer is its first word ([`Protocol::on_open`]), run, like the
//! admin endpoint, by a loop of its own that the first worker drives: no thread, nothing on the
//! echo's message path. It must never wait for input before answering.

use std::sync::Arc;

use crate::config::READ_SIZE;
use crate::framing::{Answers, Next, Protocol, ProtocolCounts};
use crate::group::{Group, RUNNING};

/// While serving. `ready` as well as `up`: an agent's `drain` puts the server in HAProxy's
/// DRAIN administrative state, which only `ready` (or the admin socket) takes it out of, so a
/// new process on the same address must say it or it would never get a client.
pub const UP: &[u8] = b"up ready\n";
/// From the first signal on: no new clients, the existing ones go on.
pub const DRAIN: &[u8] = b"drain\n";

/// The agent check: its answer follows the echo servers' stop request.
pub(crate) struct Agent {
    group: Arc<Group>,
    counts: ProtocolCounts,
}

impl Agent {
    /// Answers for the echo servers of `group`.
    pub(crate) fn new(group: Arc<Group>) -> Agent {
        Agent {
            group,
            counts: ProtocolCounts::default(),
        }
    }

    /// What the agent says now.
    fn word(&self) -> &'static [u8] {
        if self.group.request() == RUNNING {
            UP
        } else {
            DRAIN
        }
    }
}

impl Protocol for Agent {
    type Session = ();

    /// What the agent sends is read only to be dropped, while the connection lingers.
    fn read_len(&self, _: &(), _: usize) -> usize {
        READ_SIZE
    }

    fn on_open(&mut self, _: &mut (), answers: &mut Answers<'_>) -> Next {
        answers.push(self.word());
        self.counts.message();
        // Our FIN follows the line, then a lingering close drains `agent-send`'s line.
        Next::Close
    }

    /// Full, the agent still says its word: HAProxy needs the line, not a slot, so a flood of
    /// connections on this port can never make a healthy server look down.
    fn refusal(&mut self, _max_conns: usize, answers: &mut Answers<'_>) {
        answers.push(self.word());
        self.counts.message();
    }

    fn on_read(&mut self, _: &mut (), _: &[u8], _: &mut Answers<'_>) -> Next {
        Next::Continue
    }

    fn on_writable(&mut self, _: &mut (), _: &mut Answers<'_>) -> Next {
        Next::Continue
    }

    fn on_eof(&mut self, _: &mut (), _: &mut Answers<'_>) {}

    fn at_boundary(&self, _: &()) -> bool {
        true
    }

    fn counts(&self) -> &ProtocolCounts {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn answer(agent: &mut Agent) -> (Vec<u8>, Next) {
        let mut out = Vec::new();
        let next = agent.on_open(&mut (), &mut Answers::new(&mut out, 1024, Instant::now()));
        (out, next)
    }

    #[test]
    fn says_up_ready_while_serving_and_drain_from_the_lame_duck_on() {
        let group = Arc::new(Group::new(Vec::new(), 10).with_drain_delay(Duration::from_secs(5)));
        let mut agent = Agent::new(group.clone());
        assert_eq!(answer(&mut agent), (b"up ready\n".to_vec(), Next::Close));
        group.shutdown();
        assert_eq!(answer(&mut agent), (b"drain\n".to_vec(), Next::Close));
        group.drain();
        assert_eq!(answer(&mut agent).0, b"drain\n");
        group.abort();
        assert_eq!(answer(&mut agent).0, b"drain\n");
        assert_eq!(agent.counts().messages, 4);
    }
}
