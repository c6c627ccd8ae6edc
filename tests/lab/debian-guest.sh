#!/usr/bin/env bash
# Builds a real Debian 12 (bookworm) guest image for the lab, from Debian's own packages (mmdebstrap,
# from the machine's apt source): cloud-init reading ONLY a ConfigDrive (`config-2`), openssh-server,
# sudo, ifupdown (what cloud-init 22.4 renders network_data.json to on Debian: ENI), the cloud kernel.
# Bootable by BIOS and UEFI alike, like bootstrap/os-image.sh's demo image, and made without loop
# devices or mounts:
#   MBR, partition 1 at 1 MiB: 64 MiB FAT16 typed EFI System (0xEF), bootable flag, holding Debian's
#     vmlinuz + initrd.img, syslinux (BIOS: the MBR's boot code chains to it) and systemd-boot as
#     EFI/BOOT/BOOTX64.EFI (UEFI, no boot entry needed), both booting `root=UUID=<ext4 uuid>
#     console=ttyS0`;
#   partition 2 right after it: ext4 made with `mkfs.ext4 -d ROOTDIR` as a file of its own, then
#     copied into place; sized to the tree + ~100 MiB free. The image ends there and the MBR's slots
#     3 and 4 are free: metalhost's agent adds the `config-2` partition at the target disk's end.
# Password login is impossible (no root password, the cloud user is locked, `ssh_pwauth: false` and
# sshd `PasswordAuthentication no`); SSH host keys and the machine id are made on first boot. cloud-init's
# growpart and resize_rootfs are off (issue 30: the root filesystem keeps its size, whatever the disk).
# Console: ttyS0 (kernel, getty, and cloud-init's "Cloud-init v. ... finished at ..." line).
# usage: tests/lab/debian-guest.sh OUT.raw.zst        (root; network to the machine's Debian mirror)
#   env GUEST_KEEP_TREE=DIR also leaves the root tree in DIR (debugging)
set -euo pipefail
out=${1:?usage: debian-guest.sh OUT.raw.zst}
die() { echo "debian-guest.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap builds a chroot as root)"
for tool in mmdebstrap sfdisk mkfs.vfat mkfs.ext4 syslinux mcopy mmd zstd; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/setup)"
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || die "missing $mbr (syslinux-common)"
sdboot=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
[ -f "$sdboot" ] || die "missing $sdboot (systemd-boot-efi)"
t0=$(date +%s)

