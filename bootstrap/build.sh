#!/usr/bin/env bash
# Builds the bootstrap image from Debian packages: the kernel from linux-image, busybox-static, the
# NIC and disk modules in dependency order, the udhcpc hook, and /init. The agent is not baked in:
# /init downloads it from the host (GET /v1/agent/binary), so agent changes need no rebuild.
#
# usage: bootstrap/build.sh [OUT_DIR]   (default bootstrap/out) -> vmlinuz, initrd.gz, manifest.json
#   BOOTSTRAP_KERNEL_PKG=linux-image-6.1.0-56-amd64  pins the kernel (default: what linux-image-amd64 points at)
#   BOOTSTRAP_MODULES="..."                           overrides the wanted modules (dependencies are added)
#
# Reproducible: the same kernel package and busybox give byte-identical outputs (fixed mtimes, owners,
# sorted cpio entries, gzip -n). Idempotent: the .deb is cached in OUT_DIR/.cache, outputs are
# replaced atomically, so a daemon serving OUT_DIR never sees half a file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache="$out/.cache"
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "bootstrap/build.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
for tool in apt-cache apt-get dpkg-deb depmod modprobe cpio gzip xz python3 /usr/bin/busybox; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/setup)"
done

# The kernel package linux-image-amd64 points at today (e.g. linux-image-6.1.0-56-amd64): resolving
# it keeps the build working when Debian bumps the ABI.
pkg=${BOOTSTRAP_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')}
[ -n "$pkg" ] || die "cannot resolve the kernel package from linux-image-amd64 (apt-get update?)"
deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  say "downloading $pkg"
  # apt-get download as root warns that _apt cannot write the dir: harmless, so stderr is kept quiet.
  (cd "$work" && apt-get download -qq "$pkg" 2>/dev/null) || die "apt-get download $pkg failed"
  mv "$work/${pkg}"_*.deb "$cache/"
  deb=$(ls "$cache/${pkg}"_*.deb | head -1)
fi
kpkg_version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" "$work/kpkg"
kv=${pkg#linux-image-}
[ -f "$work/kpkg/boot/vmlinuz-$kv" ] || die "$deb has no boot/vmlinuz-$kv"

root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,etc,tmp,run,lib/modules/$kv}
cp /usr/bin/busybox "$root/bin/busybox"
for applet in $(/usr/bin/busybox --list); do [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"; done
install -m 0755 "$here/init" "$root/init"
install -m 0755 "$here/udhcpc.script" "$root/etc/udhcpc.script"

# Wanted modules. The .deb ships no modules.dep: depmod computes it, modprobe --show-depends gives
# each module's dependencies first, which is the order /init insmods them in. Modules absent from a
# future kernel (or built in) are skipped, not fatal.
wanted=${BOOTSTRAP_MODULES:-"virtio_pci virtio_net virtio_blk e1000 e1000e ahci sd_mod nvme"}
depmod -b "$work/kpkg" "$kv"
order=$(for m in $wanted; do
  modprobe -d "$work/kpkg" -S "$kv" --show-depends "$m" 2>/dev/null || say "module $m not in $kv: skipped"
done | awk '$1=="insmod" {print $2}' | awk '!seen[$0]++')
[ -n "$order" ] || die "no modules resolved from $wanted"
: > "$root/etc/modules.order"
for path in $order; do
  rel=${path#*/lib/modules/$kv/}
  mkdir -p "$root/lib/modules/$kv/$(dirname "$rel")"
  cp "$path" "$root/lib/modules/$kv/$rel"
  case "$rel" in
    *.ko.xz) xz -d "$root/lib/modules/$kv/$rel"; rel=${rel%.xz} ;;
    *.ko.zst) zstd -q -d --rm "$root/lib/modules/$kv/$rel"; rel=${rel%.zst} ;;
  esac
  echo "$rel" >> "$root/etc/modules.order"
done

# Reproducible archive: fixed mtimes, root owner, sorted entries, no gzip name/time.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -print0 | LC_ALL=C sort -z \
  | cpio --null -o -H newc --quiet --reproducible -R 0:0 | gzip -9 -n) > "$work/initrd.gz"
cp "$work/kpkg/boot/vmlinuz-$kv" "$work/vmlinuz"

busybox_version=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)
python3 - "$work" "$pkg" "$kpkg_version" "$kv" "$busybox_version" "$root/etc/modules.order" > "$work/manifest.json" <<'PY'
import hashlib, json, os, sys
work, pkg, pkg_version, kv, busybox, order = sys.argv[1:]
def sha(name):
    with open(os.path.join(work, name), 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()
files = {n: {"sha256": sha(n), "size": os.path.getsize(os.path.join(work, n))} for n in ("vmlinuz", "initrd.gz")}
modules = [l.strip() for l in open(order) if l.strip()]
print(json.dumps({"kernel_package": pkg, "kernel_package_version": pkg_version, "kernel_version": kv,
                  "busybox_static_version": busybox, "files": files, "modules": modules}, indent=2, sort_keys=True))
PY

# Atomic replacement; the manifest goes last so it never describes files that are not there yet.
for f in vmlinuz initrd.gz manifest.json; do
  cp "$work/$f" "$out/.$f.tmp" && mv -f "$out/.$f.tmp" "$out/$f"
done
say "$out: vmlinuz ($kv, $(du -h "$out/vmlinuz" | cut -f1)), initrd.gz ($(du -h "$out/initrd.gz" | cut -f1), $(wc -l < "$root/etc/modules.order") modules)"
