//! Test helper: fake_switch (to be written).