# The machine's own apt source(s), as one-line entries for bookworm's suites (deb822 .sources or the
# classic sources.list): every `deb` URI x suite it lists, main only.
mirrors=()
while read -r line; do [ -n "$line" ] && mirrors+=("$line"); done < <(
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null; echo; } | awk '
    /^[ \t]*$/ { if (types ~ /(^| )deb( |$)/) for (u in uris) for (s in suites) if (suites[s] ~ /^bookworm/) print "deb " uris[u] " " suites[s] " main"
                 types = ""; delete uris; delete suites; next }
    /^Types:/ { types = $0; sub(/^Types:[ \t]*/, "", types) }
    /^URIs:/ { for (i = 2; i <= NF; i++) uris[i] = $i }
    /^Suites:/ { for (i = 2; i <= NF; i++) suites[i] = $i }'
  [ -f /etc/apt/sources.list ] && sed 's/\[[^]]*\]//' /etc/apt/sources.list |
    awk '$1 == "deb" && $3 ~ /^bookworm/ { print "deb " $2 " " $3 " main" }' 
)
[ ${#mirrors[@]} -gt 0 ] || die "no bookworm apt source in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"

work=$(mktemp -d /tmp/debian-guest.XXXXXX)
trap 'rm -rf "$work" "$out.tmp.$$"' EXIT
root=$work/root
root_uuid=6d657461-6c68-4f73-8400-64656269616e   # fixed: the same script gives the same fstab and loader config

# Small: no docs, man pages, locales (dpkg never unpacks them); no Recommends (mmdebstrap's default).
packages=(
  systemd-sysv udev                 # an init (variant apt has none)
  dbus                              # the system bus: hostnamectl, timedatectl, systemd-analyze as a user
  linux-image-cloud-amd64           # the cloud flavour: virtio, ~1/4 of the generic kernel's modules
  initramfs-tools zstd              # the kernel's initramfs (zstd: initramfs-tools' default compressor)
  e2fsprogs                         # fsck.ext4 for the root filesystem at boot
  cloud-init                        # ConfigDrive datasource: hostname, keys, user_data, network_data
  ifupdown                          # cloud-init 22.4 on Debian renders network config as ENI (its first renderer)
  net-tools                         # ... whose routes are `post-up route add ...` (net-tools' route, not ip)
  resolvconf                        # ... and whose DNS is `dns-nameservers` (applied by resolvconf's ifupdown hook)
  isc-dhcp-client                   # the fallback (no network_data) is DHCP on the first NIC, through ifupdown
  openssh-server sudo               # the login: cloud-init's default user gets NOPASSWD sudo
  iproute2 netbase ca-certificates  # ip (cloud-init, ifupdown); /etc/services; TLS for the tenant's own downloads
)
echo "debian-guest.sh: mmdebstrap bookworm from ${mirrors[*]}" >&2
# Hooks: mmdebstrap's merged-usr hooks make /bin, /lib... symlinks to /usr as debootstrap does (without
# them apt satisfies init-system-helpers' `usrmerge | usr-is-merged` with usrmerge, which converts the
# tree and brings ~45 MB of perl); ours runs before the kernel is installed, so its initramfs is
# built once, with our settings.
mmdebstrap --variant=apt --mode=root --format=directory \
  --include="$(IFS=,; echo "${packages[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" &&
    printf "# metalhost guest: every storage driver (this image is not tied to the build host), no resume device\nMODULES=most\nRESUME=none\n" > "$1/etc/initramfs-tools/conf.d/metalhost"' \
  bookworm "$root" "${mirrors[@]}" >&2 || die "mmdebstrap failed"
tree_t=$(date +%s)
ls "$root"/boot/vmlinuz-* >/dev/null 2>&1 || die "no kernel in the tree"
kver=$(basename "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)"); kver=${kver#vmlinuz-}

# --- the image's configuration ---
cat > "$root/etc/cloud/cloud.cfg.d/90-metalhost.cfg" <<'EOF'
# metalhost guest: the ConfigDrive (a `config-2` filesystem, written by metalhost's agent) is the only
# datasource, so cloud-init never waits on a network metadata service; None = no datasource at all.
datasource_list: [ ConfigDrive, None ]
# The root filesystem keeps its size (issue 30); the config drive is a partition after it.
growpart:
  mode: "off"
resize_rootfs: false
# No password logins, ever: keys only.
ssh_pwauth: false
# The hostname from meta_data.json resolves (127.0.1.1 in /etc/hosts; sudo looks it up).
manage_etc_hosts: true
# The image's locale, C.UTF-8 (built into libc), as in /etc/default/locale: nothing to generate. With
# cloud-init's default (en_US.UTF-8) the locale module fails (no locale data here) and `cloud-init
# status` says error; `locale: false` works but fails the schema check (a warning on the console).
locale: C.UTF-8
EOF
# The renderer is pinned rather than probed: the one whose tools (ifupdown, net-tools, resolvconf) are here.
cat > "$root/etc/cloud/cloud.cfg.d/91-metalhost-network.cfg" <<'EOF'
# ifupdown (ENI) renders network_data.json: /etc/network/interfaces.d/50-cloud-init
system_info:
  network:
    renderers: [ eni ]
EOF
mkdir -p "$root/etc/ssh/sshd_config.d"
printf '# metalhost guest: keys only\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' \
  > "$root/etc/ssh/sshd_config.d/50-metalhost.conf"
# Host keys are made per machine on first boot by cloud-init (ssh_deletekeys / ssh_genkeytypes).
rm -f "$root"/etc/ssh/ssh_host_*
# The machine id too (systemd makes it on first boot when the file is empty).
: > "$root/etc/machine-id"; rm -f "$root/var/lib/dbus/machine-id"
passwd -R "$root" -l root >/dev/null   # no root password (it is already `*`; say it)
echo debian > "$root/etc/hostname"
echo LANG=C.UTF-8 > "$root/etc/default/locale"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
cat > "$root/etc/fstab" <<EOF
# metalhost guest: root by filesystem UUID
UUID=$root_uuid / ext4 errors=remount-ro 0 1
EOF
# ifupdown: cloud-init's ENI file lives in interfaces.d.
printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' > "$root/etc/network/interfaces"
# No apt lists in the image (apt update fetches them), no caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
[ -n "${GUEST_KEEP_TREE:-}" ] && { rm -rf "$GUEST_KEEP_TREE"; cp -a "$root" "$GUEST_KEEP_TREE"; }

# --- the disk ---
cmdline="root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200n8"
esp_mib=64
tree_kib=$(du -sk "$root" | cut -f1)   # in 4 KiB blocks on this machine, as in the image
root_mib=$(( (tree_kib * 115 / 100) / 1024 + 100 ))   # + ext4 metadata and journal + ~100 MiB free
disk_mib=$(( 1 + esp_mib + root_mib ))
img=$work/disk.raw
truncate -s "${disk_mib}M" "$img"
printf 'label: dos\nlabel-id: 0x4d484447\nstart=2048, size=%s, type=ef, bootable\nstart=%s, size=%s, type=83\n' \
  $((esp_mib * 2048)) $(((1 + esp_mib) * 2048)) $((root_mib * 2048)) | sfdisk -q "$img"

# ESP: FAT16 at 1 MiB with the kernel, the initramfs, syslinux and systemd-boot.
esp="$img@@1M"
# (mkfs.vfat warns that the file is bigger than the filesystem: that is the point of --offset.)
mkfs.vfat -F 16 -n DEBIAN --invariant --offset 2048 "$img" $((esp_mib * 1024)) >/dev/null 2>&1 || die "mkfs.vfat failed"
syslinux --offset 1048576 --install "$img"
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"; cp "$root/boot/initrd.img-$kver" "$work/initrd.img"
printf 'DEFAULT debian\nPROMPT 0\nTIMEOUT 0\nLABEL debian\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND %s\n' "$cmdline" > "$work/syslinux.cfg"
printf 'default debian.conf\ntimeout 0\n' > "$work/loader.conf"
printf 'title Debian 12 (metalhost guest)\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$cmdline" > "$work/debian.conf"
cp "$sdboot" "$work/BOOTX64.EFI"
export MTOOLS_SKIP_CHECK=1
mcopy -i "$esp" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::/
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" "$work/BOOTX64.EFI" ::/EFI/BOOT/
mcopy -i "$esp" "$work/loader.conf" ::/loader/
mcopy -i "$esp" "$work/debian.conf" ::/loader/entries/
dd if="$mbr" of="$img" bs=440 count=1 conv=notrunc status=none

# Root: ext4 from the tree, as a file of its own, copied in at partition 2's offset.
# -T default -b 4096: not mke2fs's "small" profile (1 KiB blocks) for a filesystem under 512 MiB, which
# a tenant may grow; -i 8192: python and the kernel's modules are many small files; -m 1: little reserved.
E2FSPROGS_FAKE_TIME=1577836800 mkfs.ext4 -q -F -L debian-root -U "$root_uuid" -T default -b 4096 -i 8192 -m 1 \
  -E root_owner=0:0,hash_seed=$root_uuid,nodiscard -d "$root" "$work/root.ext4" "${root_mib}M" || die "mkfs.ext4 failed"
dd if="$work/root.ext4" of="$img" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none
rm -f "$work/root.ext4"

# Written next to OUT and renamed: a concurrent reader never sees half an image.
mkdir -p "$(dirname "$out")"
zstd -q -T0 -3 -f "$img" -o "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "debian-guest.sh: $out: kernel $kver, disk ${disk_mib} MiB raw (ESP ${esp_mib} MiB, root ${root_mib} MiB for a ${tree_kib} KiB tree)," \
  "$(( $(stat -c %s "$out") / 1024 / 1024 )) MiB zst; tree $((tree_t - t0)) s, total $(( $(date +%s) - t0 )) s"
