#!/usr/bin/env bash
# Builds the tiny demo OS image the lab deploys, bootable by BIOS and UEFI alike: 32 MiB raw, an MBR
# with one FAT16 partition at 1 MiB, typed EFI System (0xEF), holding the bootstrap's kernel and a
# small initramfs, and two loaders reading the same files: syslinux (the MBR's boot code chains to it
# under BIOS) and systemd-boot as the removable-media path EFI/BOOT/BOOTX64.EFI (UEFI firmware finds it
# without any boot entry, so a freshly written disk boots). The initramfs's /init prints
#   metalhost-demo-os: booted mac=<MAC> kernel=<version>
# on ttyS0, gives its first NIC 10.98.<MAC byte 5>.<MAC byte 6>/16 (and says so:
# `metalhost-demo-os: net eth0 ADDR/16`), then runs a shell on ttyS0 (the serial console an
# operator attaches to; or powers off with --poweroff). No loop devices: mkfs/syslinux work at an offset
# (loop devices are not available in the lab's containers). Deterministic: fixed volume id and timestamps, so the same inputs give
# the same bytes (its sha256 is printed).
# usage: bootstrap/os-image.sh OUT.img [--bootstrap DIR] [--poweroff]
#   DIR: a bootstrap/build.sh output (default bootstrap/out, built if missing): vmlinuz and the
#   initrd's busybox and NIC modules are reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: os-image.sh OUT.img [--bootstrap DIR] [--poweroff]}
shift
bootstrap=$here/out action=idle
while [ $# -gt 0 ]; do
  case $1 in
    --bootstrap) bootstrap=${2:?--bootstrap DIR}; shift 2 ;;
    --poweroff) action=poweroff; shift ;;
    *) echo "os-image.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
for tool in sfdisk mkfs.vfat syslinux mcopy mmd cpio gzip; do
  command -v "$tool" >/dev/null || { echo "os-image.sh: missing $tool (run scripts/setup)" >&2; exit 1; }
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || { echo "os-image.sh: missing $mbr (syslinux-common)" >&2; exit 1; }
sdboot=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
[ -f "$sdboot" ] || { echo "os-image.sh: missing $sdboot (systemd-boot-efi)" >&2; exit 1; }
if [ ! -s "$bootstrap/vmlinuz" ] || [ ! -s "$bootstrap/initrd.gz" ]; then "$here/build.sh" "$bootstrap"; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The initramfs: the bootstrap's busybox and modules, with the demo OS's own /init.
mkdir "$work/root"
(cd "$work/root" && gzip -dc "$bootstrap/initrd.gz" | cpio -id --quiet)
rm -f "$work/root/etc/udhcpc.script"
cat > "$work/root/init" <<EOF
#!/bin/sh
# The demo OS deployed by metalhost: say on the console that it booted from disk, then $action.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
KV=\$(uname -r)
while read -r m; do insmod "/lib/modules/\$KV/\$m" 2>/dev/null; done < /etc/modules.order
i=0; while [ \$i -lt 25 ] && [ -z "\$(ls /sys/class/net | grep -v '^lo\$')" ]; do sleep 0.2; i=\$((i+1)); done
macs=\$(for n in \$(ls /sys/class/net | grep -v '^lo\$'); do cat /sys/class/net/\$n/address; done | tr '\n' ' ')
echo "metalhost-demo-os: booted mac=\${macs% } kernel=\$KV uptime=\$(cut -d' ' -f1 /proc/uptime)s"
# The first NIC gets an address made from its MAC, 10.98.<5th byte>.<6th byte>/16, so machines
# deployed side by side answer each other's pings (tests/tests/vlan_isolation.rs).
nic=\$(ls /sys/class/net | grep -v '^lo\$' | head -n 1)
if [ -n "\$nic" ]; then
  mac=\$(cat /sys/class/net/\$nic/address)
  addr=10.98.\$((0x\$(echo \$mac | cut -d: -f5))).\$((0x\$(echo \$mac | cut -d: -f6)))
  ip link set "\$nic" up && ip addr add "\$addr/16" dev "\$nic" && echo "metalhost-demo-os: net \$nic \$addr/16"
fi
EOF
if [ "$action" = poweroff ]; then
  echo 'echo "metalhost-demo-os: powering off"; sync; poweroff -f' >> "$work/root/init"
else
  # A shell on the serial console, started again when it exits (PID 1 must not end).
  echo 'while :; do sh -i </dev/ttyS0 >/dev/ttyS0 2>&1; sleep 1; done' >> "$work/root/init"
