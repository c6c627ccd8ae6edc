#!/usr/bin/env bash
# Builds the bootstrap image from Debian packages: the kernel from linux-image, busybox-static, the
# NIC and disk modules in dependency order, the udhcpc hook, and /init. The agent is not baked in:
# /init downloads it from the host, so agent changes need no rebuild.
# usage: bootstrap/build.sh [OUT_DIR]   (default bootstrap/out) -> vmlinuz, initrd.gz, manifest.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# The kernel package linux-image-amd64 points at today (e.g. linux-image-6.1.0-56-amd64).
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { echo "cannot resolve the kernel package" >&2; exit 1; }
(cd "$work" && apt-get download -qq "$pkg" 2>/dev/null)
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/kpkg"
kv=${pkg#linux-image-}
cp "$work/kpkg/boot/vmlinuz-$kv" "$out/vmlinuz"
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,etc,tmp,lib/modules/$kv}
cp /usr/bin/busybox "$root/bin/busybox"
for applet in $(/usr/bin/busybox --list); do [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"; done
install -m 0755 "$here/init" "$root/init"
install -m 0755 "$here/udhcpc.script" "$root/etc/udhcpc.script"
# Wanted modules; depmod computes their dependencies and the order to load them in.
depmod -b "$work/kpkg" "$kv"
wanted="virtio_pci virtio_net virtio_blk e1000 e1000e ahci sd_mod nvme"
order=$(for m in $wanted; do modprobe -d "$work/kpkg" -S "$kv" --show-depends "$m" 2>/dev/null; done \
  | awk '$1=="insmod" {print $2}' | awk '!seen[$0]++')
: > "$root/etc/modules.order"
for path in $order; do
  rel=${path#*/lib/modules/$kv/}
  mkdir -p "$root/lib/modules/$kv/$(dirname "$rel")"
  cp "$path" "$root/lib/modules/$kv/$rel"
  case "$rel" in *.ko.xz) xz -d "$root/lib/modules/$kv/$rel"; rel=${rel%.xz};; esac
  echo "$rel" >> "$root/etc/modules.order"
done
# Reproducible: fixed mtimes and sorted entries.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --reproducible | gzip -9 -n) > "$out/initrd.gz"
cat > "$out/manifest.json" <<JSON
{"kernel_package": "$pkg", "kernel_version": "$kv",
 "vmlinuz_sha256": "$(sha256sum "$out/vmlinuz" | cut -d' ' -f1)",
 "initrd_sha256": "$(sha256sum "$out/initrd.gz" | cut -d' ' -f1)",
 "modules": $(printf '%s\n' $(cat "$root/etc/modules.order") | python3 -c 'import json,sys; print(json.dumps([l.strip() for l in sys.stdin if l.strip()]))')}
JSON
echo "bootstrap image in $out: $(du -h "$out/vmlinuz" | cut -f1) kernel, $(du -h "$out/initrd.gz" | cut -f1) initrd ($(wc -l < "$root/etc/modules.order") modules)"
