//! `metalhost:drivers@0.1.0` is frozen: vendors ship components built against it, so its text must
//! not change. A change belongs in a new package version beside it (see the note in the file).

use sha2::{Digest, Sha256};

const FROZEN_0_1_0_SHA256: &str = "60ff95b598448e138a60212ad79c3fa907a374942306ddaa6461babac1fbf3ac";

#[test]
fn the_0_1_0_contract_is_frozen() {
    let wit = include_str!("../../../wit/drivers.wit");
    assert!(wit.contains("package metalhost:drivers@0.1.0;"), "wit/drivers.wit must stay the 0.1.0 package");
    assert_eq!(
        hex::encode(Sha256::digest(wit.as_bytes())),
        FROZEN_0_1_0_SHA256,
        "wit/drivers.wit (metalhost:drivers@0.1.0) changed, but 0.1.0 is frozen: put the change in a new version beside it"
    );
}
