#!/usr/bin/env bash
# Smoke test of the Debian guest image (tests/lab/debian-guest.sh), standalone (no metalhost): boots it
# under SeaBIOS, then under OVMF, each time from a fresh copy with a second disk holding a `config-2`
# vfat filesystem as metalhost's agent writes it (OpenStack ConfigDrive: meta_data.json with hostname
# and an SSH key, user_data with a runcmd marker, network_data.json with a `phy` link by MAC and static
# IPv4), on a tap in a private netns (bridge 10.77.0.1/24). From inside the netns it then logs in as
# cloud-init's default user `debian` with the key and checks the hostname, the address, `cloud-init
# status --wait`, the marker (console and file), and that sshd offers no password login.
# Prints the times: qemu start -> cloud-init's "finished" line on the console, -> first SSH login.
# usage: tests/lab/smoke-debian-guest.sh [IMAGE.raw.zst]
#   default: target/lab/debian-guest-<first 12 hex of the script's sha256>.raw.zst, built if missing
#   (the name the Rust lab's debian_guest_image() uses). env FIRMWARE="bios uefi" (default both).
#   env CONFIG_DRIVE=disk (default: config-2 on a second disk) or partition (as metalhost's agent
#   writes it: a 32 MiB FAT16 partition, MBR type 0x0E, at the end of the boot disk, which gets 512 MiB
#   more first, so there is a gap between the root partition and config-2)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
image=${1:-}
if [ -z "$image" ]; then
  tag=$(sha256sum "$LAB_DIR/debian-guest.sh" | cut -c1-12)
  image=${CARGO_TARGET_DIR:-$LAB_ROOT/target}/lab/debian-guest-$tag.raw.zst
  case $image in /*) ;; *) image=$LAB_ROOT/$image ;; esac
  if [ ! -s "$image" ]; then
    lab_log "building $image"
    "$LAB_DIR/debian-guest.sh" "$image" >&2 || lab_die "debian-guest.sh"
  fi
fi
[ -s "$image" ] || lab_die "no image $image"
for tool in zstd mkfs.vfat mcopy mmd ssh ssh-keygen; do command -v "$tool" >/dev/null || lab_die "missing $tool (run scripts/setup)"; done
lab_init smoke-debian-guest

ns=mhdg$$ mac=52:54:00:77:00:10 addr=10.77.0.10 host=guest-smoke marker=metalhost-marker-$$-$RANDOM
BR_ADDR=10.77.0.1/24 BR_ADDR6=fd77::1/64 lab_netns "$ns" 1
ssh-keygen -q -t ed25519 -N '' -C smoke -f "$LAB_TMP/key"

# The config drive: a whole-disk vfat labelled config-2 (cloud-init looks for the label), made with
# mkfs.vfat and filled with mcopy: no loop device, no mount.
cd2=$LAB_TMP/config-2
mkdir -p "$cd2/openstack/latest"
cat > "$cd2/openstack/latest/meta_data.json" <<EOF
{"uuid": "5a0c3f4e-1f0e-4b8e-9a55-6d6574616c68", "name": "$host", "hostname": "$host",
 "launch_index": 0, "availability_zone": "lab",
 "public_keys": {"k": "$(cat "$LAB_TMP/key.pub")"}}
EOF
cat > "$cd2/openstack/latest/user_data" <<EOF
#cloud-config
runcmd:
  - echo $marker > /dev/ttyS0
  - echo $marker > /run/metalhost-marker
EOF
cat > "$cd2/openstack/latest/network_data.json" <<EOF
{"links": [{"id": "nic0", "type": "phy", "ethernet_mac_address": "$mac", "mtu": 1500}],
 "networks": [{"id": "net0", "network_id": "lab", "type": "ipv4", "link": "nic0",
   "ip_address": "$addr", "netmask": "255.255.255.0",
   "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.77.0.1"}]}],
 "services": [{"type": "dns", "address": "10.77.0.1"}]}
EOF
export MTOOLS_SKIP_CHECK=1
config_fat() { # config_fat FILE OFFSET_SECTORS KIB: the config-2 filesystem at that offset
  mkfs.vfat -F 16 -n config-2 --offset "$2" "$1" "$3" >/dev/null 2>&1 || lab_die "mkfs.vfat config-2"
  mmd -i "$1@@$(($2 * 512))" ::/openstack ::/openstack/latest
  mcopy -i "$1@@$(($2 * 512))" "$cd2"/openstack/latest/* ::/openstack/latest/
}
case ${CONFIG_DRIVE:=disk} in
  disk) truncate -s 16M "$LAB_TMP/config-2.img"; config_fat "$LAB_TMP/config-2.img" 0 $((16 * 1024)) ;;
  partition) ;;
  *) lab_die "CONFIG_DRIVE=disk|partition" ;;
esac

gssh() { ip netns exec "$ns" ssh -i "$LAB_TMP/key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o LogLevel=ERROR -o ConnectTimeout=5 -o BatchMode=yes "$@"; }
report=()
boot() { # boot bios|uefi
  local fw=$1 serial=$LAB_TMP/$1.serial pidfile=$LAB_TMP/$1.pid t0 pid login out i
  lab_log "$fw: fresh disk from $image"
  zstd -q -d -f "$image" -o "$LAB_TMP/disk.raw"
  local disk2=(--disk2 "$LAB_TMP/config-2.img")
  if [ "$CONFIG_DRIVE" = partition ]; then
    truncate -s +512M "$LAB_TMP/disk.raw"
    local end=$(( $(stat -c %s "$LAB_TMP/disk.raw") / 512 )) start
    start=$(( (end - 32 * 2048) / 2048 * 2048 ))
    echo "start=$start, size=$((32 * 2048)), type=e" | sfdisk -q --append "$LAB_TMP/disk.raw" || lab_die "sfdisk --append"
    config_fat "$LAB_TMP/disk.raw" "$start" $((32 * 1024))
    disk2=()
  else
    truncate -s +64M "$LAB_TMP/disk.raw"   # room after the last partition, as on a real disk
  fi
  : > "$serial"
  local uefi=(); [ "$fw" = uefi ] && uefi=(--uefi "$LAB_TMP/vars.fd")
  t0=$(date +%s.%N)
  "$LAB_DIR/qemu-vm.sh" --name "debian-$fw" --ns "$ns" --net tap:tap0 --mac "$mac" --disk "$LAB_TMP/disk.raw" \
    "${disk2[@]}" --serial "$serial" --pidfile "$pidfile" "${uefi[@]}" \
    || lab_die "qemu did not start: $(cat "$serial.qemu")"
  pid=$(cat "$pidfile"); lab_track "$pid"
  # The first SSH login (polled: sshd starts once cloud-init's init stage made the host keys) and
  # cloud-init's "finished" line on the console (its final stage; after the login).
  login="" finished=""
  for i in $(seq 400); do
    kill -0 "$pid" 2>/dev/null || lab_die "$fw: the VM ended; console:\n$(tail -50 "$serial")"
    if [ -z "$login" ] && gssh "debian@$addr" true 2>/dev/null; then
      login=$(echo "$(date +%s.%N) - $t0" | bc); lab_log "$fw: SSH login as debian after ${login%.*} s"
    fi
    if [ -z "$finished" ] && grep -aq "Cloud-init v. .* finished at" "$serial"; then
      finished=$(echo "$(date +%s.%N) - $t0" | bc); lab_log "$fw: cloud-init finished after ${finished%.*} s"
    fi
    [ -n "$login" ] && [ -n "$finished" ] && break
    sleep 1
  done
  [ -n "$login" ] || lab_die "$fw: no SSH login within ~10 min; console:\n$(tail -50 "$serial")"
  [ -n "$finished" ] || lab_die "$fw: no 'Cloud-init v. ... finished at' on the console; console:\n$(tail -50 "$serial")"
  out=$(gssh "debian@$addr" 'hostname; ip -4 -o addr show; ip -4 route; cat /etc/resolv.conf; cloud-init status --wait --long;
    cat /run/metalhost-marker; sudo -n cat /etc/network/interfaces.d/50-cloud-init; sudo -n passwd -S root;
    sudo -n passwd -S debian; lsblk -o NAME,SIZE,LABEL,MOUNTPOINT; df -h /; systemd-analyze time || true') || lab_die "$fw: ssh commands failed: $out"
  printf '%s\n' "$out" | sed "s/^/[$fw guest] /" >&2
  grep -qx "$host" <<<"$out" || lab_die "$fw: hostname is not $host"
  grep -q "inet $addr/24" <<<"$out" || lab_die "$fw: no $addr/24"
  grep -q "^default via 10.77.0.1 dev" <<<"$out" || lab_die "$fw: no default route via 10.77.0.1"
  grep -q "^nameserver 10.77.0.1" <<<"$out" || lab_die "$fw: DNS 10.77.0.1 not in /etc/resolv.conf"
  grep -q "status: done" <<<"$out" || lab_die "$fw: cloud-init did not finish cleanly"
  grep -qx "$marker" <<<"$out" || lab_die "$fw: user_data's runcmd did not run"
  grep -qx "root L .*" <<<"$out" && grep -qx "debian L .*" <<<"$out" || lab_die "$fw: a password is set"
  grep -aq "$marker" "$serial" || lab_die "$fw: the runcmd marker is not on the console"
  if grep -a "cloud-init\[[0-9]*\]: .*\[WARNING\]\|Traceback" "$serial" >&2; then lab_die "$fw: cloud-init warned (above)"; fi
  # No password login: the server offers publickey only (BatchMode never prompts, so it fails either way;
  # what matters is the list of methods in the refusal).
  if out=$(gssh -o PreferredAuthentications=password,keyboard-interactive -o PubkeyAuthentication=no "debian@$addr" true 2>&1); then
    lab_die "$fw: a login without the key succeeded"
  fi
  grep -q "Permission denied (publickey)" <<<"$out" || lab_die "$fw: unexpected refusal: $out"
  lab_log "$fw: password login refused: $out"
  lab_log "$fw: console: $(grep -a -m1 "Cloud-init v. .* finished at" "$serial" | tr -d '\r')"
  report+=("$fw: SSH login $(printf %.0f "$login") s, cloud-init finished $(printf %.0f "$finished") s after qemu start")
  lab_stop_pid "$pid"
  rm -f "$LAB_TMP/disk.raw"
}
for fw in ${FIRMWARE:-bios uefi}; do boot "$fw"; done
lab_log "image $image: $(( $(stat -c %s "$image") / 1048576 )) MiB zst"
printf 'smoke-debian-guest: %s\n' "${report[@]}"
echo "smoke-debian-guest: PASS"
