//! `metalhost:drivers@0.1.0` and `@0.2.0` are frozen: vendors ship components built against them,
//! so their text must not change. A change belongs in a new package version beside them (see the
//! note in each file).

use sha2::{Digest, Sha256};

const FROZEN_0_1_0_SHA256: &str = "60ff95b598448e138a60212ad79c3fa907a374942306ddaa6461babac1fbf3ac";
const FROZEN_0_2_0_SHA256: &str = "983fa9beaa9b143be6dd9b0d76f5dd875fed8ac0e734c56208082036e6b82c86";

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

#[test]
fn the_0_2_0_contract_is_frozen() {
    let wit = include_str!("../../../wit/drivers-0.2.0.wit");
    assert!(wit.contains("package metalhost:drivers@0.2.0;"), "wit/drivers-0.2.0.wit must stay the 0.2.0 package");
    assert_eq!(
        hex::encode(Sha256::digest(wit.as_bytes())),
        FROZEN_0_2_0_SHA256,
        "wit/drivers-0.2.0.wit (metalhost:drivers@0.2.0) changed, but 0.2.0 is frozen: put the change in a new version beside it"
    );
}
