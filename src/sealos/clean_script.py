"""The clean script: what `sealos clean` removes from one host (the paths and their rules are data
in `remote_paths.CLEAN_FOOTPRINT`), rendered as one idempotent POSIX shell script.

It works on a fully installed host, on one where `init` stopped anywhere, and on a clean one
(nothing to do). Each thing it removes is printed as `removed: WHAT` (dry run: `would remove:
WHAT`); trouble as `problem: WHAT` (the script exits non-zero), or, where --force lets it go
on, as `warning: WHAT`.

Only what is ours goes. On a host without a marker of sealos (`rp.SEALOS_MARKERS`: sealos never
started there) nothing but lines carrying sealos's marker is touched, and no `kubeadm reset` runs,
unless `not_ours` (`clean --not-a-member`) says the user means it; what is kept is listed as a
warning. On any host each removal follows its rule in `rp.CLEAN_FOOTPRINT` (kube binaries
byte-identical to the package's or recorded at install, root's kubectl config only when it is
the cluster's admin.conf, the CNI's files by name, init.sh's system files by their recorded
SHA-256); a file that fails its rule is kept and named in a warning.

Order matters: lvscare's keeper stops first (so it cannot put rules back), `kubeadm reset -f`
runs while the apiserver name still resolves, then lvscare removes its own rules, routes and
interfaces (a sweep catches what is left when its binary is gone), then what kubeadm reset says
it leaves of kube-proxy and the CNI (kube-proxy's IPVS virtual servers and kube-ipvs0, KUBE-* and
cali-* chains, calico's links), then units, the hosts line, files and the binaries the package
installed (/opt/cni/bin's files only where byte-identical to the package's kube/cni/bin).
"""

from __future__ import annotations

from collections.abc import Iterable

from sealos import etc_hosts
from sealos import remote_paths as rp
from sealos.lvscare_node import UNIT_NAME, endpoint
from sealos.remote_paths import EXIT_BUSY, q
from sealos.spec import package_name_problem

REMOVED = "removed: "
WOULD = "would remove: "
PROBLEM = "problem: "
WARNING = "warning: "
LOCK_GRACE = 5  # seconds an interrupted run's kubeadm gets to end by itself
LOCK_WAIT = 60  # seconds it gets after SIGTERM


def _paths(removal: rp.Removal) -> str:
    return " ".join(q(p) for p in removal.paths)


def _wipe_ours(removal: rp.Removal) -> str:
    """Paths that are ours by path: removed on a host that is ours, else kept (and listed)."""
    return f"if owned; then wipe {_paths(removal)}; else keep {_paths(removal)}; fi"


