#!/bin/sh
# Starts one lab VM under QEMU (TCG: KVM is not available on the lab machines).
#
# usage: qemu-vm.sh [BOOTDEV] --serial LOG [options]
#   BOOTDEV / --boot DEV   pxe|n -> -boot order=n (iPXE ROM); anything else (disk, default, c, ...) -> order=c
#   --name NAME            VM name (qemu -name), default "vm"
#   --ns NS                run inside netns NS (for --net tap:...)
#   --net tap:TAP          NIC on tap TAP (made by netns-up.sh)
#   --net user:PORT        user-mode NIC with restrict=on: the guest reaches nothing but 10.0.2.100:80,
#                          forwarded to 127.0.0.1:PORT on the host (one `busybox nc` per connection)
#   --mac MAC              NIC MAC, default 52:54:00:00:00:01
#   --nic virtio|e1000     NIC model, default virtio
#   --disk FILE            raw disk as virtio /dev/vda (create with truncate -s 64M FILE)
#   --disk2 FILE           a second raw virtio disk, /dev/vdb, never booted from (e.g. a config drive)
#   --kernel F --initrd F --append ARGS   direct kernel boot instead of firmware boot
#   --serial LOG           serial console (ttyS0) appended to LOG: a node's log survives power cycles
#   --serial-tcp PORT      also serve the serial console on 127.0.0.1:PORT (raw TCP, as a BMC's SOL
#                          reaches it: ipmi_sim's `sol "tcp:..."`); qemu waits for that client to
#                          connect before the VM starts, so nothing the node prints is lost
#   --qemu-log FILE        qemu's own stdout/stderr, default LOG.qemu
#   --mem MB               default 512
#   --smp N                CPUs, default 1
#   --uefi VARS            boot with OVMF (Debian ovmf) instead of SeaBIOS: its code read-only, VARS the
#                          VM's own copy of the variable store (made from OVMF_VARS_4M.fd if missing),
#                          so boot entries the firmware writes survive power cycles and stay per VM
#   --pidfile FILE         daemonize and write qemu's PID to FILE, then return
#
# Without --pidfile it execs qemu in the foreground, so the caller's PID *is* the VM: that is how the
# ipmi_sim hook (tests/lab/chassis-control.sh) uses it as `on-power-on`, killing the VM by PID on
# power-off and seeing a guest poweroff as the process ending. Either way stdio is never inherited
# (ipmi_sim reads the hook's stdout to EOF). -no-reboot: a guest reboot ends qemu like a poweroff.
set -eu
boot=c name=vm ns="" net="" mac=52:54:00:00:00:01 nic=virtio disk="" disk2="" kernel="" initrd="" append=""
serial="" serial_tcp="" qlog="" mem=512 pidfile="" smp=1 vars=""
die() { echo "qemu-vm.sh: $*" >&2; exit 64; }
case "${1:-}" in --*|"") ;; *) boot=$1; shift ;; esac
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die "$1 needs a value"
  case $1 in
    --boot) boot=$2 ;; --name) name=$2 ;; --ns) ns=$2 ;; --net) net=$2 ;; --mac) mac=$2 ;;
    --nic) nic=$2 ;; --disk) disk=$2 ;; --disk2) disk2=$2 ;; --kernel) kernel=$2 ;; --initrd) initrd=$2 ;;
    --append) append=$2 ;; --serial) serial=$2 ;; --qemu-log) qlog=$2 ;; --mem) mem=$2 ;;
    --pidfile) pidfile=$2 ;; --smp) smp=$2 ;; --uefi) vars=$2 ;; --serial-tcp) serial_tcp=$2 ;;
    *) die "unknown option $1" ;;
  esac
  shift 2
done
[ -n "$serial" ] || die "--serial LOG is required"
qlog=${qlog:-$serial.qemu}
case $boot in pxe|n|network) order=n ;; *) order=c ;; esac
case $nic in virtio) model=virtio-net-pci ;; e1000) model=e1000 ;; *) die "--nic virtio|e1000" ;; esac

