//! The frontend decoder on arbitrary bytes: startup packets, typed frames and the bodies the
//! gateway parses (Query, Parse, SASL, SCRAM). Must never panic, never return a frame larger
//! than the limit, and always consume bytes when it returns a frame.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tg_proxy::frontend::{scram, startup};
use tg_proxy::net::codec::{self, FrameLimits, Startup};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits { max_message: 1 << 16, max_copy: 1 << 17 };
    let mut b = BytesMut::from(data);
    if let Ok(Some(Startup::Message { params, .. })) = codec::decode_startup(&mut b) {
        let _ = startup::check(&params);
    }
    let mut b = BytesMut::from(data);
    loop {
        let before = b.len();
        match codec::decode_frame(&mut b, &limits) {
            Ok(Some(f)) => {
                assert!(f.raw.len() <= limits.max_copy + 1);
                assert!(b.len() < before);
                let _ = codec::parse_query(f.body());
                let _ = codec::parse_parse(f.body());
                if let Ok((_, first)) = codec::parse_sasl_initial(f.body()) {
                    if let Ok(cf) = scram::parse_client_first(first) {
                        let _ = scram::parse_client_final(f.body(), &cf, "nonce");
                    }
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
