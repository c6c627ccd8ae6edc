#!/usr/bin/env bash
# Cost of exec confinement per program run (issue 12): spawn time with and without Landlock, user
# switch, rlimits and seccomp, median of 1,000 each in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p metalhost-plugin-host --bench exec_confinement