if [ -n "$serial_tcp" ]; then
  chardev="socket,id=con0,host=127.0.0.1,port=$serial_tcp,server=on,wait=on,logfile=$serial,logappend=on"
else
  chardev="file,id=con0,path=$serial,append=on"
fi
set -- qemu-system-x86_64 -name "$name" -accel tcg -m "$mem" -smp "$smp" -no-reboot \
  -display none -monitor none -nodefaults -vga none \
  -chardev "$chardev" -serial chardev:con0
if [ -n "$vars" ]; then
  ovmf=/usr/share/OVMF
  [ -r $ovmf/OVMF_CODE_4M.fd ] || die "--uefi needs Debian's ovmf package ($ovmf/OVMF_CODE_4M.fd)"
  [ -e "$vars" ] || cp $ovmf/OVMF_VARS_4M.fd "$vars"
  set -- "$@" -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf/OVMF_CODE_4M.fd" \
    -drive "if=pflash,format=raw,unit=1,file=$vars"
fi
case $net in
  tap:*) set -- "$@" -netdev "tap,id=n0,ifname=${net#tap:},script=no,downscript=no" ;;
  user:*) set -- "$@" -netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:busybox nc 127.0.0.1 ${net#user:}" ;;
  "") ;;
  *) die "--net tap:TAP or user:PORT" ;;
esac
# SeaBIOS takes `-boot order`; OVMF takes the devices' bootindex (its fw_cfg boot order), so under
# --uefi the boot device is said that way: the NIC first for pxe, the disk first otherwise. And under
# --uefi the NIC has no iPXE option ROM: OVMF's own driver and PXE client boot it, as a server's UEFI
# firmware does (DHCP client arch 7, an EFI iPXE over TFTP), instead of QEMU's iPXE ROM.
nic_index="" disk_index=""
if [ -n "$vars" ]; then
  if [ $order = n ]; then nic_index=,bootindex=1 disk_index=,bootindex=2; else nic_index=,bootindex=2 disk_index=,bootindex=1; fi
  nic_index="$nic_index,romfile="
fi
if [ -n "$net" ]; then
  # A direct kernel boot needs no NIC option ROM (romfile= skips loading it); firmware boot uses its iPXE.
  if [ -n "$kernel" ]; then set -- "$@" -device "$model,netdev=n0,mac=$mac,romfile="
  else set -- "$@" -device "$model,netdev=n0,mac=$mac$nic_index"; fi
fi
# With a second disk, SeaBIOS is told which one boots too: with `-drive if=virtio` for the first and a
# -device for the second, SeaBIOS was seen booting the config drive's FAT boot sector (which prints
# "not a bootable disk" on the VGA nobody sees and waits for a key).
[ -n "$disk2" ] && [ -z "$vars" ] && [ $order = c ] && disk_index=,bootindex=1
if [ -n "$disk" ] && { [ -n "$vars" ] || [ -n "$disk2" ]; }; then
  set -- "$@" -drive "file=$disk,format=raw,if=none,id=d0" -device "virtio-blk-pci,drive=d0$disk_index"
elif [ -n "$disk" ]; then
  set -- "$@" -drive "file=$disk,format=raw,if=virtio"
fi
# The second disk has no bootindex: neither firmware boots it.
[ -n "$disk2" ] && set -- "$@" -drive "file=$disk2,format=raw,if=none,id=d1" -device virtio-blk-pci,drive=d1
if [ -n "$kernel" ]; then
  set -- "$@" -kernel "$kernel" -append "$append"
  [ -n "$initrd" ] && set -- "$@" -initrd "$initrd"
elif [ -z "$vars" ]; then
  set -- "$@" -boot "order=$order"
fi
[ -n "$ns" ] && set -- ip netns exec "$ns" "$@"
if [ -n "$pidfile" ]; then
  "$@" -daemonize -pidfile "$pidfile" </dev/null >>"$qlog" 2>&1
else
  exec "$@" </dev/null >>"$qlog" 2>&1
fi