def script(
    vips: Iterable[str],
    package_names: Iterable[str],
    dry_run: bool = False,
    force: bool = False,
    not_ours: bool = False,
) -> str:
    """The clean script for a host; `vips` and `package_names` come from the state (the script
    also finds VIPs in lvscare's unit or manifest, and the package by the checksum init left).
    With `force`, a failing `kubeadm reset` is a warning and the files go anyway. With
    `not_ours`, a host without sealos's markers is cleaned as if it had them."""
    endpoints = " ".join(q(endpoint(v)) for v in dict.fromkeys(vips))
    # A name that could not be a package's (`.ssh`, `kube`, ...) is never removed by name; the
    # package is still found by the checksum init left.
    names = [n for n in dict.fromkeys(package_names) if package_name_problem(n) is None]
    packages = " ".join(q(f"{rp.HOME}/{n}") for n in names)
    lvscare = q(rp.LVSCARE_BIN)
    unit, manifest = q(rp.LVSCARE_UNIT), q(rp.LVSCARE_MANIFEST)
    remove_hosts_line = etc_hosts.remove_entry_command()
    markers = " ".join(q(p) for p in rp.SEALOS_MARKERS)
    config, admin = q(rp.KUBECTL_CONFIG), q(rp.ADMIN_CONF)
    return f"""
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
dry={1 if dry_run else 0}
force={1 if force else 0}
takeover={1 if not_ours else 0}
failed=0
reload=0
kept=""
foreign=""
note() {{ if [ "$dry" = 1 ]; then echo "{WOULD}$*"; else echo "{REMOVED}$*"; fi; }}
problem() {{ echo "{PROBLEM}$*"; failed=1; }}
have() {{ command -v "$1" >/dev/null 2>&1; }}
exists() {{ [ -e "$1" ] || [ -L "$1" ]; }}
wipe() {{
    for p in "$@"; do
        if exists "$p"; then
            note "$p"
            if [ "$dry" = 0 ]; then rm -rf -- "$p" || problem "cannot remove $p"; fi
        fi
    done
}}
tail3() {{ printf '%s' "$1" | tail -n 3 | tr '\\n' ' '; }}
# Ours: sealos recorded here that it started (a marker), or the user said so (--not-a-member).
ours=$takeover
for m in {markers}; do if [ -f "$m" ]; then ours=1; fi; done
owned() {{ [ "$ours" = 1 ]; }}
keep() {{ for p in "$@"; do if exists "$p"; then kept="$kept $p"; fi; done; }}
# not_ours PATH WHY: a file at one of our paths that fails its rule: kept, and said
not_ours() {{ if exists "$1"; then foreign="$foreign $1 ($2);"; fi; }}
# recorded PATH RECORD: PATH has the SHA-256 sealos recorded for it in RECORD (sha256sum's form)
recorded() {{
    [ -f "$1" ] && [ -f "$2" ] && grep -qxF -- "$(sha256sum -- "$1" 2>/dev/null)" "$2"
}}
# root's kubectl config is ours when it is the cluster's admin.conf (compared now: kubeadm reset
# removes that) or the file sealos wrote (recorded).
kubeconfig_ours=0
if owned && [ -f {config} ]; then
    if cmp -s {admin} {config} || recorded {config} {q(rp.MARK_KUBECONFIG)}; then
        kubeconfig_ours=1
    fi
fi

# containerd is ours when the package's init.sh installed it: its config carries our marker.
containerd_ours=0
if owned && grep -qxF -- {q(rp.CONFIG_MARKER)} {q(rp.CONTAINERD_CONFIG)} 2>/dev/null; then
    containerd_ours=1
fi

# An interrupted run's kubeadm may still run under the host-wide lock. Give it a moment to end;
# then stop it: what it would finish is removed right after anyway.
if [ "$dry" = 0 ] && owned && [ -d {q(rp.STATE_DIR)} ] && have flock; then
    exec 9>>{q(rp.KUBEADM_LOCK)}
    if ! flock -w {LOCK_GRACE} 9; then
        for fd in /proc/[0-9]*/fd/*; do
            [ "$(readlink "$fd" 2>/dev/null)" = {q(rp.KUBEADM_LOCK)} ] || continue
            pid=${{fd#/proc/}}
            pid=${{pid%%/*}}
            if [ "$pid" != "$$" ] && kill "$pid" 2>/dev/null; then
                note "process $pid (an interrupted run's kubeadm, holding the lock)"
            fi
        done
        if ! flock -w {LOCK_WAIT} 9; then
            echo "{PROBLEM}a process still holds {rp.KUBEADM_LOCK} after SIGTERM;" \\
                "stop it (fuser {rp.KUBEADM_LOCK}) and run clean again"
            exit {EXIT_BUSY}
        fi
    fi
fi

# An interrupted run may still be unpacking the package or running init.sh (they run without
# the lock): stop them with their whole command (its process group, one per SSH command), or
# they would put files back after this script removed them.
pgrp() {{ sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f3; }}
if [ "$dry" = 0 ] && owned; then
    mine=$(pgrp $$)
    for d in /proc/[0-9]*; do
        pid=${{d#/proc/}}
        args=$(tr '\\000' ' ' < "$d/cmdline" 2>/dev/null) || continue
        args=${{args% }}
        case "$args" in
        "tar -C {rp.HOME} -xzf {rp.HOME}/"*) ;;
        "sh init.sh"*) [ "$(readlink "$d/cwd")" = {q(rp.PACKAGE_DIR + "/shell")} ] || continue ;;
        *) continue ;;
        esac
        group=$(pgrp "$pid")
        if [ -n "$group" ] && [ "$group" != "$mine" ] && kill -TERM "-$group" 2>/dev/null; then
            note "process $pid ($args, left by an interrupted run)"
        fi
    done
fi

# VIPs: from the state, and from lvscare's own unit or manifest (they may differ after edits).
endpoints="{endpoints}"
if [ -f {unit} ]; then
    endpoints="$endpoints $(sed -n 's/.* --vs \\([^ ]*\\).*/\\1/p' {unit})"
fi
if [ -f {manifest} ]; then
    # the line after `- --vs` in the container's command list
    vs=$(awk 'f {{ gsub(/^[ -]*|["\\047]/, ""); print; exit }} /- --vs$/ {{ f=1 }}' {manifest})
    endpoints="$endpoints $vs"
fi
endpoints=$(printf '%s\\n' $endpoints | sort -u)

# 1. lvscare's keeper: the unit (stopped first, so nothing puts rules back) or the static pod.
if ! owned; then
    endpoints=""
elif exists {unit} || {{ have systemctl && systemctl is-active --quiet {UNIT_NAME}; }}; then
    note "{UNIT_NAME} (stopped)"
    if [ "$dry" = 0 ]; then
        systemctl disable --now {UNIT_NAME} >/dev/null 2>&1 ||
            systemctl stop {UNIT_NAME} >/dev/null 2>&1
    fi
    reload=1
fi
{_wipe_ours(rp.LVSCARE_KEEPER)}

# 2. kubeadm undoes what it made (while the apiserver name still resolves), where it is ours.
if ! owned && {{ exists {q(rp.KUBE_DIR)} || exists /var/lib/etcd; }}; then
    kept="$kept the Kubernetes install (no kubeadm reset)"
elif have kubeadm &&
    {{ exists {q(rp.KUBE_DIR)} || exists /var/lib/kubelet || exists /var/lib/etcd; }}; then
    note "the Kubernetes member on this host (kubeadm reset -f)"
    if [ "$dry" = 0 ] && ! out=$(kubeadm reset -f 2>&1); then
        if [ "$force" = 1 ]; then
            echo "{WARNING}kubeadm reset -f failed ($(tail3 "$out")); its files go anyway (--force)"
        else
            # Stop here: removing kubeadm's files would leave whatever it could not stop running.
            problem "kubeadm reset -f failed ($(tail3 "$out")); fix that, or add --force"
            exit 1
        fi
    fi
fi

# 3. lvscare removes its virtual server, routes and interfaces; a sweep catches the rest.
if [ "$dry" = 0 ] && owned && [ -x {lvscare} ] && have python3; then
    for vs in $endpoints; do
        out=$({lvscare} care --vs "$vs" --clean 2>&1) ||
            problem "lvscare --clean for $vs failed: $(tail3 "$out")"
        printf '%s\\n' "$out" | sed -n 's/.* INFO removed /{REMOVED}/p'
    done
fi
if have nft && owned; then
    nft list tables 2>/dev/null | while read -r _ family name; do
        case "$name" in
        lvscare*)
            note "nftables table $family $name"
            [ "$dry" = 1 ] || nft delete table "$family" "$name" ||
                problem "cannot delete nftables table $family $name"
            ;;
        esac
    done
fi
for vs in $endpoints; do
    vip=$(printf '%s' "$vs" | sed 's/^\\[//; s/\\]:[0-9]*$//; s/:[0-9]*$//')
    case "$vip" in *:*) fam=-6 ;; *) fam=-4 ;; esac
    ip $fam route show proto 247 2>/dev/null | while read -r dst rest; do
        if [ "$dst" = "$vip" ]; then
            note "route $dst $rest"
            [ "$dry" = 1 ] || ip $fam route del "$dst" proto 247 ||
                problem "cannot delete route $dst"
        fi
    done
    if ip $fam -o addr show dev lo 2>/dev/null | grep -q "inet6\\? $vip/.*lo:lvscare"; then
        note "address $vip on lo (lo:lvscare)"
        [ "$dry" = 1 ] || ip $fam addr del "$vip" dev lo 2>/dev/null
    fi
    if have ipvsadm && ipvsadm -Ln -t "$vs" >/dev/null 2>&1; then
        note "IPVS virtual server $vs"
        [ "$dry" = 1 ] || ipvsadm -D -t "$vs" || problem "cannot delete IPVS virtual server $vs"
    fi
done
if owned && ip link show lvscare0 >/dev/null 2>&1; then
    note "interface lvscare0"
    [ "$dry" = 1 ] || ip link del lvscare0 || problem "cannot delete interface lvscare0"
fi
{_wipe_ours(rp.LVSCARE_BUNDLE)}

{_network_leftovers()}

# 4. The kubelet unit and its drop-ins (the package's init.sh installed them).
if owned && {{ exists {q(rp.KUBELET_UNIT)} || exists {q(rp.KUBELET_DROPINS)}; }}; then
    if [ "$dry" = 0 ] && have systemctl; then
        systemctl disable --now kubelet.service >/dev/null 2>&1 || true
    fi
    reload=1
fi
{_wipe_ours(rp.KUBELET_SERVICE)}

# containerd, when the package's init.sh installed it (stopped only now: kubeadm reset needed it to
# remove the pods). A runtime the host had before (Debian's, the admin's) is not ours: left alone.
if [ "$containerd_ours" = 1 ] &&
    {{ exists {q(rp.CONTAINERD_UNIT)} || exists {q(rp.CONTAINERD_WANTS)}; }}; then
    if [ "$dry" = 0 ] && have systemctl; then
        systemctl disable --now containerd.service >/dev/null 2>&1 || true
    fi
    reload=1
fi
if [ "$containerd_ours" = 1 ]; then wipe {_paths(rp.CONTAINERD_SERVICE)}; fi

# 5. Our /etc/hosts line (by its marker; other lines stay).
if grep -qF -- {q(etc_hosts.MARKER)} {q(rp.HOSTS_FILE)} 2>/dev/null; then
    note "/etc/hosts line: $(grep -F -- {q(etc_hosts.MARKER)} {q(rp.HOSTS_FILE)} | head -n 1)"
    if [ "$dry" = 0 ]; then
        ( {remove_hosts_line} ) || problem "cannot edit {rp.HOSTS_FILE}"
    fi
fi

# 6. Binaries from the package: the three Kubernetes ones, and any other file of kube/bin (or
# kube/cni/bin) that the folders init.sh installs to hold unchanged.
if owned; then
{_same_as_package()}
{_kube_binaries()}
wipe {_paths(rp.KUBE_BINARY_PARTS)}
else
    keep {_paths(rp.KUBE_BINARIES)}
fi

# 7. The package file (by name, and any file in /root with the checksum init recorded).
sha=$(cat {q(rp.MARK_PACKAGE)} 2>/dev/null)
for f in {packages}; do
    # a half-transferred package carries our suffix: ours on any host
    wipe "$f{rp.PART}"
    if owned; then wipe "$f"; else keep "$f"; fi
done
if [ -n "$sha" ]; then
    for f in {q(rp.HOME)}/*.tar.gz; do
        if [ -f "$f" ] && [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$sha" ]; then wipe "$f"; fi
    done
fi

# 8. Cluster files, kubectl's config, the CNI's files, what init.sh wrote, our markers.
{_wipe_ours(rp.CLUSTER_DATA)}
if [ "$kubeconfig_ours" = 1 ]; then
    wipe {_paths(rp.KUBECTL_FILES)}
    wipe {_paths(rp.KUBECTL_CACHE_FILES)}
elif owned; then
    not_ours {config} "not the cluster's admin.conf"
else
    keep {config}
fi
{_wipe_ours(rp.CNI_FILES)}
{_system_files()}
if [ "$containerd_ours" = 1 ]; then
    wipe {_paths(rp.CONTAINERD_FILES)}
elif owned && [ -s {q(rp.MARK_IMAGES)} ] && have ctr; then
    # the host's own runtime stays; the images our init.sh imported into it go
    for image in $(cat {q(rp.MARK_IMAGES)}); do
        if ctr -n k8s.io images ls -q 2>/dev/null | grep -qxF -- "$image"; then
            note "image $image (imported into the host's containerd by init.sh)"
            [ "$dry" = 1 ] || ctr -n k8s.io images rm "$image" >/dev/null 2>&1 ||
                problem "cannot remove image $image from containerd"
        fi
    done
fi
if grep -qxF -- {q(rp.CONFIG_MARKER)} {q(rp.CONTAINERD_CONFIG)} 2>/dev/null; then
    wipe {q(rp.CONTAINERD_CONFIG)}
fi
if grep -q -- {q("^" + rp.SWAP_MARKER)} {q(rp.FSTAB)} 2>/dev/null; then
    note "{rp.FSTAB}: the swap lines init.sh turned off are restored"
    if [ "$dry" = 0 ]; then
        sed -i {q("s/^" + rp.SWAP_MARKER + "//")} {q(rp.FSTAB)} || problem "cannot edit {rp.FSTAB}"
    fi
fi
{_wipe_ours(rp.MARKERS)}

# 9. The folders those were in, when nothing else is in them.
if [ "$dry" = 0 ] && owned; then rmdir {_paths(rp.EMPTY_FOLDERS)} 2>/dev/null; fi

if [ -n "$foreign" ]; then
    echo "{WARNING}kept what is not sealos's:$foreign"
fi
if [ -n "$kept" ]; then
    echo "{WARNING}no marker of sealos on this host (it did not install here), so kept:$kept;" \\
        "add --not-a-member to remove them too"
fi

if [ "$dry" = 0 ] && [ "$reload" = 1 ] && have systemctl; then systemctl daemon-reload; fi
exit $failed
"""


