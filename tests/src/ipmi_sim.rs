//! Test helper: ipmi_sim (to be written).