fi
chmod 755 "$work/root/init"
find "$work/root" -exec touch -h -d @0 {} +
(cd "$work/root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --reproducible -R 0:0 | gzip -9 -n) > "$work/initrd.gz"
cp "$bootstrap/vmlinuz" "$work/vmlinuz"
cat > "$work/syslinux.cfg" <<'CFG'
DEFAULT os
PROMPT 0
TIMEOUT 0
LABEL os
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0 quiet panic=-1 metalhost.demo-os=1
CFG
# systemd-boot: no menu, the one entry, the same kernel, initramfs and command line.
printf 'default os.conf\ntimeout 0\n' > "$work/loader.conf"
printf 'title metalhost demo OS\nlinux /vmlinuz\ninitrd /initrd.gz\noptions console=ttyS0 quiet panic=-1 metalhost.demo-os=1\n' > "$work/os.conf"
cp "$sdboot" "$work/BOOTX64.EFI"
touch -d "2020-01-01 00:00:00 UTC" "$work/vmlinuz" "$work/initrd.gz" "$work/syslinux.cfg" "$work/loader.conf" "$work/os.conf" "$work/BOOTX64.EFI"

img="$work/os.img"
truncate -s 32M "$img"
echo 'label: dos
start=2048, type=ef, bootable' | sfdisk -q "$img"
# A fixed disk identifier (sfdisk picks a random one) and mkfs --invariant (fixed volume id and
# times) keep the image deterministic; so does normalise_fat_times below.
printf '\x4d\x48\x44\x4d' | dd of="$img" bs=1 seek=440 conv=notrunc status=none
mkfs.vfat -F 16 -n METALHOST --invariant --offset 2048 "$img" $(( (32*1024*1024 - 1048576) / 1024 )) >/dev/null
syslinux --offset 1048576 --install "$img"
export MTOOLS_SKIP_CHECK=1
mcopy -i "$img@@1M" "$work/vmlinuz" "$work/initrd.gz" "$work/syslinux.cfg" ::/
mmd -i "$img@@1M" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$img@@1M" "$work/BOOTX64.EFI" ::/EFI/BOOT/
mcopy -i "$img@@1M" "$work/loader.conf" ::/loader/
mcopy -i "$img@@1M" "$work/os.conf" ::/loader/entries/
# syslinux, mcopy and mmd stamp files with "now": set every directory entry's times to 2020-01-01,
# in the root directory and in the subdirectories (EFI/BOOT, loader/entries: one cluster each).
python3 - "$img" 1048576 <<'PY'
import struct, sys
path, part = sys.argv[1], int(sys.argv[2])
day = ((2020 - 1980) << 9) | (1 << 5) | 1
with open(path, 'r+b') as f:
    f.seek(part)
    bs = f.read(512)
    bps, = struct.unpack_from('<H', bs, 11)
    spc = bs[13]
    reserved, = struct.unpack_from('<H', bs, 14)
    nfats = bs[16]
    root_entries, = struct.unpack_from('<H', bs, 17)
    spf, = struct.unpack_from('<H', bs, 22)
    root = part + (reserved + nfats * spf) * bps
    data = root + root_entries * 32
    def normalise(offset, size):
        f.seek(offset)
        entries = bytearray(f.read(size))
        subdirs = []
        for off in range(0, len(entries), 32):
            if entries[off] == 0x00:
                break
            if entries[off] == 0xE5 or entries[off + 11] == 0x0F:  # deleted, long-name part
                continue
            struct.pack_into('<BHHH', entries, off + 13, 0, 0, day, day)  # creation 10 ms, time, date; access date
            struct.pack_into('<HH', entries, off + 22, 0, day)            # write time, date
            name = bytes(entries[off:off + 11])
            if entries[off + 11] & 0x10 and not name.startswith(b'.'):
                cluster, = struct.unpack_from('<H', entries, off + 26)
                subdirs.append(data + (cluster - 2) * spc * bps)
        f.seek(offset)
        f.write(entries)
        for sub in subdirs:
            normalise(sub, spc * bps)
    normalise(root, root_entries * 32)
PY
dd if="$mbr" of="$img" bs=440 count=1 conv=notrunc status=none
mkdir -p "$(dirname "$out")"
mv -f "$img" "$out"
echo "os-image.sh: $out 32 MiB, sha256 $(sha256sum "$out" | cut -d' ' -f1)"
