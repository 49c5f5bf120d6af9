#!/bin/sh
# /init of the lab VMs' initramfs (busybox). Loads the virtio drivers, mounts the root disk, then
#   lab.mode=run:  hands over to /run/sealos-lab/init (one command, no systemd, see vm_run_stage.sh)
#   lab.mode=host: copies the host's own files over /, configures its NIC, boots systemd.
# Disks are found by the serial number qemu gives them, not by their order.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for ko in $(cat /lab/modules); do insmod "/lab/ko/$ko"; done

fail() {
    echo "sealos-lab initramfs: $*" >/dev/console
    sleep 1
    poweroff -f
}

param() {
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1="*) echo "${word#*=}"; return 0 ;; esac
    done
    return 1
}

disk() {
    tries=0
    while [ "$tries" -lt 200 ]; do
        for s in /sys/block/vd*/serial; do
            if [ -e "$s" ] && [ "$(cat "$s")" = "$1" ]; then
                d=${s%/serial}
                echo "/dev/${d##*/}"
                return 0
            fi
        done
        sleep 0.05
        tries=$((tries + 1))
    done
    return 1
}

mode=$(param lab.mode) || fail "no lab.mode on the kernel command line"
root=$(disk lab-root) || fail "no root disk"
mkdir -p /newroot
mount -t ext4 -o rw "$root" /newroot || fail "cannot mount the root disk $root"

case "$mode" in
run)
    mount -t tmpfs -o mode=0755 tmpfs /newroot/run
    mkdir -p /newroot/run/sealos-lab /newroot/mnt/share
    cp /lab/run-stage /newroot/run/sealos-lab/init
    chmod 0755 /newroot/run/sealos-lab/init
    cat /sys/firmware/qemu_fw_cfg/by_name/opt/sealos-lab/command/raw \
        >/newroot/run/sealos-lab/command || fail "no command given"
    if share=$(disk lab-share); then
        mount -t ext4 -o rw "$share" /newroot/mnt/share || fail "cannot mount the shared folder"
    fi
    init=/run/sealos-lab/init
    ;;
host)
    # The host's files are copied at its first boot only: a real host keeps its disk, and what
    # was changed on it since (sealos's /etc/hosts line, say) must survive a reboot.
    copied=/newroot/var/lib/sealos-lab/files-copied
    if [ ! -e "$copied" ] && files=$(disk lab-files); then
        # GNU tar from the root image: --no-overwrite-dir keeps the modes of existing folders
        # (/root stays 0700, /tmp 1777) while files and new folders come with their own.
        stage=/newroot/run/sealos-lab-files
        mkdir -p "$stage"
        mount -t ext4 -o ro "$files" "$stage" || fail "cannot mount the host's files"
        chroot /newroot /bin/tar -C /run/sealos-lab-files --exclude=./lost+found -cf - . |
            chroot /newroot /bin/tar -C / --no-overwrite-dir -xpf - ||
            fail "cannot copy the host's files"
        umount "$stage"
        rmdir "$stage"
        mkdir -p "${copied%/*}" && : >"$copied" || fail "cannot mark the host's files copied"
    fi
    # The NIC is configured here, before systemd: it is up with its address by the time sshd
    # starts, and no network daemon has to run (net.ifnames=0 keeps udev from renaming it).
    mac=$(param lab.mac) || fail "no lab.mac"
    mac=$(echo "$mac" | tr 'A-F' 'a-f')
    addr=$(param lab.ip) || fail "no lab.ip"
    ip link set lo up
    nic=
    tries=0
    while [ -z "$nic" ] && [ "$tries" -lt 100 ]; do
        for a in /sys/class/net/*/address; do
            [ "$(cat "$a")" = "$mac" ] && { d=${a%/address}; nic=${d##*/}; }
        done
        [ -n "$nic" ] || sleep 0.05
        tries=$((tries + 1))
    done
    [ -n "$nic" ] || fail "no network card with MAC $mac"
    ip addr add "$addr" dev "$nic" || fail "cannot set $addr on $nic"
    ip link set "$nic" up
    if gw=$(param lab.gw); then ip route add default via "$gw" dev "$nic"; fi
    # Units a throwaway VM does not need; each costs seconds of emulated CPU at boot.
    etc=/newroot/etc/systemd/system
    for unit in $(cat /lab/masked-units); do ln -sf /dev/null "$etc/$unit"; done
    mkdir -p "$etc/ssh.service.d"
    printf '[Service]\nExecStartPre=\n' >"$etc/ssh.service.d/sealos-lab.conf"
    # An empty machine-id means "first boot" to systemd; give each VM its own, once.
    if [ ! -s /newroot/etc/machine-id ]; then
        tr -d '-' </proc/sys/kernel/random/uuid >/newroot/etc/machine-id
    fi
    init=/sbin/init
    ;;
*)
    fail "unknown lab.mode $mode"
    ;;
esac

mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot "$init"