def _network_leftovers() -> str:
    """Shell lines removing what kubeadm reset leaves of kube-proxy and the CNI (it says so):
    the IPVS virtual servers on kube-proxy's addresses (those bound to kube-ipvs0) and the link,
    kube-proxy's nftables tables, every KUBE-*/cali-* chain (nftables, so iptables-nft's too)
    with the rules jumping to it, a table left empty by that, and calico's links. Only on a host
    that is ours."""
    link = q(rp.KUBE_PROXY_LINK)
    prefixes = "|".join(rp.NETWORK_CHAIN_PREFIXES)
    links = "|".join(rp.CNI_LINKS)
    return f"""field() {{ printf '%s' "$1" | cut -d'|' -f"$2"; }}
# 3b. What kubeadm reset leaves of kube-proxy and the CNI (known by their own names).
if owned && ip link show {link} >/dev/null 2>&1; then
    vss=""
    for a in $(ip -o addr show dev {link} 2>/dev/null | awk '{{print $4}}' | cut -d/ -f1); do
        case "$a" in *:*) a="[$a]" ;; esac
        if have ipvsadm; then
            vss="$vss $(ipvsadm -Ln 2>/dev/null | awk -v a="$a:" \
                '($1 == "TCP" || $1 == "UDP") && index($2, a) == 1 {{print $1 "=" $2}}')"
        fi
    done
    for v in $vss; do
        case "${{v%%=*}}" in TCP) flag=-t ;; *) flag=-u ;; esac
        note "IPVS virtual server ${{v#*=}} (kube-proxy's)"
        [ "$dry" = 1 ] || ipvsadm -D $flag "${{v#*=}}" ||
            problem "cannot delete IPVS virtual server ${{v#*=}}"
    done
    note "interface {rp.KUBE_PROXY_LINK} (kube-proxy's)"
    [ "$dry" = 1 ] || ip link del {link} || problem "cannot delete interface {rp.KUBE_PROXY_LINK}"
fi
if owned && have nft; then
    for fam in ip ip6; do
        if nft list table $fam {q(rp.KUBE_PROXY_NFT_TABLE)} >/dev/null 2>&1; then
            note "nftables table $fam {rp.KUBE_PROXY_NFT_TABLE}"
            [ "$dry" = 1 ] || nft delete table $fam {q(rp.KUBE_PROXY_NFT_TABLE)} ||
                problem "cannot delete nftables table $fam {rp.KUBE_PROXY_NFT_TABLE}"
        fi
    done
    # rules elsewhere that jump to such a chain (by handle), then the chains themselves
    jumps=$(nft -a list ruleset 2>/dev/null | awk '
        /^table / {{ fam = $2; tbl = $3 }}
        /^\tchain / {{ chain = $2 }}
        /(jump|goto) ({prefixes})/ && chain !~ /^({prefixes})/ {{
            print fam "|" tbl "|" chain "|" $NF
        }}')
    chains=$(nft list ruleset 2>/dev/null | awk '
        /^table / {{ fam = $2; tbl = $3 }}
        /^\tchain ({prefixes})/ {{ print fam "|" tbl "|" $2 }}')
    if [ "$dry" = 0 ]; then
        for r in $jumps; do
            fam=$(field "$r" 1) tbl=$(field "$r" 2) chain=$(field "$r" 3) handle=$(field "$r" 4)
            nft delete rule "$fam" "$tbl" "$chain" handle "$handle" ||
                problem "cannot delete the rule of $fam $tbl $chain jumping to a chain of theirs"
        done
        for c in $chains; do
            fam=$(field "$c" 1) tbl=$(field "$c" 2) chain=$(field "$c" 3)
            nft flush chain "$fam" "$tbl" "$chain" 2>/dev/null
        done
    fi
    tables=""
    for c in $chains; do
        fam=$(field "$c" 1) tbl=$(field "$c" 2) chain=$(field "$c" 3)
        note "nftables chain $fam $tbl $chain"
        [ "$dry" = 1 ] || nft delete chain "$fam" "$tbl" "$chain" ||
            problem "cannot delete nftables chain $fam $tbl $chain"
        case " $tables " in *" $fam|$tbl "*) ;; *) tables="$tables $fam|$tbl" ;; esac
    done
    # A table that held such chains and now holds no rule and no other content is gone too.
    for t in $tables; do
        fam=$(field "$t" 1) tbl=$(field "$t" 2)
        [ "$dry" = 0 ] || continue
        if ! nft list table "$fam" "$tbl" 2>/dev/null | grep -qv -e '^table ' \\
            -e '^[[:space:]]*chain ' -e '^[[:space:]]*type ' -e '^[[:space:]]*}}' \\
            -e '^[[:space:]]*$'; then
            note "nftables table $fam $tbl (empty once those chains were gone)"
            nft delete table "$fam" "$tbl" || problem "cannot delete nftables table $fam $tbl"
        fi
    done
fi
if owned; then
    for l in $(ip -o link show 2>/dev/null | awk -F': ' '{{print $2}}' | cut -d@ -f1); do
        case "$l" in
        {links})
            note "interface $l (the CNI's)"
            if [ "$dry" = 0 ] && ! ip link del "$l" 2>/dev/null; then
                # tunl0 is the ipip module's own device: it can only be emptied
                ip addr flush dev "$l" 2>/dev/null
                ip link set "$l" down 2>/dev/null || problem "cannot delete interface $l"
            fi
            ;;
        esac
    done
fi"""


