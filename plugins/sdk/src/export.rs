//! The traits a plugin implements and the macros that export them as a component of one world.
//!
//! The generated bindings want static functions; these traits take the configured plugin as
//! `&self`. Each macro defines an adapter type in the plugin's crate that keeps the value
//! `configure` returned for the rest of the instance's life (one call) and forwards to it.

use crate::bindings::netboot::exports::metalhost::drivers::netboot::BootEntry;
use crate::bindings::power::metalhost::drivers::types::{BmcAddress, BootDevice, Credentials, PowerAction, PowerState};
use crate::bindings::switch::exports::metalhost::drivers::switch::{SwitchDescription, Vlan};
use crate::{Config, DriverError};

/// What every plugin is: a name, a version, and a value built from the operator's config.
pub trait Plugin: Sized + 'static {
    const NAME: &'static str;
    const VERSION: &'static str;

    /// Called on every fresh instance before any driver call. Refuse unknown keys
    /// (`config.finish()`) and bad values with `invalid-config`: the host then refuses the load.
    fn configure(config: Config) -> Result<Self, DriverError>;
}

/// A BMC driver (`power-manager` world; imports `exec` and `log`). Every call names the BMC and
/// its credentials; pass the password to tools through `Command::env` or `Command::file`.
pub trait PowerManager: Plugin {
    fn get_power_state(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError>;

    /// `reboot` powers an off node on, and cycles or resets an on one.
    fn set_power_state(&self, bmc: &BmcAddress, creds: &Credentials, action: PowerAction) -> Result<(), DriverError>;

    /// `persistent`: for every boot from now on; otherwise the next boot only.
    fn set_boot_device(&self, bmc: &BmcAddress, creds: &Credentials, device: BootDevice, persistent: bool) -> Result<(), DriverError>;
}

/// A switch driver (`switch-manager` world; imports `netconf` and `log`). Every call is about one
/// switch the host chose and opened the session to.
pub trait SwitchManager: Plugin {
    /// Read-only: what the switch is and what it speaks.
    fn describe(&self) -> Result<SwitchDescription, DriverError>;

    /// Make sure the VLAN exists (idempotent).
    fn ensure_vlan(&self, vlan: Vlan) -> Result<(), DriverError>;

    /// Access mode on this VLAN only, replacing any VLAN the port had.
    fn set_access_vlan(&self, port: &str, vlan: Vlan) -> Result<(), DriverError>;

    /// Remove the port's VLAN configuration.
    fn clear_port(&self, port: &str) -> Result<(), DriverError>;

    /// The port's access VLAN, or none.
    fn get_port_vlan(&self, port: &str) -> Result<Option<u16>, DriverError>;
}

/// A netboot backend (`netboot-backend` world; imports `service` and `log`, sees only the
/// directories the operator granted, preopened at their host paths).
pub trait NetbootBackend: Plugin {
    /// Write (or replace) the DHCP reservation and boot script of this node.
    fn put_host(&self, entry: BootEntry) -> Result<(), DriverError>;

