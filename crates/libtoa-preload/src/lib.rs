//! test
pub fn y() -> i32 { toa::toa_x() }
