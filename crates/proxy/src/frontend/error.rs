//! Why a client session ends with a message: the one error type of the wire door's session
//! path, shared by the session task ([`super::session`]) and the forwarding rules
//! ([`super::flow`]) without either importing the other for it.

use crate::net::codec::FrameError;

/// A reason to end the session with a message to the client.
#[derive(Debug)]
pub struct Fatal {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Fatal {
    pub fn new(code: &str, message: impl Into<String>) -> Fatal {
        Fatal { code: code.into(), message: message.into(), hint: None }
    }
    pub(crate) fn hint(mut self, h: &str) -> Fatal {
        self.hint = Some(h.into());
        self
    }
}

impl From<FrameError> for Fatal {
    fn from(e: FrameError) -> Fatal {
        Fatal::new("08P01", e.to_string())
    }
}

