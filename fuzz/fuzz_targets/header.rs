//! The header parser: never panics; every accepted header writes back byte-identical; the
//! streaming length probe agrees with the parser; `inspect` survives anything.
#![no_main]

use cmk_envelope::format::{header_len, Header, HeaderLen};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = Header::parse_prefix(data);
    if let Ok((header, len)) = &parsed {
        let written = header.to_bytes();
        assert!(
            written == data[..*len],
            "written header differs from the parsed bytes"
        );
        assert_eq!(header.encoded_len(), *len);
        let again = Header::parse_detached(&written).expect("a written header parses");
        assert!(again == *header);
        // What the stream reader would ask for: exactly this header.
        assert_eq!(header_len(data), Ok(HeaderLen::Complete(*len)));
    }
    if let Ok(HeaderLen::NeedMore(n)) = header_len(data) {
        assert!(n > 0, "asked for zero more bytes");
        assert!(
            parsed.is_err(),
            "parsed a header the probe calls incomplete"
        );
    }
    let _ = Header::parse_detached(data);
    let described = cmk_envelope::inspect::inspect(data);
    let streamed = cmk_envelope::inspect::inspect_stream(data);
    assert_eq!(
        described.is_ok(),
        streamed.is_ok(),
        "inspect and inspect_stream disagree"
    );
});