def _kube_binaries() -> str:
    """Shell lines removing /usr/bin/{kubeadm,kubelet,kubectl} when they are the package's:
    byte-identical to kube/bin's file, or (kube/ gone) of the SHA-256 recorded after init.sh."""
    lines = []
    for path, name in zip(rp.KUBE_BINARIES.paths, rp.PACKAGE_BINARIES):
        package = q(f"{rp.PACKAGE_DIR}/bin/{name}")
        installed = q(path)
        lines.append(f"""if [ -f {package} ]; then
    if cmp -s {package} {installed}; then
        wipe {installed}
    else
        not_ours {installed} "not the package's"
    fi
elif recorded {installed} {q(rp.MARK_INSTALLED)}; then
    wipe {installed}
else
    not_ours {installed} "no package file or record to compare with"
fi""")
    return "\n".join(lines)


def _system_files() -> str:
    """Shell lines removing the files init.sh writes besides binaries: with sealos's marker line,
    or of the SHA-256 recorded after init.sh (none recorded: init.sh did not finish, by path)."""
    record = q(rp.MARK_INSTALLED)
    lines = []
    for path in rp.PACKAGE_SYSTEM_FILES.paths:
        p = q(path)
        lines.append(f"""if grep -qxF -- {q(rp.CONFIG_MARKER)} {p} 2>/dev/null; then
    wipe {p}
elif ! owned; then
    keep {p}
elif [ ! -f {record} ] || recorded {p} {record}; then
    wipe {p}
else
    not_ours {p} "changed since init.sh wrote it"
fi""")
    return "\n".join(lines)