    /// Remove them; a host without an entry is not an error.
    fn remove_host(&self, mac: &str) -> Result<(), DriverError>;
}

/// Shared by the export macros: the instance's configured plugin, kept in a thread-local of the
/// plugin's crate (a component instance is single-threaded and lives for one call).
#[doc(hidden)]
#[macro_export]
macro_rules! __metalhost_adapter {
    ($ty:ty, $world:ident, $types:ident, $kind:ident) => {
        struct __MetalhostExport;

        ::std::thread_local! {
            static __METALHOST_PLUGIN: $crate::__private::RefCell<Option<$crate::__private::Rc<$ty>>> =
                const { $crate::__private::RefCell::new(None) };
        }

        impl __MetalhostExport {
            /// The host always configures first; an unconfigured instance gets the defaults.
            fn plugin() -> Result<$crate::__private::Rc<$ty>, $crate::DriverError> {
                if let Some(p) = __METALHOST_PLUGIN.with(|p| p.borrow().clone()) {
                    return Ok(p);
                }
                let p = $crate::__private::Rc::new(<$ty as $crate::Plugin>::configure($crate::Config::new(Vec::new()))?);
                __METALHOST_PLUGIN.with(|slot| *slot.borrow_mut() = Some(p.clone()));
                Ok(p)
            }
        }

        impl $crate::bindings::$world::exports::metalhost::drivers::plugin::Guest for __MetalhostExport {
            fn info() -> $crate::bindings::$types::metalhost::drivers::types::PluginInfo {
                $crate::bindings::$types::metalhost::drivers::types::PluginInfo {
                    name: <$ty as $crate::Plugin>::NAME.into(),
                    version: <$ty as $crate::Plugin>::VERSION.into(),
                    kind: $crate::bindings::$types::metalhost::drivers::types::PluginKind::$kind,
                }
            }

            fn configure(config: Vec<(String, String)>) -> Result<(), $crate::bindings::$types::metalhost::drivers::types::DriverError> {
                let p = <$ty as $crate::Plugin>::configure($crate::Config::new(config))?;
                __METALHOST_PLUGIN.with(|slot| *slot.borrow_mut() = Some($crate::__private::Rc::new(p)));
                Ok(())
            }
        }
    };
}

/// Exports a [`PowerManager`] as a `power-manager` component: `export_power!(MyDriver);`
#[macro_export]
macro_rules! export_power {
    ($ty:ty) => {
        const _: () = {
            $crate::__metalhost_adapter!($ty, power, power, Power);

            use $crate::bindings::power::metalhost::drivers::types as __t;

            impl $crate::bindings::power::exports::metalhost::drivers::power::Guest for __MetalhostExport {
                fn get_power_state(bmc: __t::BmcAddress, creds: __t::Credentials) -> Result<__t::PowerState, __t::DriverError> {
                    Ok(<$ty as $crate::PowerManager>::get_power_state(&*Self::plugin()?, &bmc, &creds)?)
                }

                fn set_power_state(bmc: __t::BmcAddress, creds: __t::Credentials, action: __t::PowerAction) -> Result<(), __t::DriverError> {
                    Ok(<$ty as $crate::PowerManager>::set_power_state(&*Self::plugin()?, &bmc, &creds, action)?)
                }

                fn set_boot_device(
                    bmc: __t::BmcAddress,
                    creds: __t::Credentials,
                    device: __t::BootDevice,
                    persistent: bool,
        ) -> Result<(), __t::DriverError> {
                    Ok(<$ty as $crate::PowerManager>::set_boot_device(&*Self::plugin()?, &bmc, &creds, device, persistent)?)
                }
            }

            $crate::bindings::power::export!(__MetalhostExport with_types_in $crate::bindings::power);
        };
    };
}

/// Exports a [`SwitchManager`] as a `switch-manager` component: `export_switch!(MyDriver);`
#[macro_export]
macro_rules! export_switch {
    ($ty:ty) => {
        const _: () = {
            $crate::__metalhost_adapter!($ty, switch, power, Switch);

            use $crate::bindings::switch::exports::metalhost::drivers::switch as __s;
            type __E = $crate::bindings::power::metalhost::drivers::types::DriverError;

            impl __s::Guest for __MetalhostExport {
                fn describe() -> Result<__s::SwitchDescription, __E> {
                    Ok(<$ty as $crate::SwitchManager>::describe(&*Self::plugin()?)?)
                }

                fn ensure_vlan(vlan: __s::Vlan) -> Result<(), __E> {
                    Ok(<$ty as $crate::SwitchManager>::ensure_vlan(&*Self::plugin()?, vlan)?)
                }

                fn set_access_vlan(port: String, vlan: __s::Vlan) -> Result<(), __E> {
                    Ok(<$ty as $crate::SwitchManager>::set_access_vlan(&*Self::plugin()?, &port, vlan)?)
                }

                fn clear_port(port: String) -> Result<(), __E> {
                    Ok(<$ty as $crate::SwitchManager>::clear_port(&*Self::plugin()?, &port)?)
                }

                fn get_port_vlan(port: String) -> Result<Option<u16>, __E> {
                    Ok(<$ty as $crate::SwitchManager>::get_port_vlan(&*Self::plugin()?, &port)?)
                }
            }

    $crate::bindings::switch::export!(__MetalhostExport with_types_in $crate::bindings::switch);
        };
    };
}

/// Exports a [`NetbootBackend`] as a `netboot-backend` component: `export_netboot!(MyDriver);`
#[macro_export]
macro_rules! export_netboot {
    ($ty:ty) => {
        const _: () = {
            $crate::__metalhost_adapter!($ty, netboot, power, Netboot);

            use $crate::bindings::netboot::exports::metalhost::drivers::netboot as __n;
            type __E = $crate::bindings::power::metalhost::drivers::types::DriverError;

            impl __n::Guest for __MetalhostExport {
                fn put_host(entry: __n::BootEntry) -> Result<(), __E> {
                    Ok(<$ty as $crate::NetbootBackend>::put_host(&*Self::plugin()?, entry)?)
                }

                fn remove_host(mac: String) -> Result<(), __E> {
                    Ok(<$ty as $crate::NetbootBackend>::remove_host(&*Self::plugin()?, &mac)?)
                }
            }

    $crate::bindings::netboot::export!(__MetalhostExport with_types_in $crate::bindings::netboot);
        };
    };
}
