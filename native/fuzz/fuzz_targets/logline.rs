#![no_main]
//! A web access line's fields found natively (loginspect's batch decoder): any bytes, a row
//! whose positions all lie within the line.
use cordon_dpi::logline::{access_line, ACCESS, STRIDE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut row = [0i32; STRIDE];
    if access_line(data, &mut row) == ACCESS {
        assert!(row[1..].iter().all(|&v| v >= -2 && v as i64 <= data.len() as i64));
    }
});