def _same_as_package() -> str:
    """Shell lines removing each host file that is byte-identical to its package file."""
    kube_binaries = " ".join(rp.PACKAGE_BINARIES)
    lines = []
    for sub, dirs in rp.SAME_AS_PACKAGE_DIRS.items():
        folder = q(f"{rp.PACKAGE_DIR}/{sub}")
        lines.append(f"""if [ -d {folder} ]; then
    for f in {folder}/*; do
        b=$(basename "$f")
        case " {kube_binaries} " in *" $b "*) continue ;; esac
        for d in {" ".join(q(d) for d in dirs)}; do
            installed="$d/$b"
            if [ -f "$installed" ] && cmp -s "$f" "$installed"; then wipe "$installed"; fi
            wipe "$installed{rp.PART}"
        done
    done
fi""")
    return "\n".join(lines)


def parse(output: str) -> tuple[list[str], list[str], list[str]]:
    """(what was removed or would be, problems, warnings) from the script's output."""
    done: list[str] = []
    problems: list[str] = []
    warnings: list[str] = []
    for line in output.splitlines():
        for prefix in (REMOVED, WOULD):
            if line.startswith(prefix):
                done.append(line[len(prefix) :].strip())
        if line.startswith(PROBLEM):
            problems.append(line[len(PROBLEM) :].strip())
        if line.startswith(WARNING):
            warnings.append(line[len(WARNING) :].strip())
    # A file may be found twice (by the package name and by its checksum).
    return list(dict.fromkeys(done)), problems, warnings
