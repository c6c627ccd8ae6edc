//! The power trait and export macro of `metalhost:drivers@0.2.0`: a plugin that reaches its BMC
//! through the host's `http` and `datagram` capabilities (no `exec`).

use crate::DriverError;
use crate::bindings::power2::metalhost::drivers::types::{BmcAddress, BootDevice, BootMode, ConsoleAccess, Credentials, PowerAction, PowerState};

/// A BMC driver of the 0.2.0 `power-manager` world. Every call names the BMC; the host lets the
/// plugin's `http` and `datagram` reach that address and no other, for that call.
pub trait PowerManager: crate::Plugin {
    fn get_power_state(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError>;

    /// `on`/`off`/`reboot` return once the BMC reports the result (poll within the call's
    /// deadline); `reboot` powers an off node on. Graceful ones return once the BMC accepted them.
    fn set_power_state(&self, bmc: &BmcAddress, creds: &Credentials, action: PowerAction) -> Result<(), DriverError>;

    /// `persistent`: every boot from now on, else the next one. `mode`: none leaves it as it is.
    fn set_boot_device(
        &self,
        bmc: &BmcAddress,
        creds: &Credentials,
        device: BootDevice,
        persistent: bool,
        mode: Option<BootMode>,
    ) -> Result<(), DriverError>;

    /// How the host reaches the node's serial console: a program from the operator's console
    /// grant, run on a terminal (the password in its environment, never in its arguments). The
    /// default says the driver has none.
    fn describe_console(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<ConsoleAccess, DriverError> {
        let _ = (bmc, creds);
        Err(DriverError::Unsupported(format!("{} offers no serial console", <Self as crate::Plugin>::NAME)))
    }
}

/// Exports a [`power2::PowerManager`](crate::power2::PowerManager) as a 0.2.0 `power-manager`
/// component: `export_power2!(MyDriver);`
#[macro_export]
macro_rules! export_power2 {
    ($ty:ty) => {
        const _: () = {
            $crate::__metalhost_adapter!($ty, power2, power2, Power);

            use $crate::bindings::power2::metalhost::drivers::types as __t;

            impl $crate::bindings::power2::exports::metalhost::drivers::power::Guest for __MetalhostExport {
                fn get_power_state(bmc: __t::BmcAddress, creds: __t::Credentials) -> Result<__t::PowerState, __t::DriverError> {
                    Ok(<$ty as $crate::power2::PowerManager>::get_power_state(&*Self::plugin()?, &bmc, &creds)?)
                }

                fn set_power_state(bmc: __t::BmcAddress, creds: __t::Credentials, action: __t::PowerAction) -> Result<(), __t::DriverError> {
                    Ok(<$ty as $crate::power2::PowerManager>::set_power_state(&*Self::plugin()?, &bmc, &creds, action)?)
                }

                fn set_boot_device(
                    bmc: __t::BmcAddress,
                    creds: __t::Credentials,
                    device: __t::BootDevice,
                    persistent: bool,
                    mode: Option<__t::BootMode>,
                ) -> Result<(), __t::DriverError> {
                    Ok(<$ty as $crate::power2::PowerManager>::set_boot_device(&*Self::plugin()?, &bmc, &creds, device, persistent, mode)?)
                }

                fn describe_console(bmc: __t::BmcAddress, creds: __t::Credentials) -> Result<__t::ConsoleAccess, __t::DriverError> {
                    Ok(<$ty as $crate::power2::PowerManager>::describe_console(&*Self::plugin()?, &bmc, &creds)?)
                }
            }

    $crate::bindings::power2::export!(__MetalhostExport with_types_in $crate::bindings::power2);
        };
    };
}
