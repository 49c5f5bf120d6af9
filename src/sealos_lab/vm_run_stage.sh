#!/bin/sh
# PID 1 of a `vm-run` VM (no systemd): loads IPVS, runs the command as root in /mnt/share, writes
# its output and exit code between markers on the second serial port, powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
hostname vm-run
ip link set lo up
modprobe -a nf_conntrack ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh

token=
for word in $(cat /proc/cmdline); do
    case "$word" in lab.token=*) token=${word#lab.token=} ;; esac
done

out=/dev/ttyS1
stty -F "$out" raw -echo 2>/dev/null
{
    echo "===SEALOS-LAB-BEGIN-$token==="
    cd /mnt/share || cd /
    /bin/sh -c "$(cat /run/sealos-lab/command)" </dev/null 2>&1
    rc=$?
    printf '\n===SEALOS-LAB-END-%s rc=%s===\n' "$token" "$rc"
} >"$out" 2>&1
sync
umount /mnt/share 2>/dev/null
echo o >/proc/sysrq-trigger
sleep 30
