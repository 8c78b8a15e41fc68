//! `decode_v1`: `v1::decode` on arbitrary text, and the round trip through its client-side
//! inverse `v1::encode_request`.
//!
//! Properties: decoding never panics; a rejected message names the request id it could read
//! (or none), never one longer than 64 bytes; every accepted envelope re-encodes to text that
//! decodes to the same request (command, request id and room name alike), and that text is a
//! fixed point of the encoder.

use tandem::v1;

/// Checks every property on one input.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let request = match v1::decode(text) {
        Ok(request) => request,
        Err(rejected) => {
            assert!(rejected.request_id.as_ref().is_none_or(|id| id.len() <= 64));
            return;
        }
    };
    let encoded = v1::encode_request(&request);
    let again = v1::decode(&encoded);
    assert_eq!(
        again.as_ref(),
        Ok(&request),
        "round trip changed the request\ntext: {encoded}"
    );
    if let Ok(again) = again {
        assert_eq!(v1::encode_request(&again), encoded, "not a fixed point");
    }
}
